"""Diffusion from scratch: schedules, the denoising UNet, the DDIM sampler, and the model that trains them.

- ``schedules``: continuous cosine (keras.io DDIM) and discrete linear / scaled-linear (SD) schedules.
- ``unet``: residual blocks with a time embedding, optional self-attention or spatial transformers;
- ``attention``: SD's spatial transformer (self-attention, cross-attention to text, GEGLU feed-forward).
- ``sampler``: DDIM steps with eta, sampling and inversion over any denoiser; classifier-free guidance.
- ``model``: ``DiffusionModel``, trained with ``fit()``, with EMA weights, optionally text-conditioned.
"""

from imagegen.diffusion.attention import BasicTransformerBlock, CrossAttention, SpatialTransformer
from imagegen.diffusion.model import DiffusionModel
from imagegen.diffusion.sampler import classifier_free_guidance, ddim_invert, ddim_sample, ddim_step
from imagegen.diffusion.schedules import CosineSchedule, DiscreteSchedule, get_schedule
from imagegen.diffusion.unet import SinusoidalEmbedding, attention_block, build_unet, residual_block

__all__ = [
    "BasicTransformerBlock", "CosineSchedule", "CrossAttention", "DiffusionModel", "DiscreteSchedule",
    "SinusoidalEmbedding", "SpatialTransformer", "attention_block", "build_unet", "classifier_free_guidance", "ddim_invert", "ddim_sample", "ddim_step", "get_schedule", "residual_block",
]
