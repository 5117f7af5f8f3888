"""Which word went where: a prompt's cross-attention maps (Hertz et al. 2022, "Prompt-to-Prompt").

In every spatial transformer of the UNet, each latent pixel attends to the prompt's
tokens with weights softmax(q k^T / sqrt(d)) that sum to 1 over the tokens. Averaged
over the layers (upsampled to the latent size), the heads and the denoising steps,
the weight a pixel gives one token is a map of where that word is being drawn.
Only the prompt's half of the guided batch is read, not the negative's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from keras import ops

from imagegen.diffusion.attention import CrossAttention


@dataclass
class AttentionMaps:
    """image: uint8 (H, W, 3). maps: float32 (h, w, tokens) at the latent size, every token of the context
    (start, words, end and padding), each pixel's weights summing to 1. words: the prompt's words (BPE
    pieces) in order; ``word_maps`` holds their maps, (len(words), h, w)."""

    image: np.ndarray
    maps: np.ndarray
    words: list

    @property
    def word_maps(self):
        return np.moveaxis(self.maps[..., 1 : 1 + len(self.words)], -1, 0)  # token 0 is the start token


def cross_attention_layers(unet):
    """The UNet's cross-attention layers (``attn2`` of each transformer block), outermost first."""
    return [layer for layer in unet._flatten_layers() if isinstance(layer, CrossAttention) and layer.name == "attn2"]


def attention_maps(pipeline, prompt, num_steps=25, guidance_scale=7.5, seed=0):
    """Generate one picture for ``prompt`` while recording the UNet's cross-attention; returns ``AttentionMaps``.

    The weights are read in eager mode (a compiled call hands over no intermediate values), so this runs
    slower than ``pipeline.text_to_image``; it draws the same picture for the same seed.
    """
    from imagegen.stable_diffusion.pipeline import StableDiffusion

    layers = cross_attention_layers(pipeline.unet)
    if not layers:
        raise ValueError("this UNet has no cross-attention layers (no SpatialTransformer): nothing reads the prompt")
    eager = StableDiffusion(pipeline.text_encoder, pipeline.unet, pipeline.decoder, None, pipeline.tokenizer,
                            pipeline.img_height, pipeline.img_width, scheduler=pipeline.scheduler, jit_compile=False,
                            progress=False)
    height, width = eager.latent_shape[:2]
    total, calls = None, 0

    def record(weights):  # (2b, heads, n, m): the prompt's half first, then the negative prompt's
        nonlocal total, calls
        weights = np.asarray(ops.convert_to_numpy(ops.cast(weights, "float32")))
        per_pixel = weights[: len(weights) // 2].mean(axis=(0, 1))  # (n, m), mean over the batch and heads
        factor = int(round((height * width / per_pixel.shape[0]) ** 0.5))  # this layer's downsampling
        grid = per_pixel.reshape(height // factor, width // factor, -1)
        grid = np.repeat(np.repeat(grid, factor, axis=0), factor, axis=1)  # nearest upsampling to the latents
        total = grid if total is None else total + grid
        calls += 1

    for layer in layers:
        layer.recorder = record
    try:
        image = eager.text_to_image(prompt, num_steps=num_steps, unconditional_guidance_scale=guidance_scale,
                                    seed=seed)[0]
    finally:
        for layer in layers:
            layer.recorder = None
    ids = eager.tokenizer.encode(prompt)[1:-1][: eager.text_encoder.max_length - 2]
    words = [eager.tokenizer.decode([token]) for token in ids]
    return AttentionMaps(image, (total / calls).astype("float32"), words)


def plot_attention_maps(result, words=None, size=1.6):
    """The picture, then one panel per word: its map over the picture, stretched from its own minimum (dark) to
    its maximum (bright), since a word's weights vary by a few tens of percent across the picture.
    words: which of ``result.words`` to show, every occurrence (default all). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    missing = sorted(set(words or ()) - set(result.words))
    if missing:
        raise ValueError(f"{missing} are not tokens of this prompt; its tokens are {result.words}")
    positions = [i for i, word in enumerate(result.words) if words is None or word in words]
    figure, axes = plt.subplots(1, len(positions) + 1, figsize=(size * (len(positions) + 1), size * 1.15))
    axes[0].imshow(result.image)
    axes[0].set_title("picture", fontsize=9)
    (image_height, image_width), maps = result.image.shape[:2], result.word_maps
    for axis, position in zip(axes[1:], positions):
        low, high = float(maps[position].min()), float(maps[position].max())
        heat = (maps[position] - low) / max(high - low, 1e-8)  # (w - min) / (max - min), in [0, 1]
        heat = np.kron(heat, np.ones((image_height // heat.shape[0], image_width // heat.shape[1])))  # to pixels
        axis.imshow(result.image)
        axis.imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        axis.set_title(repr(result.words[position]), fontsize=9)
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    return figure
