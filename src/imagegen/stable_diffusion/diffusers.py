"""diffusers' tensor names and configs for Stable Diffusion v1, mapped onto our modules.

A diffusers model folder holds ``unet/``, ``vae/`` and ``text_encoder/``, each
with a ``config.json`` and safetensors weights (``repository.py`` chooses and
reads them). Here each tensor is mapped by name onto our variables, converting the
layouts: PyTorch convs are (out, in, kh, kw), Keras's (kh, kw, in, out); PyTorch
linear layers are (out, in), Keras's (in, out).

Names, one block at a time (diffusers left, ours right):
    time_embedding.linear_{1,2}             time_dense{1,2}
    down_blocks.L.resnets.B                 downL_resB   (norm1 conv1 time_emb_proj norm2 conv2 conv_shortcut)
    down_blocks.L.attentions.B              downL_attnB  (norm proj_in transformer_blocks.0 proj_out)
    down_blocks.L.downsamplers.0.conv       downL_downsample
    up_blocks.K.*                           up{levels-1-K}_*  (diffusers counts up blocks from the bottom)
The PyTorch libraries are needed only by the parity tests, never to load.
"""

from __future__ import annotations

import numpy as np

from imagegen.clip import TextEncoder
from imagegen.stable_diffusion.unet import UNet
from imagegen.stable_diffusion.autoencoder import Decoder, Encoder

# SD 1.5's scheduler_config.json, the schedule its single-file checkpoints were published with.
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
                      prediction_type="epsilon")

# -- layout conversions -----------------------------------------------------------------------------
def _linear(w):
    return np.asarray(w).T


def _conv(w):
    return np.asarray(w).transpose(2, 3, 1, 0)


def _linear_as_conv(w):  # a PyTorch linear (out, in) into a Keras 1x1 conv (1, 1, in, out)
    w = np.asarray(w)
    return (w[:, :, None, None] if w.ndim == 2 else w).transpose(2, 3, 1, 0)


def _same(w):
    return np.asarray(w)


def dense(layer, name, convert=_linear):
    pairs = [(layer.kernel, f"{name}.weight", convert)]
    return pairs + ([(layer.bias, f"{name}.bias", _same)] if layer.bias is not None else [])


def conv(layer, name, convert=_conv):
    return [(layer.kernel, f"{name}.weight", convert), (layer.bias, f"{name}.bias", _same)]


def norm(layer, name):
    return [(layer.gamma, f"{name}.weight", _same), (layer.beta, f"{name}.bias", _same)]


# -- the UNet ---------------------------------------------------------------------------------------
def _resblock(block, name):
    pairs = norm(block.norm1, f"{name}.norm1") + conv(block.conv1, f"{name}.conv1")
    pairs += dense(block.time_proj, f"{name}.time_emb_proj") + norm(block.norm2, f"{name}.norm2") + conv(block.conv2, f"{name}.conv2")
    return pairs + (conv(block.skip, f"{name}.conv_shortcut") if block.skip is not None else [])


def _attention(attention, name):
    pairs = []
    for ours, theirs in (("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("out_proj", "to_out.0")):
        pairs += dense(getattr(attention, ours), f"{name}.{theirs}")
    return pairs


def _spatial_transformer(layer, name):
    block, inner = layer.transformer_block, f"{name}.transformer_blocks.0"
    pairs = norm(layer.norm, f"{name}.norm") + conv(layer.proj1, f"{name}.proj_in", _linear_as_conv)
    pairs += norm(block.norm1, f"{inner}.norm1") + _attention(block.attn1, f"{inner}.attn1")
    pairs += norm(block.norm2, f"{inner}.norm2") + _attention(block.attn2, f"{inner}.attn2")
    pairs += norm(block.norm3, f"{inner}.norm3") + dense(block.geglu.dense, f"{inner}.ff.net.0.proj")
    pairs += dense(block.dense, f"{inner}.ff.net.2")
    return pairs + conv(layer.proj2, f"{name}.proj_out", _linear_as_conv)


def unet_pairs(unet):
    """(our variable, diffusers tensor name, layout conversion) for every UNet weight."""
    levels = len(unet.config["channels"])
    pairs = dense(unet.get_layer("time_dense1"), "time_embedding.linear_1")
    pairs += dense(unet.get_layer("time_dense2"), "time_embedding.linear_2") + conv(unet.get_layer("conv_in"), "conv_in")
    for layer in unet.layers:
        parts = layer.name.split("_")
        if layer.name.startswith(("down", "up")) and parts[0][-1].isdigit():
            level = int(parts[0][-1])
            side = "down_blocks" if parts[0].startswith("down") else "up_blocks"
            index = level if side == "down_blocks" else levels - 1 - level
            prefix = f"{side}.{index}"
            kind = parts[1]
            if kind.startswith("res"):
                pairs += _resblock(layer, f"{prefix}.resnets.{kind[3:]}")
            elif kind.startswith("attn"):
                pairs += _spatial_transformer(layer, f"{prefix}.attentions.{kind[4:]}")
            elif kind == "downsample":
                pairs += conv(layer, f"{prefix}.downsamplers.0.conv")
            elif kind == "upsample":
                pairs += conv(layer, f"{prefix}.upsamplers.0.conv")
    pairs += _resblock(unet.get_layer("mid_res0"), "mid_block.resnets.0")
    pairs += _spatial_transformer(unet.get_layer("mid_attn"), "mid_block.attentions.0")
    pairs += _resblock(unet.get_layer("mid_res1"), "mid_block.resnets.1")
    return pairs + norm(unet.get_layer("norm_out"), "conv_norm_out") + conv(unet.get_layer("conv_out"), "conv_out")


# -- the VAE ----------------------------------------------------------------------------------------
def _vae_resblock(block, name):
    pairs = norm(block.norm1, f"{name}.norm1") + conv(block.conv1, f"{name}.conv1")
    pairs += norm(block.norm2, f"{name}.norm2") + conv(block.conv2, f"{name}.conv2")
    return pairs + (conv(block.skip, f"{name}.conv_shortcut") if block.skip is not None else [])


def _vae_attention(block, name):
    """New diffusers names (group_norm, to_q, to_k, to_v, to_out.0); old files say query/key/value/proj_attn."""
    pairs = norm(block.norm, f"{name}.group_norm")
    for ours, theirs in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
        pairs += conv(getattr(block, ours), f"{name}.{theirs}", _linear_as_conv)
    return pairs


def _vae_pairs(model, side):
    levels = len(model.config["channels"])
    pairs = []
    for layer in model.layers:
        name, parts = layer.name, layer.name.split("_")
        if name in ("mid_res0", "mid_res1"):
            pairs += _vae_resblock(layer, f"{side}.mid_block.resnets.{name[-1]}")
        elif name == "mid_attn":
            pairs += _vae_attention(layer, f"{side}.mid_block.attentions.0")
        elif name in ("conv_in", "conv_out"):
            pairs += conv(layer, f"{side}.{name}")
        elif name == "norm_out":
            pairs += norm(layer, f"{side}.conv_norm_out")
        elif name in ("quant_conv", "post_quant_conv"):
            pairs += conv(layer, name)
        elif name.startswith(("down", "up")) and parts[0][-1].isdigit():
            level = int(parts[0][-1])
            index = level if side == "encoder" else levels - 1 - level
            if parts[1].startswith("res"):
                pairs += _vae_resblock(layer, f"{side}.{'down' if side == 'encoder' else 'up'}_blocks.{index}.resnets.{parts[1][3:]}")
            elif parts[1] == "downsample":
                pairs += conv(layer, f"{side}.down_blocks.{index}.downsamplers.0.conv")
            elif parts[1] == "upsample":
                pairs += conv(layer, f"{side}.up_blocks.{index}.upsamplers.0.conv")
    return pairs


def decoder_pairs(decoder):
    return _vae_pairs(decoder, "decoder")


def image_encoder_pairs(image_encoder):
    return _vae_pairs(image_encoder, "encoder")


# -- the text encoder -------------------------------------------------------------------------------
def text_encoder_pairs(text_encoder):
    """Names as transformers' CLIPTextModel writes them, less the "text_model." prefix older files carry."""
    embedding = text_encoder.get_layer("embedding")
    pairs = [(embedding.token_embedding.embeddings, "embeddings.token_embedding.weight", _same),
             (embedding.position_embedding, "embeddings.position_embedding.weight", _same)]
    for index in range(text_encoder.config["num_layers"]):
        layer, name = text_encoder.get_layer(f"layer_{index}"), f"encoder.layers.{index}"
        pairs += norm(layer.layer_norm1, f"{name}.layer_norm1")
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            pairs += dense(getattr(layer.attention, projection), f"{name}.self_attn.{projection}")
        pairs += norm(layer.layer_norm2, f"{name}.layer_norm2") + dense(layer.fc1, f"{name}.mlp.fc1") + dense(layer.fc2, f"{name}.mlp.fc2")
    return pairs + norm(text_encoder.get_layer("final_layer_norm"), "final_layer_norm")


_OLD_VAE_NAMES = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}


def load_pairs(pairs, tensors, source):
    """Assign every (variable, name, conversion), after checking that all names and shapes fit."""
    missing, values = [], []
    for variable, name, convert in pairs:
        key = name
        if key not in tensors:  # older VAE files use the pre-2023 attention names
            for new, old in _OLD_VAE_NAMES.items():
                key = key.replace(new, old)
        if key not in tensors:
            missing.append(name)
            continue
        value = convert(tensors[key])
        if value.shape != tuple(variable.shape):
            raise ValueError(f"{source}: {name} has shape {value.shape} after conversion; {variable.path} needs {tuple(variable.shape)}")
        values.append((variable, value))
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} tensors our model needs, e.g. {missing[:3]}: "
                         "is it a Stable Diffusion v1 model in diffusers format?")
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))


# -- configs -> our modules ----------------------------------------------------------------------
UNREADABLE_UNET = {  # a config key whose presence we cannot run -> why
    "addition_embed_type": "SDXL's extra embeddings", "class_embed_type": "a class-conditioned UNet (e.g. an upscaler)",
    "time_cond_proj_dim": "a distilled (LCM) UNet's guidance embedding", "encoder_hid_dim": "projected text features",
}


def unet_from_config(cfg, prediction="epsilon"):
    """Our UNet for a diffusers ``UNet2DConditionModel`` config (SD v1 and SD 2.x).

    prediction: what the UNet outputs, which diffusers keeps in the scheduler's config ("epsilon" or "v").
    """
    for key, what in UNREADABLE_UNET.items():
        if cfg.get(key) is not None:
            raise ValueError(f"not loaded: the UNet config sets {key} ({what}); this course runs SD v1 and 2.x UNets")
    if cfg.get("in_channels", 4) != cfg.get("out_channels", 4):
        raise ValueError(f"not loaded: the UNet reads {cfg['in_channels']} channels and writes {cfg.get('out_channels', 4)} "
                         "(an inpainting or depth model); this course runs text-to-image SD v1 and 2.x UNets")
    # diffusers' "attention_head_dim" is, in SD's configs, the number of heads: 8 (SD v1), or per level
    # [5, 10, 20, 20] (SD 2.x). SD 2.x's linear proj_in/proj_out equal our 1x1 convs (same weights, 2-D).
    heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
    heads = tuple(heads) if isinstance(heads, (list, tuple)) else heads
    return UNet(channels=tuple(cfg["block_out_channels"]), num_heads=heads, context_dim=cfg["cross_attention_dim"],
                attention_levels=tuple(t.startswith("CrossAttn") for t in cfg["down_block_types"]),
                time_dim=cfg["block_out_channels"][0], layers_per_block=cfg["layers_per_block"],
                groups=cfg.get("norm_num_groups", 32), latent_channels=cfg.get("in_channels", 4),
                gelu_approximate=False, transformer_norm_epsilon=1e-6, prediction=prediction)


def vae_from_config(cfg):
    kwargs = dict(channels=tuple(cfg["block_out_channels"]), latent_channels=cfg["latent_channels"],
                  groups=cfg.get("norm_num_groups", 32), norm_epsilon=1e-6)
    if cfg.get("layers_per_block", 2) != 2:
        raise ValueError(f"layers_per_block={cfg['layers_per_block']} is not SD v1's VAE (2)")
    if abs(cfg.get("scaling_factor", 0.18215) - 0.18215) > 1e-6:
        raise ValueError(f"the VAE's scaling_factor is {cfg['scaling_factor']}, not SD v1's 0.18215 (an SDXL or SD 3 VAE?)")
    return Decoder(**kwargs), Encoder(**kwargs)


def text_encoder_from_config(cfg):
    activation = {"quick_gelu": "quick_gelu", "gelu": "gelu"}[cfg.get("hidden_act", "quick_gelu")]
    return TextEncoder(cfg["vocab_size"], cfg["max_position_embeddings"], cfg["hidden_size"], cfg["num_hidden_layers"],
                       cfg["num_attention_heads"], activation=activation, end_token_id=cfg.get("eos_token_id", 49407))
