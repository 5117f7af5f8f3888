"""A small ResNet image encoder for contrastive CLIP: images -> one feature vector each.

OpenAI trained CLIP with ResNets and Vision Transformers; on a CPU and small
images a ResNet learns fastest, so the course uses one:

    stem conv (stride 2) -> [residual block, stride-2 conv] per stage -> residual block
    -> global average pool -> LayerNorm -> (b, feature_dims)

Residual block: x + conv(swish(GroupNorm(conv(swish(GroupNorm(x)))))), the DDIM UNet's
block of notebook 03 without its time input (``imagegen.diffusion.pixel_unet.residual_block``).
"""

from __future__ import annotations

import keras
from keras import layers

from imagegen.diffusion.pixel_unet import residual_block


def build_image_encoder(image_size=32, widths=(32, 64, 128), feature_dims=128, stem_stride=2, name="image_encoder"):
    """images float (b, s, s, 3) in [0, 1] -> features (b, feature_dims).

    widths: channels per stage; each stage after the first halves the side.
    stem_stride: 2 halves the side at once (4x cheaper; CLIP's ResNets start at 1/4).
    """
    images = keras.Input((image_size, image_size, 3), name="images")
    x = layers.Conv2D(widths[0], 3, strides=stem_stride, padding="same", name="stem")(images * 2.0 - 1.0)
    for stage, width in enumerate(widths):
        if stage:
            x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"stage{stage}_downsample")(x)
        x = residual_block(x, None, width, name=f"stage{stage}_block")
    x = layers.GlobalAveragePooling2D()(layers.Activation("swish")(x))
    x = layers.Dense(feature_dims, name="features")(x)
    features = layers.LayerNormalization(epsilon=1e-5, name="final_layer_norm")(x)
    return keras.Model(images, features, name=name)
