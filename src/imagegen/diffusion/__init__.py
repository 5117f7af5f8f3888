"""Diffusion from scratch, in one vocabulary that Stable Diffusion (``imagegen.stable_diffusion``) shares.

- ``schedules``: noise schedules on timesteps 0..1000: continuous cosine (keras.io DDIM), discrete
  linear / scaled-linear (DDPM, SD), and diffusers' scheduler configs (``from_diffusers``);
- ``spacing``: which timesteps a sampler of n steps visits, as ``Step(timestep, a_t, a_next)``;
- ``prediction``: the forward process and the conversions between e, v and x0;
- ``samplers``: DDIM (with eta), DPM-Solver++(2M), the sampling loop, DDIM inversion, classifier-free guidance;
- ``pixel_unet``: the pixel-space UNet, residual blocks with a time embedding, optional self-attention or spatial transformers;
- ``attention``: SD's spatial transformer (self-attention, cross-attention to text, GEGLU feed-forward);
- ``ema``: the moving average of the weights that sampling uses;
- ``model``: ``DiffusionModel``, trained with ``fit()``, optionally text-conditioned.
"""

from imagegen.diffusion.attention import BasicTransformerBlock, CrossAttention, SpatialTransformer
from imagegen.diffusion.model import DiffusionModel
from imagegen.diffusion.prediction import PREDICTIONS, add_noise, clean_estimate, to_epsilon, velocity
from imagegen.diffusion.samplers import DDIM, DPMSolverPlusPlus, classifier_free_guidance, get_scheduler, invert, sample
from imagegen.diffusion.schedules import CosineSchedule, DiscreteSchedule, get_schedule
from imagegen.diffusion.spacing import Step
from imagegen.diffusion.pixel_unet import SinusoidalEmbedding, attention_block, build_unet, residual_block

__all__ = [
    "DDIM", "PREDICTIONS", "BasicTransformerBlock", "CosineSchedule", "CrossAttention", "DPMSolverPlusPlus",
    "DiffusionModel", "DiscreteSchedule", "SinusoidalEmbedding", "SpatialTransformer", "Step", "add_noise",
    "attention_block", "build_unet", "classifier_free_guidance", "clean_estimate", "get_schedule",
    "get_scheduler", "invert", "residual_block", "sample", "to_epsilon", "velocity",
]
