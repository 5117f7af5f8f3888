"""Every source of Stable Diffusion weights, each a function that returns a ready ``StableDiffusion`` pipeline.

    from imagegen.stable_diffusion import from_preset
    sd = from_preset("mini")                      # or "sd-v1.4"

- ``from_preset``: pretrained weights by name (KerasCV's published SD v1.4 files, or the course's mini model);
- ``from_config_name``: a named size with random weights (the architecture without training);
- ``from_keras_cv``: live KerasCV sub-models, copied into ours;
- ``from_diffusers``: a diffusers folder or Hugging Face repository (SD v1 and SD 2.x);
- ``from_single_file``: one original-layout (CompVis) SD v1.x ``.safetensors`` checkpoint.

Why here and not on the class: the pipeline only samples; it knows no file format.
This module sits above the pipeline and the loaders (``presets``, ``repository``,
``single_file``), which build modules and never import the pipeline, so there is no
import circle. Each function passes any other keyword (``scheduler``, ``jit_compile``,
``progress``, ...) on to ``StableDiffusion``.
"""

from __future__ import annotations

from imagegen import rehearsal
from imagegen.diffusion.schedules import DiscreteSchedule
from imagegen.stable_diffusion.diffusers import SD15_SCHEDULER
from imagegen.stable_diffusion.pipeline import StableDiffusion
from imagegen.stable_diffusion.presets import DEFAULT_SIZES, build, keras_cv_modules, load_preset
from imagegen.stable_diffusion.repository import load_diffusers
from imagegen.stable_diffusion.single_file import load_single_file


def from_preset(preset, img_height=None, img_width=None, dtype=None, **kwargs):
    """Pretrained weights by name: "sd-v1.4" (KerasCV's files, downloaded once and sha256-checked)
    or "mini" (the course's small model, shipped with the package, 64x64).

    img_height, img_width: default to the size the preset was trained at (512 or 64).

    dtype: "mixed_float16" (GPU) or "mixed_bfloat16" (TPU) runs the text encoder and
    UNet in half precision; the VAE and the sampler stay float32.
    """
    text_encoder, unet, decoder, image_encoder = load_preset(preset, dtype)
    size = rehearsal.image_size(DEFAULT_SIZES[preset])
    return StableDiffusion(text_encoder, unet, decoder, image_encoder, img_height=img_height or size,
                           img_width=img_width or size, **kwargs)


def from_config_name(config="sd-v1", img_height=512, img_width=512, dtype=None, **kwargs):
    """Randomly initialised modules of a named size ("sd-v1", "tiny"): the architecture without training."""
    return StableDiffusion(*build(config, dtype), img_height=img_height, img_width=img_width, **kwargs)


def from_keras_cv(keras_cv_text_encoder, keras_cv_unet, keras_cv_decoder, keras_cv_image_encoder=None, **kwargs):
    """Copy KerasCV's SD v1 sub-models into ours; the size defaults to the decoder's.

    keras_cv_unet: KerasCV's UNet, the model KerasCV calls ``DiffusionModel``.
    """
    kwargs.setdefault("img_height", keras_cv_decoder.input_shape[1] * 8)
    kwargs.setdefault("img_width", keras_cv_decoder.input_shape[2] * 8)
    modules = keras_cv_modules(keras_cv_text_encoder, keras_cv_unet, keras_cv_decoder, keras_cv_image_encoder)
    return StableDiffusion(*modules, **kwargs)


def from_diffusers(path_or_repo, img_height=None, img_width=None, dtype=None, variant=None, **kwargs):
    """SD v1 or SD 2.x weights in diffusers format: a local folder or a Hugging Face repo id.

    Reads safetensors only and downloads only the files it loads (``variant="fp16"``
    prefers the half-size files). The folder's ``scheduler_config.json`` sets the
    sampling schedule and what the UNet predicts (epsilon or v).
    img_height, img_width: default to the UNet's ``sample_size`` x 8 (512 for SD v1, 768 for SD 2.x's 768-v).
    """
    loaded = load_diffusers(path_or_repo, dtype=dtype, variant=variant)
    size = rehearsal.image_size(loaded.image_size)
    return StableDiffusion(*loaded.modules, tokenizer=kwargs.pop("tokenizer", loaded.tokenizer),
                           img_height=img_height or size, img_width=img_width or size,
                           schedule=kwargs.pop("schedule", loaded.schedule), **kwargs)


def from_single_file(path, img_height=512, img_width=512, dtype=None, ema=True, **kwargs):
    """An SD v1.x checkpoint in one ``.safetensors`` file, in the original (CompVis) layout.

    ``v1-5-pruned-emaonly.safetensors`` and most fine-tunes shared as one file.
    ema: use the EMA UNet weights where the file has both. Sampled on SD 1.5's
    published schedule (diffusers' "leading" spacing, steps_offset 1).
    """
    schedule, _ = DiscreteSchedule.from_diffusers(SD15_SCHEDULER)
    return StableDiffusion(*load_single_file(path, ema=ema, dtype=dtype), img_height=img_height, img_width=img_width,
                           schedule=kwargs.pop("schedule", schedule), **kwargs)
