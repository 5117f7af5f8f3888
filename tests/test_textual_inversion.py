"""Textual inversion changes the pipeline only when it succeeds, and trains with the UNet's own loss (issue #18)."""

import inspect

import keras
import numpy as np
import pytest
from keras import ops

from imagegen.clip import CLIPTokenizer
from imagegen.stable_diffusion import StableDiffusion
from imagegen.stable_diffusion import textual_inversion as ti
from imagegen.stable_diffusion.presets import build
from imagegen.stable_diffusion.training import latent_diffusion_model

IMAGES = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")


@pytest.fixture(scope="module")
def modules():
    return build("tiny")


@pytest.fixture
def pipeline(modules):
    text_encoder, unet, decoder, encoder = modules
    unet.trainable = text_encoder.trainable = True
    return StableDiffusion(text_encoder, unet, decoder, encoder, CLIPTokenizer(max_length=16), img_height=32, img_width=32,
                           jit_compile=False, progress=False)


def learn(pipeline, **kwargs):
    return ti.textual_inversion(pipeline, IMAGES, "<thing>", "flower", ["a photo of a <thing>"], steps=2, batch_size=2,
                                log_every=0, **kwargs)


def test_training_leaves_the_modules_trainable_as_they_were(pipeline):
    learn(pipeline)
    assert pipeline.unet.trainable and pipeline.text_encoder.trainable
    pipeline.unet.trainable = False
    ti.textual_inversion(pipeline, IMAGES, "<other>", "flower", ["a <other>"], steps=1, batch_size=2, log_every=0)
    assert not pipeline.unet.trainable


def test_a_failed_training_changes_nothing(pipeline, monkeypatch):
    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    size = tokenizer.vocabulary_size

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ti.TextualInversion, "fit", interrupted)
        with pytest.raises(KeyboardInterrupt):
            learn(pipeline)
    assert tokenizer.vocabulary_size == size and "<thing>" not in tokenizer.encoder
    assert pipeline.text_encoder is encoder and encoder.vocabulary_size == size
    assert pipeline.unet.trainable and encoder.trainable
    learn(pipeline)  # the same token can be learned afterwards
    assert pipeline.tokenizer.token_id("<thing>") == size == pipeline.text_encoder.vocabulary_size - 1


def test_the_loss_is_the_one_the_unet_was_trained_with(modules):
    text_encoder, unet = modules[:2]
    default = inspect.signature(latent_diffusion_model).parameters["loss"].default
    from imagegen.stable_diffusion.mini_recipe import RECIPE

    assert default == RECIPE["unet_loss"] == "mse"  # the mini model's recipe, and SD's
    assert inspect.signature(ti.textual_inversion).parameters["loss"].default == default
    assert inspect.signature(ti.TextualInversion).parameters["loss"].default == default
    grown = ti.grow_text_encoder(text_encoder, 1, [0])
    predicted, target = np.zeros((2, 4, 4, 4), "float32"), np.full((2, 4, 4, 4), 2.0, "float32")
    for loss, expected in (("mae", 2.0), ("mse", 4.0)):
        trainer = ti.TextualInversion(grown, unet, [text_encoder.vocabulary_size], loss=loss)
        trainer.release()
        assert float(ops.convert_to_numpy(trainer.compute_loss(y_pred=(predicted, target)))) == pytest.approx(expected)
    with pytest.raises(ValueError, match="loss"):
        ti.TextualInversion(grown, unet, [text_encoder.vocabulary_size], loss="huber")
    assert unet.trainable and text_encoder.trainable


def test_the_grown_encoder_keeps_the_dtype_policy():
    from imagegen.clip import TextEncoder

    half = TextEncoder(vocabulary_size=64, max_length=8, width=16, num_layers=1, num_heads=2, dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"
    grown = ti.grow_text_encoder(half, 1, [3])
    assert grown.get_layer("layer_0").fc1.dtype_policy.name == "mixed_bfloat16" and grown.vocabulary_size == 65


def test_captions_can_be_given_per_image(pipeline, monkeypatch):
    """Each example is trained only with its own captions (a flipped copy with its image's)."""
    seen = []
    original = pipeline.tokenizer.__class__.__call__

    def spy(self, texts, *args, **kwargs):
        seen.extend(texts)
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(pipeline.tokenizer.__class__, "__call__", spy)
    per_image = [[f"a <thing> number {i}"] for i in range(len(IMAGES))]
    ti.textual_inversion(pipeline, IMAGES, "<thing>", "flower", per_image, steps=4, batch_size=2 * len(IMAGES), log_every=0)
    asked = [text for text in seen if "<thing>" in text]
    assert set(asked) == {c[0] for c in per_image} and len(asked) >= 2 * len(IMAGES)
    with pytest.raises(ValueError, match="one list per image"):
        ti.textual_inversion(pipeline, IMAGES, "<more>", "flower", per_image[:1], steps=1, log_every=0)
