"""Stable Diffusion assembled from the course's own modules, small files each.

- ``unet``: the SD v1 UNet (ResBlocks and spatial transformers), with named sizes;
- ``vae``: the autoencoder's ``Decoder`` and ``ImageEncoder`` (latents scaled by 0.18215);
- ``schedulers``: the ``SamplingSchedule`` each source of weights brings (KerasCV's, or a diffusers
  scheduler config), walked by DDIM or DPM-Solver++(2M);
- ``pipeline``: ``StableDiffusion`` with KerasCV's method names, plus image-to-image and inpainting
  (``inputs``: what users hand it, checked; ``compiled``: the XLA / jax.jit call);
- weights in every form: ``weights`` (KerasCV's published h5 files, live KerasCV models), ``presets``
  (``from_preset`` and the named configurations), ``diffusers`` (diffusers' tensor names and configs),
  ``repository`` (a diffusers folder or Hub repository: only the files read), ``single_file`` (one
  original-layout checkpoint), ``verify`` (KerasCV's golden values, the check that they are read right);
- ``mini``, ``training``, ``textual_inversion``, ``walks``: the course's small model and the applications.
The text encoder is ``imagegen.clip.TextEncoder`` ("clip-l").
"""

from imagegen.stable_diffusion.pipeline import StableDiffusion
from imagegen.stable_diffusion.schedulers import DDIM, DPMSolverPlusPlus, SamplingSchedule, alphas_cumprod, get_scheduler
from imagegen.stable_diffusion.unet import ResBlock, UNet
from imagegen.stable_diffusion.vae import LATENT_SCALE, AttentionBlock, Decoder, ImageEncoder, ResnetBlock

__all__ = [
    "DDIM", "LATENT_SCALE", "AttentionBlock", "DPMSolverPlusPlus", "Decoder", "ImageEncoder", "ResBlock", "ResnetBlock",
    "SamplingSchedule", "StableDiffusion", "UNet", "alphas_cumprod", "get_scheduler",
]
