"""Load a Stable Diffusion v1.x single-file checkpoint (the original CompVis layout) into our modules.

Why: most SD v1 fine-tunes are published as one ``.safetensors`` file
(``v1-5-pruned-emaonly.safetensors`` and the like) rather than as a diffusers
folder. Such a file holds the three networks under their original names:

    model.diffusion_model.*                       the UNet (CompVis ``openaimodel`` names)
    first_stage_model.*                           the VAE (``taming``-style names)
    cond_stage_model.transformer[.text_model].*   CLIP's text tower (transformers' names)
    model_ema.<flattened UNet name>               EMA copies of the UNet, in full (non-"emaonly") files

We rename every tensor to its diffusers name (pure functions on the names, below),
infer the architecture from the tensor shapes, then reuse ``diffusers.py``'s pairing
(``unet_pairs`` ...) and ``load_pairs``, which check shapes and convert layouts.
Only safetensors are read, with numpy (``tensor_file.read_safetensors``): pickle files (.ckpt) can run code when loaded.
Head counts and GroupNorm group counts are not in the weights: the arguments say them.
"""

from __future__ import annotations

import pathlib
import re

from imagegen.stable_diffusion.diffusers import (decoder_pairs, image_encoder_pairs, load_pairs, text_encoder_from_config,
                                                 text_encoder_pairs, unet_from_config, unet_pairs, vae_from_config)
from imagegen.stable_diffusion.tensor_file import read_safetensors

UNET, VAE, TEXT = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
PARTS = {UNET: "the UNet", VAE: "the VAE", TEXT: "the CLIP text encoder"}
EMA, EMA_BUFFERS = "model_ema.", ("model_ema.decay", "model_ema.num_updates")


# -- names: original -> diffusers -------------------------------------------------------------------
# A UNet ResBlock: in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU, linear], out_layers = [GroupNorm, SiLU, Dropout, conv].
_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj", "out_layers.0": "norm2",
           "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
# Top-level UNet layers: time_embed = [linear, SiLU, linear], out = [GroupNorm, SiLU, conv].
_UNET_FIXED = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
               "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out"}
_VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _resnet(rest):
    layer, _, param = rest.rpartition(".")
    return f"{_RESNET.get(layer, layer)}.{param}"


def unet_name(key, per_level):
    """A UNet tensor name without ``model.diffusion_model.``, in diffusers' naming.

    per_level = layers_per_block + 1. ``input_blocks`` is a flat list: [conv_in], then per level
    ``layers_per_block`` x [ResBlock (.0), transformer (.1) if the level attends] and, but for the last
    level, one [Downsample (.0.op)]: input_blocks.i is level (i-1) // per_level, block (i-1) % per_level.
    ``output_blocks`` counts from the bottom as diffusers' up_blocks do, per_level blocks each; the
    Upsample closes a level's last block: ``.1.conv`` without a transformer, ``.2.conv`` after one.
    ``middle_block`` = [ResBlock, transformer, ResBlock]. Transformers keep their inner names.
    """
    layer, _, param = key.rpartition(".")
    if layer in _UNET_FIXED:
        return f"{_UNET_FIXED[layer]}.{param}"
    parts = key.split(".")
    if parts[0] == "middle_block":
        rest = ".".join(parts[2:])
        return {"0": f"mid_block.resnets.0.{_resnet(rest)}", "1": f"mid_block.attentions.0.{rest}",
                "2": f"mid_block.resnets.1.{_resnet(rest)}"}.get(parts[1], key)
    if parts[0] not in ("input_blocks", "output_blocks") or len(parts) < 4:
        return key  # not ours: reported as unused
    index, sub, rest = int(parts[1]), parts[2], ".".join(parts[3:])
    if parts[0] == "input_blocks":
        level, block = divmod(index - 1, per_level)
        prefix, sampler = f"down_blocks.{level}", ("op.", "downsamplers")
    else:
        level, block = divmod(index, per_level)
        prefix, sampler = f"up_blocks.{level}", ("conv.", "upsamplers")
    if rest.startswith(sampler[0]):
        return f"{prefix}.{sampler[1]}.0.conv.{rest[len(sampler[0]):]}"
    return f"{prefix}.resnets.{block}.{_resnet(rest)}" if sub == "0" else f"{prefix}.attentions.{block}.{rest}"


def vae_name(key, levels):
    """A VAE tensor name without ``first_stage_model.``, in diffusers' naming.

    encoder.down.L.block.B / .downsample.conv -> encoder.down_blocks.L.resnets.B / .downsamplers.0.conv;
    decoder.up.L counts from the top (up.0 is the widest, last-run level) while diffusers' up_blocks run
    from the bottom: up.L -> up_blocks.(levels - 1 - L). mid.block_{1,2} -> mid_block.resnets.{0,1},
    mid.attn_1.{norm,q,k,v,proj_out} -> mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}
    (q, k, v, proj_out stay 1x1 convs: ``load_pairs``' conversion reads them as they are).
    """
    key = key.replace(".nin_shortcut.", ".conv_shortcut.").replace(".norm_out.", ".conv_norm_out.")
    key = re.sub(r"\.mid\.block_([12])\.", lambda m: f".mid_block.resnets.{int(m[1]) - 1}.", key)
    if m := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", key):
        return f"{m[1]}.mid_block.attentions.0.{_VAE_ATTENTION[m[2]]}.{m[3]}"
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.(block\.(\d+)|downsample)\.(.+)", key):
        inner = f"resnets.{m[3]}" if m[3] else "downsamplers.0"
        return f"encoder.down_blocks.{m[1]}.{inner}.{m[4]}"
    if m := re.fullmatch(r"decoder\.up\.(\d+)\.(block\.(\d+)|upsample)\.(.+)", key):
        inner = f"resnets.{m[3]}" if m[3] else "upsamplers.0"
        return f"decoder.up_blocks.{levels - 1 - int(m[1])}.{inner}.{m[4]}"
    return key


def text_name(key):
    """transformers' CLIPTextModel names, less the "text_model." that newer files carry."""
    return key.removeprefix("text_model.")


# -- the file's tensors ------------------------------------------------------------------------------
def _kind_check(tensors, name):
    """Refuse what is not a full SD v1 checkpoint, saying what it looks like."""
    if any(k.startswith("conditioner.embedders.") for k in tensors):
        raise ValueError(f"{name} is an SDXL checkpoint (conditioner.embedders.*); this loader reads SD v1.x files")
    if any(k.startswith("cond_stage_model.model.") for k in tensors):
        raise ValueError(f"{name} is an SD 2.x checkpoint (OpenCLIP text encoder, cond_stage_model.model.*); "
                         "this loader reads SD v1.x files")
    missing = [f"{part} ({prefix}*)" for prefix, part in PARTS.items() if not any(k.startswith(prefix) for k in tensors)]
    if missing:
        hint = (" (its keys look like a LoRA's)" if any("lora" in k.lower() for k in tensors) else
                " (it looks like a VAE-only file)" if any(k.startswith(("encoder.", "decoder.")) for k in tensors) else "")
        raise ValueError(f"{name} is not a full SD v1 checkpoint{hint}: it lacks {' and '.join(missing)}")


def _part(tensors, prefix):
    """One network's tensors, prefix removed, less buffers: CLIP's position_ids, the VAE's training loss (loss.*)."""
    return {k[len(prefix):]: v for k, v in tensors.items()
            if k.startswith(prefix) and not k.endswith("position_ids") and not k.startswith(VAE + "loss.")}


def _unet_tensors(tensors, ema, name):
    """The UNet's tensors (original names, prefix removed): EMA copies or not, when the file has both.

    model_ema.* flattens each name: "model.diffusion_model.out.0.weight" -> "model_ema.diffusion_modelout0weight".
    """
    unet = _part(tensors, UNET)
    if not any(k.startswith(EMA) and k not in EMA_BUFFERS for k in tensors):
        return unet  # an "emaonly" file: its only UNet weights are the EMA ones
    print(f"{name} holds EMA and non-EMA UNet weights: using the {'EMA' if ema else 'non-EMA'} ones (ema={ema})")
    if not ema:
        return unet
    flat = {k: EMA + "diffusion_model" + k.replace(".", "") for k in unet}
    lacking = [k for k, f in flat.items() if f not in tensors]
    if lacking:
        raise ValueError(f"{name} lacks EMA copies of {len(lacking)} UNet tensors, e.g. {flat[lacking[0]]}; try ema=False")
    return {k: tensors[f] for k, f in flat.items()}


def _renamed(part, rename, source):
    out = {}
    for key, value in part.items():
        new = rename(key)
        if new in out:
            raise ValueError(f"{source}: two tensors map to {new}")
        out[new] = value
    return out


def _load(pairs_list, tensors, source):
    """``load_pairs`` for each list of pairs, after refusing tensors that no pair reads (an architecture we don't build)."""
    unused = sorted(set(tensors) - {name for pairs in pairs_list for _, name, _ in pairs})
    if unused:
        raise ValueError(f"{source}: {len(unused)} tensors fit no layer of SD v1's architecture, e.g. {unused[:3]} "
                         "(diffusers names): is this an SD v1.x checkpoint?")
    for pairs in pairs_list:
        load_pairs(pairs, tensors, source)


def _unet_config(unet, heads, groups, name):
    """A diffusers UNet2DConditionModel config from the shapes of the UNet's tensors (original names)."""
    count = len({k.split(".")[1] for k in unet if k.startswith("input_blocks.")})  # levels * (layers_per_block + 1)
    levels = 1 + sum(k.startswith("input_blocks.") and k.endswith(".0.op.weight") for k in unet)
    per_level = count // levels
    first = [1 + level * per_level for level in range(levels)]  # each level's first input block
    attention = [f"input_blocks.{i}.1.proj_in.weight" in unet for i in first]
    mid_proj = unet.get("middle_block.1.proj_in.weight")
    if mid_proj is not None and mid_proj.ndim == 2:
        raise ValueError(f"{name}: linear transformer projections are SD 2.x's layout; this loader reads SD v1.x files")
    in_channels, out_channels = unet["input_blocks.0.0.weight"].shape[1], unet["out.2.weight"].shape[0]
    if in_channels != out_channels:
        raise ValueError(f"{name}: a UNet with {in_channels} input channels and {out_channels} outputs "
                         "(an inpainting or instruct-pix2pix model) is not supported")
    return dict(block_out_channels=[unet[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0] for i in first],
                layers_per_block=per_level - 1, attention_head_dim=heads, norm_num_groups=groups,
                cross_attention_dim=unet["middle_block.1.transformer_blocks.0.attn2.to_k.weight"].shape[1],
                down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
                in_channels=in_channels), per_level


def _vae_config(vae, groups):
    levels = len({k.split(".")[2] for k in vae if k.startswith("encoder.down.")})
    return dict(block_out_channels=[vae[f"encoder.down.{level}.block.0.conv1.weight"].shape[0] for level in range(levels)],
                latent_channels=vae["post_quant_conv.weight"].shape[0], norm_num_groups=groups,
                layers_per_block=len({k.split(".")[4] for k in vae if k.startswith("encoder.down.0.block.")}))


def _text_config(text, heads):
    token = text["embeddings.token_embedding.weight"]
    return dict(vocab_size=token.shape[0], hidden_size=token.shape[1], num_attention_heads=heads,
                max_position_embeddings=text["embeddings.position_embedding.weight"].shape[0],
                num_hidden_layers=len({k.split(".")[2] for k in text if k.startswith("encoder.layers.")}))


def load_single_file(path, ema=True, unet_heads=8, text_heads=12, dtype=None, groups=32):
    """(text_encoder, unet, decoder, image_encoder) from an SD v1.x single-file .safetensors checkpoint.

    ema: with a file that holds both (``v1-5-pruned.safetensors``), the EMA UNet weights (for sampling)
    or the raw ones (ema=False, to resume training); "emaonly" files hold only the EMA ones.
    unet_heads, text_heads, groups: what the weights don't say (SD v1: 8, 12 and 32 GroupNorm groups).
    dtype: a mixed-precision policy for the text encoder and the UNet (the VAE stays float32), as ``presets.build``.
    """
    from imagegen.keras_common import dtype_policy_scope

    tensors = read_safetensors(path)  # refuses pickles, names a missing file
    name = pathlib.Path(path).name
    _kind_check(tensors, name)
    unet, vae, text = _unet_tensors(tensors, ema, name), _part(tensors, VAE), _part(tensors, TEXT)
    try:
        unet_cfg, per_level = _unet_config(unet, unet_heads, groups, name)
        vae_cfg, text_cfg = _vae_config(vae, groups), _text_config({text_name(k): v for k, v in text.items()}, text_heads)
    except KeyError as error:
        raise ValueError(f"{name} lacks {error}, which every SD v1.x checkpoint has: is it one?") from None
    with dtype_policy_scope(dtype):
        text_encoder, unet_model = text_encoder_from_config(text_cfg), unet_from_config(unet_cfg)
    with dtype_policy_scope("float32"):
        decoder, image_encoder = vae_from_config(vae_cfg)
    levels = len(vae_cfg["block_out_channels"])
    _load([unet_pairs(unet_model)], _renamed(unet, lambda k: unet_name(k, per_level), f"{name} (UNet)"), f"{name} (UNet)")
    _load([decoder_pairs(decoder), image_encoder_pairs(image_encoder)],
          _renamed(vae, lambda k: vae_name(k, levels), f"{name} (VAE)"), f"{name} (VAE)")
    _load([text_encoder_pairs(text_encoder)], _renamed(text, text_name, f"{name} (text encoder)"), f"{name} (text encoder)")
    return text_encoder, unet_model, decoder, image_encoder
