"""Outpainting: inpainting on a larger canvas keeps the picture exactly and paints only the border."""

import numpy as np
import pytest

from imagegen.stable_diffusion import from_config_name
from imagegen.stable_diffusion.outpaint import outpaint


@pytest.fixture(scope="module")
def tiny():
    return from_config_name("tiny", img_height=32, img_width=32, jit_compile=False, progress=False)


def test_outpaint_keeps_the_picture_and_paints_the_border(tiny):
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype("uint8")
    out, mask = outpaint(tiny, "a wider view", image, (0, 8, 4, 12), num_steps=3, seed=0)
    assert out.shape == (1, 36, 52, 3) and mask.shape == (36, 52)
    np.testing.assert_array_equal(out[0, :32, 12:44], image)  # the picture, exactly, where it was put
    assert mask[:32, 12:44].max() == 0 and mask.sum() == 36 * 52 - 32 * 32
    assert (tiny.img_height, tiny.img_width) == (32, 32)  # the original pipeline is unchanged


@pytest.mark.parametrize("pad", [3, (0, 0, 0, 0), (4, 4, 4, -4), 2.5])
def test_outpaint_refuses_pads_off_the_grid(tiny, pad):
    with pytest.raises(ValueError, match="multiple of 4"):
        outpaint(tiny, "x", np.zeros((32, 32, 3), "uint8"), pad, num_steps=2)
