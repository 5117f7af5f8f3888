"""Stable Diffusion assembled from the course's own modules, small files each.

- ``unet``: the SD v1 UNet (ResBlocks and spatial transformers), with named sizes;
- ``vae``: the autoencoder's ``Decoder`` and ``ImageEncoder`` (latents scaled by 0.18215);
- ``schedulers``: DDIM exactly as KerasCV samples, and DPM-Solver++(2M) for 20 to 25 steps;
- ``pipeline``: ``StableDiffusion`` with KerasCV's method names, plus image-to-image and inpainting;
- ``weights``: KerasCV's published h5 files and live KerasCV models into our modules;
- ``presets``: ``from_preset``, ``from_keras_cv`` and the named configurations.
The text encoder is ``imagegen.clip.TextEncoder`` ("clip-l").
"""

from imagegen.stable_diffusion.pipeline import StableDiffusion
from imagegen.stable_diffusion.schedulers import DDIM, DPMSolverPlusPlus, alphas_cumprod, get_scheduler
from imagegen.stable_diffusion.unet import ResBlock, UNet
from imagegen.stable_diffusion.vae import LATENT_SCALE, AttentionBlock, Decoder, ImageEncoder, ResnetBlock

__all__ = [
    "DDIM", "LATENT_SCALE", "AttentionBlock", "DPMSolverPlusPlus", "Decoder", "ImageEncoder", "ResBlock", "ResnetBlock",
    "StableDiffusion", "UNet", "alphas_cumprod", "get_scheduler",
]
