"""A diffusers Stable Diffusion repository, on disk or on the Hugging Face Hub: which files, and what they hold.

A diffusers repository is a folder per part (``unet/``, ``vae/``, ``text_encoder/``,
``scheduler/``, ...). Real ones hold far more than a pipeline reads: SD 1.5's
also has two 4 and 8 GB single-file checkpoints at its root, pickle (``.bin``)
copies of every part, a non-EMA UNet, half-precision variants and a safety
checker, about 19 GB where 4.3 GB are used. So the files are chosen by name
from the repository's listing (``select_files``), and the download fetches
exactly those, the same rule serving a local folder and a Hub repository.

What is read, and what it decides:
- ``unet|vae|text_encoder/config.json`` and one safetensors file each (the
  full-precision file, or the ``.fp16`` variant when asked for or when it is the only one);
- ``scheduler/scheduler_config.json``: the betas, the timestep spacing and what
  the UNet predicts (epsilon or v), whatever scheduler class it names;
- ``model_index.json``: the pipeline class, to refuse what this course cannot run
  (SDXL, upscalers, inpainting UNets) with a one-line reason before any download;
- ``tokenizer/special_tokens_map.json``: the padding token (SD 2.x pads prompts with "!").
CLIP's vocabulary itself ships with the package: SD v1 and 2.x share it.
"""

from __future__ import annotations

import json
import pathlib
from typing import NamedTuple

from imagegen.stable_diffusion.tensor_file import read_safetensors

WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
SMALL_FILES = ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/special_tokens_map.json")
SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
REFUSED = {  # a file or a pipeline class -> why we cannot run it
    "text_encoder_2/config.json": "it has two text encoders (SDXL); this course implements SD v1 and SD 2.x",
    "StableDiffusionXLPipeline": "SDXL (two text encoders, a 2.6B UNet) is not implemented; this course runs SD v1 and SD 2.x",
    "StableDiffusionUpscalePipeline": "an upscaler (its UNet reads a low-resolution image too), not a text-to-image model",
    "StableDiffusionInpaintPipeline": "an inpainting model (its UNet reads 9 channels); use an ordinary SD model with inpaint()",
}


class DiffusersModel(NamedTuple):
    """What ``load_diffusers`` returns: the four modules, their tokenizer and schedule, and their training size."""

    modules: tuple  # (text_encoder, unet, decoder, image_encoder)
    tokenizer: object  # a CLIPTokenizer padding as the repository's does
    schedule: object  # a DiscreteSchedule
    image_size: int
    files: tuple  # the repository paths read


def select_files(listing, variant=None):
    """The repository paths a pipeline reads, from a listing of every path in the repository.

    listing: repository-relative paths ("unet/config.json", ...), or {path: size}.
    variant: None (full precision, else the .fp16 files) or "fp16" (half precision, else the full files).
    Raises ValueError naming the reason for a repository we cannot run, FileNotFoundError for a missing part.
    """
    if variant not in (None, "fp16"):
        raise ValueError(f"variant must be None or 'fp16', got {variant!r}")
    files = set(listing)
    for marker, why in REFUSED.items():
        if marker in files:
            raise ValueError(f"not loaded: {why}")
    chosen = [name for name in SMALL_FILES if name in files]
    for part, stem in WEIGHT_STEMS.items():
        if f"{part}/config.json" not in files:
            raise FileNotFoundError(f"no {part}/config.json: a diffusers Stable Diffusion repository has unet/, vae/ and "
                             "text_encoder/ folders (a single .safetensors checkpoint loads with from_single_file)")
        candidates = [f"{part}/{stem}.safetensors", f"{part}/{stem}.fp16.safetensors"]
        weights = next((name for name in (candidates[::-1] if variant else candidates) if name in files), None)
        if weights is None:
            others = sorted(name for name in files if name.startswith(f"{part}/") and name != f"{part}/config.json")
            hint = " (pickle files are never loaded; convert them to safetensors)" if any(n.endswith(".bin") for n in others) else ""
            raise FileNotFoundError(f"no {candidates[0]} or {candidates[1]}; found {others or 'nothing'}{hint}")
        chosen += [f"{part}/config.json", weights]
    return chosen


def listing_of(folder):
    """{path: size} of every file under a local folder, as a Hub listing names them."""
    root = pathlib.Path(folder)
    return {path.relative_to(root).as_posix(): path.stat().st_size for path in root.rglob("*") if path.is_file()}


def hub_listing(repo_id, revision=None):
    """{path: size} of a Hub repository, from its metadata (no file is downloaded)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    return {sibling.rfilename: sibling.size or 0 for sibling in info.siblings}


def fetch(path_or_repo, variant=None, revision=None):
    """(local root, the selected paths): a local folder as it is, or a Hub repository's selected files downloaded."""
    path = pathlib.Path(path_or_repo).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is a file; a single-file checkpoint loads with from_single_file")
        return path, select_files(listing_of(path), variant)
    from imagegen.network import require_reachable

    require_reachable("https://huggingface.co", f"{path_or_repo!r} is not a local folder and cannot be downloaded",
                      "download the model elsewhere (its unet/, vae/, text_encoder/ and scheduler/ folders) and pass "
                      "that folder.", timeout=5)
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise ImportError("downloading a diffusers repository needs huggingface_hub: pip install huggingface_hub") from error
    listing = hub_listing(str(path_or_repo), revision)
    chosen = select_files(listing, variant)
    print(f"{path_or_repo}: {len(chosen)} files, {sum(listing[name] for name in chosen) / 1e9:.2f} GB "
          f"(of {sum(listing.values()) / 1e9:.1f} GB in the repository)")
    # Exact names: no wildcard, so nothing else in the repository matches.
    root = snapshot_download(str(path_or_repo), revision=revision, allow_patterns=chosen)
    return pathlib.Path(root), chosen


def read_json(root, name, required=True):
    path = pathlib.Path(root) / name
    if not path.exists():
        if required:
            raise FileNotFoundError(f"{path} is missing: a diffusers model folder has unet/, vae/ and text_encoder/, "
                                    "each with config.json")
        return {}
    return json.loads(path.read_text())


def check_pipeline(model_index):
    """Refuse, in one line, a pipeline class we cannot run (no model_index.json: nothing to check)."""
    name = model_index.get("_class_name")
    if name in REFUSED:
        raise ValueError(f"not loaded: {REFUSED[name]}")
    if name is not None and name not in SUPPORTED_PIPELINES:
        raise ValueError(f"not loaded: model_index.json names {name}; this course runs {' and '.join(SUPPORTED_PIPELINES)} models")


def load_diffusers(path_or_repo, dtype=None, variant=None, revision=None):
    """A ``DiffusersModel`` from a diffusers SD v1 or SD 2.x folder or Hub repository id.

    dtype: a mixed-precision policy for the text encoder and the UNet (the VAE stays float32).
    """
    from imagegen.clip import CLIPTokenizer
    from imagegen.stable_diffusion import diffusers as names
    from imagegen.diffusion.schedules import DiscreteSchedule
    from imagegen.keras_common import dtype_policy_scope

    root, files = fetch(path_or_repo, variant, revision)
    check_pipeline(read_json(root, "model_index.json", required=False))
    weights = {name.split("/")[0]: root / name for name in files if name.endswith(".safetensors")}
    schedule_config = read_json(root, "scheduler/scheduler_config.json", required=False)
    if not schedule_config:
        print(f"{root}: no scheduler/scheduler_config.json; sampling on SD 1.5's published schedule")
        schedule_config = names.SD15_SCHEDULER
    schedule, prediction = DiscreteSchedule.from_diffusers(schedule_config)
    unet_config = read_json(root, "unet/config.json")
    pad = read_json(root, "tokenizer/special_tokens_map.json", required=False).get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad  # newer files: {"content": "!", ...}
    with dtype_policy_scope(dtype):
        unet = names.unet_from_config(unet_config, prediction)
        text_encoder = names.text_encoder_from_config(read_json(root, "text_encoder/config.json"))
    names.load_pairs(names.unet_pairs(unet), read_safetensors(weights["unet"], "float32"), str(weights["unet"]))
    with dtype_policy_scope("float32"):
        decoder, image_encoder = names.vae_from_config(read_json(root, "vae/config.json"))
    vae = read_safetensors(weights["vae"], "float32")
    names.load_pairs(names.decoder_pairs(decoder), vae, str(weights["vae"]))
    names.load_pairs(names.image_encoder_pairs(image_encoder), vae, str(weights["vae"]))
    text = read_safetensors(weights["text_encoder"], "float32")
    text = {name.removeprefix("text_model."): value for name, value in text.items()}
    names.load_pairs(names.text_encoder_pairs(text_encoder), text, str(weights["text_encoder"]))
    image_size = int(unet_config.get("sample_size", 64)) * decoder.downsampling
    tokenizer = CLIPTokenizer(max_length=text_encoder.max_length, pad_token=None if pad == "<|endoftext|>" else pad)
    return DiffusersModel((text_encoder, unet, decoder, image_encoder), tokenizer, schedule, image_size, tuple(files))
