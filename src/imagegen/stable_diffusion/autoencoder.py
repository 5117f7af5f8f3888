"""Stable Diffusion's autoencoder (``AutoencoderKL``): 8x smaller latents that the UNet denoises.

(Not ``imagegen.vae``, the course's first VAE on digits: this is SD's, in two halves,
``Encoder`` and ``Decoder``.)

    encoder: image (b, H, W, 3) in [-1, 1] -> conv, per level 2 ResBlocks then a
             stride-2 conv (not after the last), middle [Resnet, Attention, Resnet],
             GroupNorm, swish, conv -> (mean, log-variance); keep the mean
    latent  = 0.18215 * mean                   (b, H/8, W/8, 4), scaled to unit variance
    decoder: latent / 0.18215 -> conv, middle [Resnet, Attention, Resnet], per level
             3 ResBlocks then upsample (not after the last), GroupNorm, swish, conv -> RGB in [-1, 1]

Why a latent: a 64x64x4 latent holds a 512x512x3 image's content in 48x fewer
numbers, so each diffusion step costs far less. The factor 0.18215 makes SD
v1's latents unit-variance, which the noise schedule assumes.
The layers follow KerasCV's ``Decoder`` and ``ImageEncoder`` (our ``Encoder``) one to one;
the residual blocks are the UNet's ``ResBlock`` without a time input (KerasCV's ``ResnetBlock``).
norm_epsilon: KerasCV's GroupNorm epsilon (1e-5) by default; SD's original VAE
and diffusers use 1e-6 (``diffusers.py`` sets it).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from imagegen.keras_common import build_with_policy, dtype_policy_scope
from imagegen.stable_diffusion.unet import ResBlock, _groups_for

LATENT_SCALE = 0.18215

CONFIGS = {
    # SD v1's AutoencoderKL: 83.7M parameters, 8x downsampling.
    "sd-v1": dict(channels=(128, 256, 512, 512), latent_channels=4, groups=32),
    "tiny": dict(channels=(16, 32), latent_channels=4, groups=8),
    # The full-mode rehearsal's stand-in: SD's 8x downsampling (4 levels) at tiny widths.
    "rehearsal": dict(channels=(8, 16, 16, 32), latent_channels=4, groups=8),
    # The course's mini SD: 4x downsampling, 64x64 toy-world scenes -> 16x16x4 latents. Its latent_scale is measured
    # after training (1 / std of the latent means), as SD's 0.18215 was.
    "mini": dict(channels=(16, 32, 64), latent_channels=4, groups=8),
}


@keras.saving.register_keras_serializable("imagegen")
class AttentionBlock(layers.Layer):
    """Single-head self-attention over the pixels, with 1x1 convs for q, k, v and the output.

    out = x + proj_out(softmax(q k^T / sqrt(c)) v), q, k, v = 1x1 convs of GroupNorm(x).
    """

    def __init__(self, output_dim, groups=32, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.groups, self.epsilon = output_dim, groups, epsilon
        with build_with_policy(self):
            self.norm = layers.GroupNormalization(_groups_for(output_dim, groups), epsilon=epsilon, name="norm")
            self.q = layers.Conv2D(output_dim, 1, name="q")
            self.k = layers.Conv2D(output_dim, 1, name="k")
            self.v = layers.Conv2D(output_dim, 1, name="v")
            self.proj_out = layers.Conv2D(output_dim, 1, name="proj_out")

    def build(self, input_shape):
        for layer in (self.norm, self.q, self.k, self.v, self.proj_out):
            layer.build(input_shape)
        self.built = True

    def call(self, x):
        batch, height, width = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        h = self.norm(x)

        def tokens(t):  # (b, h, w, c) -> (b, h*w, 1 head, c)
            return ops.reshape(t, (batch, height * width, 1, self.output_dim))

        attended = ops.dot_product_attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))
        return x + self.proj_out(ops.reshape(attended, (batch, height, width, self.output_dim)))

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "groups": self.groups, "epsilon": self.epsilon}


class _Builder:
    """Creates layers and remembers their names in order: KerasCV's weight order for the VAE."""

    def __init__(self, groups, epsilon):
        self.groups, self.epsilon, self.order = groups, epsilon, []

    def add(self, layer):
        self.order.append(layer.name)
        return layer

    def conv(self, x, filters, name, kernel_size=3, padding=1, strides=1):  # explicit zero padding, as SD pads
        if padding:
            x = layers.ZeroPadding2D(padding)(x)
        return self.add(layers.Conv2D(filters, kernel_size, strides=strides, name=name))(x)

    def res(self, x, width, name):
        return self.add(ResBlock(width, self.groups, self.epsilon, time_embedding=False, name=name))(x)

    def middle(self, x, width):
        x = self.res(x, width, "mid_res0")
        x = self.add(AttentionBlock(width, self.groups, self.epsilon, name="mid_attn"))(x)
        return self.res(x, width, "mid_res1")

    def norm_out(self, x):
        norm = layers.GroupNormalization(_groups_for(x.shape[-1], self.groups), epsilon=self.epsilon, name="norm_out")
        return ops.silu(self.add(norm)(x))


class _VAEHalf(keras.Model):
    """What the decoder and the encoder share: their configuration, KerasCV's weight order, the scale factor.

    latent_scale: the factor that makes the latents unit-variance (SD v1: 0.18215).
    dtype: the layers' dtype policy (default: the global one when it is built); saved with the model.
    """

    def _record(self, build, channels, latent_channels, groups, norm_epsilon, latent_scale):
        self.config = dict(channels=tuple(channels), latent_channels=latent_channels, groups=groups, norm_epsilon=norm_epsilon,
                           latent_scale=latent_scale)
        self.latent_scale = latent_scale
        self.keras_cv_order = build.order  # layer names in KerasCV's weight order (``imagegen.weight_order``)
        self.downsampling = 2 ** (len(channels) - 1)

    def get_config(self):
        return {**super().get_config(), **self.config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable("imagegen")
class Decoder(_VAEHalf):
    """Scaled latents (b, h, w, 4) -> images (b, 8h, 8w, 3) in [-1, 1] (for 4 levels)."""

    def __init__(self, channels=(128, 256, 512, 512), latent_channels=4, groups=32, norm_epsilon=1e-5,
                 latent_scale=LATENT_SCALE, **kwargs):
        build = _Builder(groups, norm_epsilon)
        with dtype_policy_scope(kwargs.get("dtype")):
            latent = keras.Input((None, None, latent_channels), name="latent")
            x = layers.Rescaling(1.0 / latent_scale, name="unscale")(latent)
            x = build.conv(x, latent_channels, "post_quant_conv", kernel_size=1, padding=0)
            x = build.conv(x, channels[-1], "conv_in")
            x = build.middle(x, channels[-1])
            for level in reversed(range(len(channels))):
                for block in range(3):
                    x = build.res(x, channels[level], f"up{level}_res{block}")
                if level > 0:
                    x = build.conv(layers.UpSampling2D(2)(x), channels[level], f"up{level}_upsample")
            image = build.conv(build.norm_out(x), 3, "conv_out")
            kwargs.setdefault("name", "decoder")
            super().__init__(latent, image, **kwargs)  # in the scope: a functional model takes the global policy
        self._record(build, channels, latent_channels, groups, norm_epsilon, latent_scale)


@keras.saving.register_keras_serializable("imagegen")
class Encoder(_VAEHalf):
    """Images (b, H, W, 3) in [-1, 1] -> scaled latent means (b, H/8, W/8, 4) (for 4 levels).

    KerasCV's ``ImageEncoder``; the pipeline holds it as ``image_encoder`` (KerasCV's name,
    and the name of its part in the weight files). SD's encoder predicts a Gaussian
    (mean, log-variance); like KerasCV we keep the mean, which is what image-to-image
    and inpainting start from.
    """

    def __init__(self, channels=(128, 256, 512, 512), latent_channels=4, groups=32, norm_epsilon=1e-5,
                 latent_scale=LATENT_SCALE, **kwargs):
        build = _Builder(groups, norm_epsilon)
        with dtype_policy_scope(kwargs.get("dtype")):
            image = keras.Input((None, None, 3), name="images")
            x = build.conv(image, channels[0], "conv_in")
            for level, width in enumerate(channels):
                for block in range(2):
                    x = build.res(x, width, f"down{level}_res{block}")
                if level < len(channels) - 1:
                    # Pad right and bottom only, then stride 2: as SD's Downsample.
                    x = build.conv(x, width, f"down{level}_downsample", padding=((0, 1), (0, 1)), strides=2)
            x = build.norm_out(build.middle(x, channels[-1]))
            moments = build.conv(x, 2 * latent_channels, "conv_out")
            moments = build.conv(moments, 2 * latent_channels, "quant_conv", kernel_size=1, padding=0)
            latent = layers.Rescaling(latent_scale, name="scale")(moments[..., :latent_channels])  # the mean, scaled
            kwargs.setdefault("name", "image_encoder")
            super().__init__(image, latent, **kwargs)  # in the scope: a functional model takes the global policy
        self._record(build, channels, latent_channels, groups, norm_epsilon, latent_scale)


# Files saved before the class was renamed (it was ``ImageEncoder``) still load.
keras.saving.get_custom_objects()["imagegen>ImageEncoder"] = Encoder
