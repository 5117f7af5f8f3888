"""Cross-attention maps: the weights recorded from the real layers, per token, without changing the picture."""

import numpy as np
import pytest

from imagegen.stable_diffusion import from_config_name
from imagegen.stable_diffusion.attention_maps import attention_maps, cross_attention_layers, plot_attention_maps


@pytest.fixture(scope="module")
def tiny():
    return from_config_name("tiny", img_height=32, img_width=32, jit_compile=True, progress=False)


def test_maps_are_attention_weights_per_token_and_leave_the_picture_alone(tiny):
    prompt = "a red boat on a lake"
    result = attention_maps(tiny, prompt, num_steps=3, seed=5)
    height, width = tiny.latent_shape[:2]
    assert result.maps.shape == (height, width, tiny.text_encoder.max_length)
    np.testing.assert_allclose(result.maps.sum(-1), 1.0, atol=1e-4)  # softmax over the tokens, averaged
    assert result.words == ["a", "red", "boat", "on", "a", "lake"]
    assert result.word_maps.shape == (6, height, width)
    compiled = tiny.text_to_image(prompt, num_steps=3, seed=5)[0]
    assert np.abs(compiled.astype(int) - result.image.astype(int)).max() <= 2  # eager vs compiled rounding only
    assert all(layer.recorder is None for layer in cross_attention_layers(tiny.unet))  # the hooks are removed


def test_maps_differ_between_tokens_and_plot(tiny):
    result = attention_maps(tiny, "a cat next to a horse", num_steps=2, seed=1)
    assert np.abs(result.word_maps[1] - result.word_maps[4]).max() > 1e-6
    figure = plot_attention_maps(result, words=["cat", "horse"])
    assert len(figure.axes) == 3
    with pytest.raises(ValueError, match="not tokens of this prompt"):
        plot_attention_maps(result, words=["zebra"])


def test_a_unet_without_cross_attention_is_refused():
    import types

    import keras

    plain = types.SimpleNamespace(unet=keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="no cross-attention layers"):
        attention_maps(plain, "a cat", num_steps=1)
