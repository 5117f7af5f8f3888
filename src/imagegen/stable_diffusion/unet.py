"""Stable Diffusion's UNet: a noisy latent, a timestep and the prompt's tokens -> the predicted noise.

    latent (b, h/8, w/8, 4) --conv_in--> 320 channels
    down:   per level, 2 x [ResBlock, SpatialTransformer], then a stride-2 conv
            (the last level: ResBlocks only, no downsampling)
    middle: ResBlock, SpatialTransformer, ResBlock
    up:     per level, 3 x [concat skip, ResBlock, SpatialTransformer], then upsample
    out:    GroupNorm, swish, conv -> 4 channels

    ResBlock(x, emb) = skip(x) + conv(swish(norm(conv(swish(norm(x))) + dense(swish(emb)))))
    emb = Dense(swish(Dense(sinusoids(timestep))))          timestep in 0..999

The spatial transformers (``imagegen.diffusion.attention``) are where the text
comes in: every latent pixel attends to the 77 token features. ``CONFIGS``
holds SD v1's sizes (859,520,964 parameters) and small ones for tests and the
course's mini model. Layers are created in KerasCV's order with KerasCV's
structure, so weights map one to one (``weights.py``).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from imagegen.diffusion.attention import SpatialTransformer
from imagegen.diffusion.pixel_unet import SinusoidalEmbedding
from imagegen.diffusion.prediction import check_prediction
from imagegen.keras_common import build_with_policy, dtype_policy_scope

CONFIGS = {
    # SD v1.x: 4 levels, heads of 8, text features of CLIP ViT-L/14 (768).
    "sd-v1": dict(channels=(320, 640, 1280, 1280), attention_levels=(True, True, True, False), num_heads=8,
                  context_dim=768, time_dim=320, layers_per_block=2, groups=32),
    # A few thousand parameters per block: unit tests.
    "tiny": dict(channels=(32, 64), attention_levels=(True, False), num_heads=2,
                 context_dim=32, time_dim=32, layers_per_block=1, groups=8),
    # The course's mini SD (16x16 latents of 64x64 toy-world scenes, the toy CLIP's 128-wide text features).
    "mini": dict(channels=(32, 64, 96), attention_levels=(False, True, True), num_heads=4,
                 context_dim=128, time_dim=64, layers_per_block=2, groups=8, prediction="v"),
}


@keras.saving.register_keras_serializable("imagegen")
class ResBlock(layers.Layer):
    """x (b, h, w, c_in) [, time embedding (b, e)] -> (b, h, w, c_out): SD's residual block, UNet's and VAE's.

    The UNet's adds the embedding between the two convs; the autoencoder's
    (``time_embedding=False``, KerasCV's ``ResnetBlock``) has no time input. Both
    list their weights in KerasCV's order: norm1, conv1, [time_proj,] norm2, conv2, skip.
    epsilon: the GroupNorms' (KerasCV's 1e-5; diffusers' VAE uses 1e-6).
    """

    def __init__(self, output_dim, groups=32, epsilon=1e-5, time_embedding=True, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.groups, self.epsilon, self.time_embedding = output_dim, groups, epsilon, time_embedding
        with build_with_policy(self):
            self.norm1 = layers.GroupNormalization(groups, epsilon=epsilon, name="norm1")
            self.conv1 = layers.Conv2D(output_dim, 3, padding="same", name="conv1")
            self.time_proj = layers.Dense(output_dim, name="time_proj") if time_embedding else None
            self.norm2 = layers.GroupNormalization(_groups_for(output_dim, groups), epsilon=epsilon, name="norm2")
            self.conv2 = layers.Conv2D(output_dim, 3, padding="same", name="conv2")

    def build(self, x_shape, embedding_shape=None):
        self.norm1.groups = _groups_for(x_shape[-1], self.groups)
        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        if self.time_proj is not None:
            self.time_proj.build(embedding_shape)
        out_shape = (*x_shape[:-1], self.output_dim)
        self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        # Created last, as KerasCV does: its weights come last in the block.
        with build_with_policy(self):
            self.skip = layers.Conv2D(self.output_dim, 1, name="skip") if x_shape[-1] != self.output_dim else None
        if self.skip is not None:
            self.skip.build(x_shape)
        self.built = True

    def call(self, x, embedding=None):
        h = self.conv1(ops.silu(self.norm1(x)))
        if self.time_proj is not None:
            h = h + self.time_proj(ops.silu(embedding))[:, None, None, :]
        h = self.conv2(ops.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "groups": self.groups, "epsilon": self.epsilon,
                "time_embedding": self.time_embedding}


def _groups_for(channels, groups):
    """The largest group count <= groups that divides channels (SD's sizes always take 32)."""
    while channels % groups:
        groups -= 1
    return groups


@keras.saving.register_keras_serializable("imagegen")
class UNet(keras.Model):
    """[latent (b, h, w, 4), timesteps (b,), context (b, L, context_dim)] -> predicted noise (b, h, w, 4).

    ``UNet.from_config_name("sd-v1")`` is SD v1's; any spatial size divisible by
    2 ** (levels - 1) works (a 512x512 image has a 64x64 latent).
    gelu_approximate, transformer_norm_epsilon: KerasCV's choices by default; weights
    from diffusers use its exact GELU and 1e-6 (``diffusers.py``).
    prediction: what the output means, which the pipeline reads: "epsilon" (the
    noise, SD v1) or "v" = sqrt(a) noise - sqrt(1 - a) x0 (SD 2 and the course's mini).
    dtype: the layers' dtype policy (default: the global one when it is built); saved with the model.
    """

    def __init__(self, channels=(320, 640, 1280, 1280), attention_levels=(True, True, True, False), num_heads=8,
                 context_dim=768, time_dim=320, layers_per_block=2, groups=32, latent_channels=4, context_length=None,
                 gelu_approximate=True, transformer_norm_epsilon=1e-5, prediction="epsilon", **kwargs):
        check_prediction(prediction)
        if len(attention_levels) != len(channels):
            raise ValueError(f"attention_levels needs one flag per level: {len(channels)}, got {len(attention_levels)}")
        heads = tuple(num_heads) if isinstance(num_heads, (list, tuple)) else (num_heads,) * len(channels)
        if len(heads) != len(channels) or any(c % h for c, h in zip(channels, heads)):
            raise ValueError(f"num_heads {num_heads} must be one number or one per level, dividing each level's "
                             f"channels {channels}")
        with dtype_policy_scope(kwargs.get("dtype")):
            latent, timesteps, context, noise, order = self._build(
                channels, attention_levels, heads, context_dim, time_dim, layers_per_block, groups, latent_channels,
                context_length, gelu_approximate, transformer_norm_epsilon)
            kwargs.setdefault("name", "unet")
            super().__init__([latent, timesteps, context], noise, **kwargs)  # a functional model takes the global policy
        self.config = dict(channels=tuple(channels), attention_levels=tuple(attention_levels),
                           num_heads=heads if len(set(heads)) > 1 else heads[0],
                           context_dim=context_dim, time_dim=time_dim, layers_per_block=layers_per_block, groups=groups,
                           latent_channels=latent_channels, context_length=context_length,
                           gelu_approximate=gelu_approximate, transformer_norm_epsilon=transformer_norm_epsilon,
                           prediction=prediction)
        self.downsampling = 2 ** (len(channels) - 1)
        self.keras_cv_order = order  # layer names in KerasCV's weight order (``imagegen.weight_order``)

    @staticmethod
    def _build(channels, attention_levels, heads, context_dim, time_dim, layers_per_block, groups, latent_channels,
               context_length, gelu_approximate, transformer_norm_epsilon):
        """The functional graph: (latent, timesteps, context) inputs, the noise output, and KerasCV's layer order."""
        latent = keras.Input((None, None, latent_channels), name="latent")
        timesteps = keras.Input((), name="timesteps")
        context = keras.Input((context_length, context_dim), name="context")

        order = []  # layer names in KerasCV's weight order (see ``keras_cv_order``)

        def add(layer):
            order.append(layer.name)
            return layer

        def transformer(x, name, level):  # SD v1: 8 heads everywhere; SD 2.x: 5, 10, 20, 20 (64 channels each)
            width = x.shape[-1]
            return add(SpatialTransformer(heads[level], width // heads[level], groups=_groups_for(width, groups),
                                          norm_epsilon=transformer_norm_epsilon, gelu_approximate=gelu_approximate, name=name))(x, context)

        def res(x, width, name):
            return add(ResBlock(width, groups, name=name))(x, embedding)

        def conv(x, filters, name, strides=1):  # 3x3, zero padding 1 on each side
            return add(layers.Conv2D(filters, 3, strides=strides, name=name))(layers.ZeroPadding2D(1)(x))

        # Time embedding: sinusoids of the integer timestep (SD's, not t in [0, 1]), then a 2-layer MLP.
        # float32 whatever the policy: sin(999 f) in float16 would be off by a large fraction of a turn.
        embedding = SinusoidalEmbedding(time_dim, dtype="float32", name="time_sinusoids")(timesteps)
        embedding = add(layers.Dense(4 * time_dim, name="time_dense1"))(embedding)
        x = conv(latent, channels[0], "conv_in")  # KerasCV's weights list conv_in between the two time layers
        embedding = add(layers.Dense(4 * time_dim, name="time_dense2"))(ops.silu(embedding))

        skips = [x]
        for level, width in enumerate(channels):
            for block in range(layers_per_block):
                x = res(x, width, f"down{level}_res{block}")
                if attention_levels[level]:
                    x = transformer(x, f"down{level}_attn{block}", level)
                skips.append(x)
            if level < len(channels) - 1:
                x = conv(x, width, f"down{level}_downsample", strides=2)
                skips.append(x)

        x = res(x, channels[-1], "mid_res0")
        x = transformer(x, "mid_attn", len(channels) - 1)
        x = res(x, channels[-1], "mid_res1")

        for level in reversed(range(len(channels))):
            width = channels[level]
            for block in range(layers_per_block + 1):
                x = layers.Concatenate()([x, skips.pop()])
                x = res(x, width, f"up{level}_res{block}")
                if attention_levels[level]:
                    x = transformer(x, f"up{level}_attn{block}", level)
            if level > 0:
                x = conv(layers.UpSampling2D(2)(x), width, f"up{level}_upsample")

        x = ops.silu(add(layers.GroupNormalization(_groups_for(channels[0], groups), epsilon=1e-5, name="norm_out"))(x))
        noise = conv(x, latent_channels, "conv_out")
        return latent, timesteps, context, noise, order

    @classmethod
    def from_config_name(cls, name, **overrides):
        """A randomly initialised UNet of a named size ("sd-v1", "tiny", "mini")."""
        if name not in CONFIGS:
            raise ValueError(f"unknown UNet config {name!r}; choose one of {', '.join(CONFIGS)}")
        return cls(**{**CONFIGS[name], **overrides})

    def get_config(self):
        return {**super().get_config(), **self.config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
