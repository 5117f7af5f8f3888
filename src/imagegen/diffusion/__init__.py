"""Diffusion from scratch: schedules, the denoising UNet, the DDIM sampler, and the model that trains them.

- ``schedules``: continuous cosine (keras.io DDIM) and discrete linear / scaled-linear (SD) schedules.
- ``unet``: residual blocks with a time embedding, optional self- and cross-attention.
- ``sampler``: DDIM steps with eta, sampling and inversion over any denoiser.
- ``model``: ``DiffusionModel``, trained with ``fit()``, with EMA weights.
"""

from imagegen.diffusion.model import DiffusionModel
from imagegen.diffusion.sampler import ddim_invert, ddim_sample, ddim_step
from imagegen.diffusion.schedules import CosineSchedule, DiscreteSchedule, get_schedule
from imagegen.diffusion.unet import SinusoidalEmbedding, attention_block, build_unet, residual_block

__all__ = [
    "CosineSchedule", "DiffusionModel", "DiscreteSchedule", "SinusoidalEmbedding", "attention_block",
    "build_unet", "ddim_invert", "ddim_sample", "ddim_step", "get_schedule", "residual_block",
]
