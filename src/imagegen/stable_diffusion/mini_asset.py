"""The file format of the course's mini Stable Diffusion, as shipped in ``imagegen/assets/mini``: write it, read it.

Two files:
- ``mini.safetensors``: float16 tensors named ``<part>/<index>``, each module's weights in
  its fixed order (``weights.ordered_variables``), parts ``text_encoder``, ``unet``,
  ``decoder`` and ``image_encoder``;
- ``mini.json``: ``{"configs": each module's get_config(), "record": what the recipe measured}``.

Why a module of its own: ``presets.load_preset("mini")`` needs only this reading side,
so it neither trains (``mini_recipe``) nor evaluates (``mini_eval``), and it never
imports the pipeline. Writes are atomic (``imagegen.files.atomic_path``).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from imagegen.clip import TextEncoder
from imagegen.files import atomic_path
from imagegen.keras_common import dtype_policy_scope
from imagegen.stable_diffusion.tensor_file import read_safetensors
from imagegen.stable_diffusion.unet import UNet
from imagegen.stable_diffusion.autoencoder import Decoder, Encoder
from imagegen.stable_diffusion.weights import assign_in_order, ordered_variables

ASSET_DIR = pathlib.Path(__file__).resolve().parent.parent / "assets" / "mini"
PARTS = ("text_encoder", "unet", "decoder", "image_encoder")
IMAGE_SIZE = 64  # the mini model's images: 64x64 pixels, 16x16x4 latents
WEIGHTS, META = "mini.safetensors", "mini.json"


def save_mini(folder, modules, record=None, dtype="float16"):
    """Write (text_encoder, unet, decoder, image_encoder) as ``mini.safetensors`` + ``mini.json`` in ``folder``."""
    from safetensors.numpy import save_file

    folder = pathlib.Path(folder)
    tensors, configs = {}, {}
    for part, module in zip(PARTS, modules):
        variables = ordered_variables(module)
        if len(variables) != len(module.weights):
            raise ValueError(f"{part}: the fixed order lists {len(variables)} of its {len(module.weights)} weights")
        for index, variable in enumerate(variables):
            tensors[f"{part}/{index:04d}"] = np.asarray(variable.numpy(), dtype=dtype)
        # Sizes only: load_mini chooses the name and the dtype policy.
        configs[part] = {k: v for k, v in module.get_config().items() if k not in ("name", "trainable", "dtype")}
    with atomic_path(folder / WEIGHTS) as temporary:
        save_file(tensors, str(temporary))
    _write_meta(folder, {"configs": configs, "record": record or {}})
    return folder / WEIGHTS


def mini_record(folder=ASSET_DIR):
    """What the recipe measured when the shipped weights were trained (``mini.json``'s record)."""
    return _read_meta(folder)["record"]


def mini_guidance(folder=ASSET_DIR):
    """The guidance scale the shipped mini follows its prompts best at, picked on its seen prompts after training
    (``world_eval.pick_guidance``); SD's 7.5 when its record has none (or is missing: loading then says so)."""
    if not (pathlib.Path(folder) / META).exists():
        return 7.5
    return float(mini_record(folder).get("guidance_scale", 7.5))


def update_record(folder, **entries):
    """Add or replace entries of ``mini.json``'s record (e.g. the prompt scores), leaving the weights alone."""
    meta = _read_meta(folder)
    meta["record"].update(entries)
    _write_meta(folder, meta)


def load_mini(folder=ASSET_DIR, dtype=None):
    """(text_encoder, unet, decoder, image_encoder) with the mini model's weights (float32 unless ``dtype``).

    dtype: a mixed-precision policy for the text encoder and the UNet; the VAE stays float32.
    """
    folder = pathlib.Path(folder)
    weights, meta = folder / WEIGHTS, folder / META
    if not weights.exists() or not meta.exists():
        raise FileNotFoundError(f"the mini model's weights are missing from {folder}; train them with "
                                "`python -m imagegen.train mini` (about 47 minutes on 2 CPU cores)")
    configs = _read_meta(folder)["configs"]
    tensors = read_safetensors(weights)
    with dtype_policy_scope(dtype):
        text_encoder, unet = TextEncoder(**configs["text_encoder"]), UNet(**configs["unet"])
    with dtype_policy_scope("float32"):
        decoder, image_encoder = Decoder(**configs["decoder"]), Encoder(**configs["image_encoder"])
    modules = (text_encoder, unet, decoder, image_encoder)
    for part, module in zip(PARTS, modules):
        arrays = [tensors[key] for key in sorted(k for k in tensors if k.startswith(part + "/"))]
        assign_in_order(module, arrays, source=f"{weights.name} ({part})")
    return modules


def _read_meta(folder):
    return json.loads((pathlib.Path(folder) / META).read_text())


def _write_meta(folder, meta):
    with atomic_path(pathlib.Path(folder) / META) as temporary:
        temporary.write_text(json.dumps(meta, indent=1, default=_jsonable))


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in {META}")
