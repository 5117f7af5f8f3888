"""The denoising UNet: noisy images and a timestep -> the predicted noise (or v).

The shape is Stable Diffusion's, small: a stride-2 encoder and a decoder with
skip connections, built from residual blocks that each receive the time
embedding, and optional attention at chosen resolutions. With ``context_dim``
set, those attention blocks become Stable Diffusion's spatial transformers
(self-attention, cross-attention to the text tokens, feed-forward; see
``attention.py``), and the middle always gets one (notebook 05).

    ResBlock(x, emb) = x' + conv(swish(norm(conv(swish(norm(x))) + dense(emb))))
    time embedding   = MLP(sinusoids(timestep))   (timesteps 0..1000, as SD's; ``diffusion.schedules``)
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from imagegen.diffusion.attention import SpatialTransformer


@keras.saving.register_keras_serializable("imagegen")
class SinusoidalEmbedding(layers.Layer):
    """Timesteps (batch,) or (batch, 1), 0 to 1000 -> (batch, dims): [cos(t f_k), sin(t f_k)].

    Frequencies f_k = exp(-ln(max_period) * k / (dims / 2)), k = 0..dims/2-1, as in
    the Transformer's positions and Stable Diffusion's timestep embedding. Every
    schedule of the course hands the network timesteps on this one scale.
    """

    def __init__(self, dims=64, max_period=10_000.0, **kwargs):
        super().__init__(**kwargs)
        if dims % 2:
            raise ValueError(f"dims must be even, got {dims}")
        self.dims, self.max_period = dims, max_period

    def call(self, times):
        half = self.dims // 2
        frequencies = ops.exp(-math.log(self.max_period) * ops.arange(half, dtype="float32") / half)
        angles = ops.reshape(ops.cast(times, "float32"), (-1, 1)) * frequencies[None, :]
        return ops.concatenate([ops.cos(angles), ops.sin(angles)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "max_period": self.max_period}


def residual_block(x, embedding, width, groups=8, name=None):
    """GroupNorm-swish-conv twice, with the time embedding added in between, plus a skip.

    embedding: None for a block without time (CLIP's ResNet image encoder uses it so).
    The last conv starts at zero, so a new block starts as the identity.
    """
    skip = x if x.shape[-1] == width else layers.Conv2D(width, 1, name=f"{name}_skip")(x)
    h = layers.Activation("swish")(layers.GroupNormalization(min(groups, x.shape[-1]), name=f"{name}_norm1")(x))
    h = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv1")(h)
    if embedding is not None:
        h = h + layers.Dense(width, name=f"{name}_time")(embedding)[:, None, None, :]
    h = layers.Activation("swish")(layers.GroupNormalization(min(groups, width), name=f"{name}_norm2")(h))
    h = layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros", name=f"{name}_conv2")(h)
    return skip + h


def attention_block(x, heads=4, groups=8, name=None):
    """Residual, pre-normalised self-attention over the pixels (unconditional models)."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    key_dim = max(channels // heads, 8)
    tokens = layers.Reshape((height * width, channels))(layers.GroupNormalization(min(groups, channels), name=f"{name}_norm")(x))
    attended = layers.MultiHeadAttention(heads, key_dim, name=f"{name}_self")(tokens, tokens)
    hidden = layers.Reshape((height * width, channels))(x) + attended
    return layers.Reshape((height, width, channels))(hidden)


def _attend(x, context, heads, name):
    """Self-attention only without a context; SD's spatial transformer with one."""
    if context is None:
        return attention_block(x, heads, name=name)
    width = x.shape[-1]
    if width % heads:
        raise ValueError(f"width {width} must divide by heads {heads} for cross-attention")
    return SpatialTransformer(heads, width // heads, groups=min(8, width), name=name)(x, context)


def build_unet(image_size=32, channels=3, widths=(32, 64, 96), block_depth=2, attention_resolutions=(),
               embedding_dims=64, context_dim=None, context_length=None, heads=4, name="unet"):
    """A UNet that predicts noise: inputs [noisy images (b, s, s, c), times (b, 1)] (+ [context (b, L, d)]).

    widths: channels per resolution; each level after the first halves the size.
    block_depth: residual blocks per level, on the way down and up.
    attention_resolutions: image sides (e.g. (8,)) whose blocks get attention.
    context_dim, context_length: set both to condition on a token sequence (cross-attention).
    """
    if image_size % (2 ** (len(widths) - 1)):
        raise ValueError(f"image_size {image_size} must divide by 2**{len(widths) - 1} for {len(widths)} widths")
    noisy = keras.Input((image_size, image_size, channels), name="noisy_images")
    times = keras.Input((1,), name="times")
    inputs = [noisy, times]
    context = None
    if context_dim is not None:
        context = keras.Input((context_length, context_dim), name="context")
        inputs.append(context)
    embedding = SinusoidalEmbedding(embedding_dims, name="time_sinusoids")(times)
    embedding = layers.Dense(embedding_dims * 4, activation="swish", name="time_mlp1")(embedding)
    embedding = layers.Dense(embedding_dims * 4, name="time_mlp2")(embedding)

    x = layers.Conv2D(widths[0], 3, padding="same", name="stem")(noisy)
    skips = [x]
    for level, width in enumerate(widths):
        for block in range(block_depth):
            x = residual_block(x, embedding, width, name=f"down{level}_res{block}")
            if x.shape[1] in attention_resolutions:
                x = _attend(x, context, heads, name=f"down{level}_attn{block}")
            skips.append(x)
        if level < len(widths) - 1:
            x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"down{level}_downsample")(x)
            skips.append(x)

    x = residual_block(x, embedding, widths[-1], name="middle_res0")
    x = _attend(x, context, heads, name="middle_attn") if (attention_resolutions or context is not None) else x
    x = residual_block(x, embedding, widths[-1], name="middle_res1")

    for level, width in reversed(list(enumerate(widths))):
        for block in range(block_depth + 1):
            x = layers.Concatenate()([x, skips.pop()])
            x = residual_block(x, embedding, width, name=f"up{level}_res{block}")
            if x.shape[1] in attention_resolutions:
                x = _attend(x, context, heads, name=f"up{level}_attn{block}")
        if level > 0:
            x = layers.UpSampling2D(2, interpolation="nearest")(x)
            x = layers.Conv2D(width, 3, padding="same", name=f"up{level}_upsample")(x)

    x = layers.Activation("swish")(layers.GroupNormalization(min(8, widths[0]), name="out_norm")(x))
    noise = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros", name="out")(x)
    return keras.Model(inputs, noise, name=name)
