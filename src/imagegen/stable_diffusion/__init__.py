"""Stable Diffusion assembled from the course's own modules, small files each.

- ``unet``: the SD v1 UNet (ResBlocks and spatial transformers), with named sizes;
- ``autoencoder``: SD's VAE, its ``Encoder`` and ``Decoder`` (latents scaled by 0.18215);
- schedules and samplers are ``imagegen.diffusion``'s, the pixel-space model's: each source of weights brings
  its ``DiscreteSchedule`` (KerasCV's spacing, or a diffusers scheduler config), walked by DDIM or DPM-Solver++(2M);
- ``pipeline``: ``StableDiffusion`` with KerasCV's method names, plus image-to-image and inpainting
  (``inputs``: what users hand it, checked; ``compiled``: the XLA / jax.jit call);
- ``sources``: a ready pipeline from each source of weights, above the pipeline and the loaders:
  ``from_preset("mini")``, ``from_config_name``, ``from_keras_cv``, ``from_diffusers``, ``from_single_file``;
- the loaders, which build modules and never import the pipeline: ``weights`` (KerasCV's published h5
  files, live KerasCV models), ``presets`` (the named configurations and presets), ``diffusers``
  (diffusers' tensor names and configs), ``repository`` (a diffusers folder or Hub repository: only the
  files read), ``single_file`` (one original-layout checkpoint), ``tensor_file`` (the one safetensors
  reader), ``verify`` (KerasCV's golden values, the check that they are read right);
- the course's small model: ``mini_asset`` (its shipped file format), ``mini_recipe`` (training it, with
  ``training``), ``mini_eval`` (how well it follows prompts); ``textual_inversion``, ``walks``: the applications.
The text encoder is ``imagegen.clip.TextEncoder`` ("clip-l").
"""

from imagegen.stable_diffusion.autoencoder import LATENT_SCALE, AttentionBlock, Decoder, Encoder
from imagegen.stable_diffusion.pipeline import StableDiffusion
from imagegen.stable_diffusion.sources import from_config_name, from_diffusers, from_keras_cv, from_preset, from_single_file
from imagegen.stable_diffusion.unet import ResBlock, UNet

__all__ = [
    "LATENT_SCALE", "AttentionBlock", "Decoder", "Encoder", "ResBlock",
    "StableDiffusion", "UNet", "from_config_name", "from_diffusers", "from_keras_cv",
    "from_preset", "from_single_file",
]
