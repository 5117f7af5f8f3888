"""Outpainting: a picture extended beyond its frame, done as inpainting on a larger canvas.

The talk's example is the Girl with a Pearl Earring, her room painted around her. KerasCV
has no outpainting; the usual way with an SD v1 model is this one: put the picture in the
middle of a canvas padded by ``pad`` pixels, mask the padding (1 = paint), and inpaint with
a pipeline built at the canvas's size (``StableDiffusion.resized``). The UNet and the VAE
are convolutional, so they run at the larger size; the attention layers see more latent
pixels than in training, which works for moderate pads. The original pixels are kept
exactly (inpainting's compositing).
"""

from __future__ import annotations

import numpy as np

from imagegen.stable_diffusion.inputs import as_images


def outpaint(pipeline, prompt, image, pad, negative_prompt=None, num_steps=50, unconditional_guidance_scale=7.5,
             seed=None):
    """Extend ``image`` (the pipeline's size) by ``pad`` pixels: an int for every side, or (top, right, bottom, left).

    Each pad must be a multiple of what the pipeline's sizes are (``img_height`` must be).
    Returns (uint8 images (b, top + h + bottom, left + w + right, 3), the canvas's mask (1 = painted)).
    """
    top, right, bottom, left = (pad,) * 4 if np.isscalar(pad) else tuple(pad)
    multiple = pipeline.size_multiple
    if any(int(p) != p or p < 0 or p % multiple for p in (top, right, bottom, left)) or not top + right + bottom + left:
        raise ValueError(f"pad={pad!r}: each side must be a whole multiple of {multiple} pixels (the latent grid and "
                         f"the UNet's downsampling), at least one of them above 0; e.g. pad={multiple}")
    images = as_images(image, pipeline.img_height, pipeline.img_width)
    h, w = pipeline.img_height, pipeline.img_width
    # The padding's start does not matter (inpainting replaces it with noise); the edge colours encode cleanly.
    canvas = np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="edge")
    mask = np.ones(canvas.shape[1:3], np.float32)
    mask[top : top + h, left : left + w] = 0.0
    wide = pipeline.resized(top + h + bottom, left + w + right)
    out = wide.inpaint(prompt, canvas, mask, negative_prompt=negative_prompt, num_steps=num_steps,
                       unconditional_guidance_scale=unconditional_guidance_scale, seed=seed)
    return out, mask
