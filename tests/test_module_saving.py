"""The course's modules saved to .keras come back as they were, their dtype policy included (issue #18).

A module built under mixed precision and saved must load with the same policy in
every layer, whatever the global policy is when it is loaded: its ``get_config``
has to carry ``dtype`` (``super().get_config()``), and its layers have to be
rebuilt under it.
"""

import keras
import numpy as np
import pytest

from imagegen.clip import CLIP, TextEncoder, build_image_encoder
from imagegen.diffusion.pixel_unet import build_unet
from imagegen.vae import VAE

POLICY = "mixed_bfloat16"


def text_encoder():
    return TextEncoder(vocabulary_size=64, max_length=8, width=16, num_layers=1, num_heads=2)


def sd_module(kind):
    from imagegen.stable_diffusion import autoencoder, unet

    if kind == "unet":
        return unet.UNet.from_config_name("tiny")
    return getattr(autoencoder, kind)(channels=(8, 16), groups=4)


MODULES = {
    "text_encoder": text_encoder,
    "clip": lambda: CLIP(build_image_encoder(16, (8, 16), feature_dims=16), text_encoder(), embedding_dims=8),
    "vae": lambda: VAE(image_size=8, channels=1, latent_dim=2, filters=(8,), dense_units=16, seed=0),
    "conditional_unet": lambda: build_unet(8, 3, widths=(16, 32), block_depth=1, attention_resolutions=(4,),
                                           embedding_dims=16, context_dim=8, context_length=4, heads=2),
    "sd_unet": lambda: sd_module("unet"),
    "sd_decoder": lambda: sd_module("Decoder"),
    "sd_encoder": lambda: sd_module("Encoder"),
}


def layer_policies(model):
    """(layer class, its dtype policy) for the model and every layer inside it, in order.

    Left out: a plain functional model loaded by itself, and input layers, which take the global
    policy whatever their config says (Keras's ``Functional`` drops ``dtype``; an ``InputLayer``'s
    ``dtype`` is its tensors'). Both only route tensors; the layers that compute keep theirs.
    """
    plain = model if type(model).__name__ == "Functional" else None
    return [(type(layer).__name__, layer.dtype_policy.name) for layer in model._flatten_layers(include_self=True)
            if layer is not plain and type(layer).__name__ != "InputLayer"]


@pytest.fixture
def restore_policy():
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("name", list(MODULES))
def test_mixed_precision_module_loads_back_mixed(name, tmp_path, restore_policy):
    keras.config.set_dtype_policy(POLICY)
    module = MODULES[name]()
    keras.config.set_dtype_policy("float32")  # loading happens under another global policy
    assert module.dtype_policy.name == POLICY
    if not module.built:  # models that build nothing lazily (CLIP, VAE) still say so
        module.build(None)
    module.save(tmp_path / "module.keras")
    loaded = keras.saving.load_model(tmp_path / "module.keras")
    assert loaded.dtype_policy.name == POLICY or type(loaded).__name__ == "Functional"
    policies = layer_policies(loaded)
    assert policies == layer_policies(module)
    assert any(policy == POLICY for kind, policy in policies if kind in ("Dense", "Conv2D"))
    for ours, theirs in zip(module.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


@pytest.mark.parametrize("name", ["text_encoder", "sd_unet", "sd_decoder"])
def test_float32_config_round_trip_keeps_float32_under_a_mixed_global_policy(name, restore_policy):
    module = MODULES[name]()
    keras.config.set_dtype_policy(POLICY)
    rebuilt = type(module).from_config(module.get_config())
    assert {policy for _, policy in layer_policies(rebuilt)} <= {"float32"}


def test_the_loss_tracker_pattern_is_defined_once():
    from imagegen.keras_common import LossTrackerMetrics
    from imagegen.stable_diffusion.textual_inversion import TextualInversion

    for model in (VAE, CLIP, TextualInversion):
        assert issubclass(model, LossTrackerMetrics) and model.compute_metrics is LossTrackerMetrics.compute_metrics
