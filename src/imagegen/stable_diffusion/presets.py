"""Named Stable Diffusion configurations, and pretrained presets built from them: modules, not pipelines.

- ``build(config)``: the three modules of a named size with random weights
  ("sd-v1": the real sizes; "tiny": for tests).
- ``load_preset("sd-v1.4")``: KerasCV's published SD v1.4 weights, downloaded once
  into the cache (sha256-checked) and read into our modules;
  ``load_preset("mini")``: the course's own small model, shipped with the package (``mini_asset.py``).
- ``keras_cv_modules(...)``: live KerasCV sub-models copied into ours.

``sources.py`` turns these modules into a ``StableDiffusion`` pipeline; this module
never imports the pipeline, so it stays below it.
"""

from __future__ import annotations

from imagegen import rehearsal
from imagegen.clip import TextEncoder
from imagegen.keras_common import dtype_policy_scope
from imagegen.stable_diffusion.unet import UNet
from imagegen.stable_diffusion.autoencoder import Decoder, Encoder
from imagegen.stable_diffusion.weights import assign_in_order, keras_cv_arrays, load_keras_h5, sd_v1_4_paths

CONFIGS = {
    "sd-v1": dict(text=dict(max_length=77, width=768, num_layers=12, num_heads=12), unet="sd-v1", vae="sd-v1"),
    "tiny": dict(text=dict(max_length=16, width=32, num_layers=1, num_heads=2), unet="tiny", vae="tiny"),
    # The full-mode rehearsal's stand-in for SD v1 (imagegen.rehearsal): tiny widths, SD's 77 tokens and 8x VAE.
    "rehearsal": dict(text=dict(max_length=77, width=32, num_layers=1, num_heads=2), unet="tiny", vae="rehearsal"),
    # The course's mini SD: the toy CLIP's text tower ("clip-tiny"), 16x16x4 latents of 64x64 images.
    "mini": dict(text=dict(max_length=16, width=128, num_layers=4, num_heads=4), unet="mini", vae="mini"),
}
PRESETS = {"sd-v1.4": "sd-v1", "mini": "mini"}  # preset name -> configuration
DEFAULT_SIZES = {"sd-v1.4": 512, "mini": 64}  # the image size each preset was trained at


def default_guidance(name):
    """The guidance scale a preset is drawn at unless told otherwise: SD's 7.5 (also for weights of one's own), the
    mini's own (picked on its seen prompts after training and stored in its record; a small model wants less)."""
    if name == "mini":
        from imagegen.stable_diffusion.mini_asset import mini_guidance

        return mini_guidance()
    return 7.5


def build(config="sd-v1", dtype=None):
    """(text_encoder, unet, decoder, image_encoder) of a named configuration, randomly initialised.

    dtype: a mixed-precision policy for the text encoder and the UNet. The VAE always
    stays float32: SD's decoder overflows float16 and then returns black images.
    """
    from imagegen.stable_diffusion import autoencoder, unet as unet_module

    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; choose one of {', '.join(CONFIGS)}")
    spec = CONFIGS[config]
    with dtype_policy_scope(dtype):
        text_encoder = TextEncoder(**spec["text"])
        unet = UNet(**{**unet_module.CONFIGS[spec["unet"]], "context_dim": spec["text"]["width"]})
    vae = autoencoder.CONFIGS[spec["vae"]]
    with dtype_policy_scope("float32"):
        return text_encoder, unet, Decoder(**vae), Encoder(**vae)


def load_preset(name, dtype=None):
    """(text_encoder, unet, decoder, image_encoder) with a preset's pretrained weights (``dtype``: see ``build``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if name == "mini":
        from imagegen.stable_diffusion.mini_asset import load_mini

        return load_mini(dtype=dtype)
    print("Stable Diffusion v1.4's weights are under the CreativeML OpenRAIL-M licence: "
          "https://raw.githubusercontent.com/CompVis/stable-diffusion/main/LICENSE")
    paths = sd_v1_4_paths()  # raises OfflineError naming the files, URLs and cache folder
    modules = build(rehearsal.model_config(PRESETS[name]), dtype)
    for module, part in zip(modules, ("text_encoder", "unet", "decoder", "image_encoder")):
        load_keras_h5(module, paths[part])
    return modules


def load_text_encoder(name="sd-v1.4", dtype=None):
    """A preset's pretrained text encoder alone (SD v1.4: CLIP ViT-L/14's text tower, 492 MB), read by our h5 loader.

    Notebook 05 conditions its pixel-space model on it in full mode; no KerasCV is needed.
    """
    if name != "sd-v1.4":
        raise ValueError(f"load_text_encoder reads KerasCV's published files: only 'sd-v1.4', got {name!r}")
    path = sd_v1_4_paths(parts=("text_encoder",))["text_encoder"]
    with dtype_policy_scope(dtype):
        encoder = TextEncoder(**CONFIGS[rehearsal.model_config(PRESETS[name])]["text"])
    return load_keras_h5(encoder, path)


def keras_cv_modules(keras_cv_text_encoder, keras_cv_unet, keras_cv_decoder, keras_cv_image_encoder=None):
    """Our (text_encoder, unet, decoder, image_encoder) with the weights of KerasCV's SD v1 sub-models.

    KerasCV's models may be built with or without their weights. ``keras_cv_unet`` is KerasCV's UNet,
    which KerasCV calls ``DiffusionModel`` (not the course's pixel-space ``imagegen.diffusion.DiffusionModel``).
    """
    from imagegen.stable_diffusion import autoencoder, unet as unet_module

    text = TextEncoder.from_keras_cv(keras_cv_text_encoder)
    unet = assign_in_order(UNet(**unet_module.CONFIGS["sd-v1"]), keras_cv_arrays(keras_cv_unet),
                           "KerasCV's UNet (its DiffusionModel)")
    decoder = assign_in_order(Decoder(**autoencoder.CONFIGS["sd-v1"]), keras_cv_arrays(keras_cv_decoder), "KerasCV's Decoder")
    encoder = None
    if keras_cv_image_encoder is not None:
        encoder = assign_in_order(Encoder(**autoencoder.CONFIGS["sd-v1"]), keras_cv_arrays(keras_cv_image_encoder),
                                  "KerasCV's ImageEncoder")
    return text, unet, decoder, encoder
