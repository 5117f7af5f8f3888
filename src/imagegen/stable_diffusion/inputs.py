"""Checks and shapes for what a user hands the pipeline: text features, noise, images and masks.

Each function either returns the input in the one shape the pipeline computes
with, or raises an error that says what was wrong and what to pass instead.
"""

from __future__ import annotations

import numpy as np
from keras import ops


def expand(value, batch_size, name, shape=None):
    """(…) or (1, …) or (batch_size, …) -> (batch_size, …) float32."""
    value = ops.cast(ops.convert_to_tensor(value), "float32")
    if shape is not None and tuple(value.shape[-len(shape):]) != tuple(shape):
        raise ValueError(f"{name} must end in shape {tuple(shape)}, got {tuple(value.shape)}")
    if shape is None and len(value.shape) == 2:
        value = value[None]
    if shape is not None and len(value.shape) == len(shape):
        value = value[None]
    if value.shape[0] == 1 and batch_size != 1:
        value = ops.repeat(value, batch_size, axis=0)
    if value.shape[0] != batch_size:
        raise ValueError(f"{name} has {value.shape[0]} rows for batch_size={batch_size}; give 1 or {batch_size}")
    return value


def as_images(image, height, width):
    """uint8 0..255 or float 0..1 images, (h, w, 3) or (b, h, w, 3) -> float32 (b, h, w, 3) in [0, 1]."""
    images = np.asarray(image)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"image must be (height, width, 3) or (batch, height, width, 3), got shape {images.shape}")
    if images.shape[1:3] != (height, width):
        raise ValueError(f"image is {images.shape[1]}x{images.shape[2]} but this pipeline makes {height}x{width}; "
                         "resize it first (e.g. imagegen.data.samples.resize_crop) or build the pipeline at that size")
    if images.dtype == np.uint8:
        return images.astype("float32") / 255.0
    images = images.astype("float32")
    if images.min() < 0.0 or images.max() > 1.0:
        raise ValueError("float images must lie in [0, 1]; pass uint8 for 0..255")
    return images


def as_mask(mask, image_shape):
    """A mask (h, w) or (b, h, w), bool or 0/1, matching the images -> float32 (b, h, w)."""
    masks = np.asarray(mask, dtype="float32")
    if masks.ndim == 2:
        masks = np.broadcast_to(masks, (image_shape[0], *masks.shape))
    if masks.shape != image_shape[:3]:
        raise ValueError(f"mask has shape {np.asarray(mask).shape}; it must be (height, width) = {image_shape[1:3]} "
                         f"or (batch, height, width) = {image_shape[:3]}, with 1 where to repaint")
    return (masks > 0.5).astype("float32")
