"""How a UNet reads a prompt: Stable Diffusion's spatial transformer (cross-attention).

Every pixel of a feature map becomes a token; a Transformer block lets the
pixels attend to each other and then to the text (Rombach et al., 2022):

    h = proj_in(GroupNorm(x))                       1x1 conv, then (b, h*w, c) tokens
    h = h + SelfAttention(LayerNorm(h))             pixels look at pixels
    h = h + CrossAttention(LayerNorm(h), text)      pixels look at prompt tokens
    h = h + Dense(GEGLU(LayerNorm(h)))              GEGLU(u) = a * gelu(g), [a, g] = Dense(u)
    out = x + proj_out(h)

    Attention(q, k, v) = softmax(q k^T / sqrt(d_head)) v,
    with q from the pixels and k, v from the context (the text encoder's outputs).

The layer and weight names follow KerasCV's ``SpatialTransformer`` so that SD
weights map onto them one to one; the course's small UNets use the same layers.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable("imagegen")
class CrossAttention(layers.Layer):
    """Multi-head attention from ``x`` (b, n, c) to ``context`` (b, m, d) (self-attention if None)."""

    def __init__(self, num_heads, head_size, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_size = num_heads, head_size
        inner = num_heads * head_size
        self.to_q = layers.Dense(inner, use_bias=False, name="to_q")
        self.to_k = layers.Dense(inner, use_bias=False, name="to_k")
        self.to_v = layers.Dense(inner, use_bias=False, name="to_v")
        self.out_proj = layers.Dense(inner, name="out_proj")

    def build(self, x_shape, context_shape=None):
        input_shape = x_shape
        context_shape = context_shape or input_shape
        self.to_q.build(input_shape)
        self.to_k.build(context_shape)
        self.to_v.build(context_shape)
        self.out_proj.build((*input_shape[:-1], self.num_heads * self.head_size))
        self.built = True

    def call(self, x, context=None):
        context = x if context is None else context
        batch = ops.shape(x)[0]

        def heads(t):  # (b, n, heads * d) -> (b, n, heads, d)
            return ops.reshape(t, (batch, -1, self.num_heads, self.head_size))

        attended = ops.dot_product_attention(heads(self.to_q(x)), heads(self.to_k(context)), heads(self.to_v(context)))
        return self.out_proj(ops.reshape(attended, (batch, -1, self.num_heads * self.head_size)))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_size": self.head_size}


@keras.saving.register_keras_serializable("imagegen")
class GEGLU(layers.Layer):
    """u -> a * gelu(g) where [a, g] = Dense(2 * output_dim)(u) (Shazeer, 2020).

    approximate: gelu's tanh form (KerasCV's) or the exact erf form (diffusers').
    """

    def __init__(self, output_dim, approximate=True, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.approximate = output_dim, approximate
        self.dense = layers.Dense(output_dim * 2, name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, u):
        projected = self.dense(u)
        value, gate = projected[..., : self.output_dim], projected[..., self.output_dim :]
        return value * ops.gelu(gate, approximate=self.approximate)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "approximate": self.approximate}


@keras.saving.register_keras_serializable("imagegen")
class BasicTransformerBlock(layers.Layer):
    """Self-attention, cross-attention to the context, then a GEGLU feed-forward, each residual."""

    def __init__(self, dim, num_heads, head_size, gelu_approximate=True, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.head_size, self.gelu_approximate = dim, num_heads, head_size, gelu_approximate
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.attn1 = CrossAttention(num_heads, head_size, name="attn1")
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.attn2 = CrossAttention(num_heads, head_size, name="attn2")
        self.norm3 = layers.LayerNormalization(epsilon=1e-5, name="norm3")
        self.geglu = GEGLU(dim * 4, approximate=gelu_approximate, name="geglu")
        self.dense = layers.Dense(dim, name="dense")

    def build(self, x_shape, context_shape):
        input_shape = x_shape
        for norm in (self.norm1, self.norm2, self.norm3):
            norm.build(input_shape)
        self.attn1.build(input_shape)
        self.attn2.build(input_shape, context_shape)
        self.geglu.build(input_shape)
        self.dense.build((*input_shape[:-1], self.dim * 4))
        self.built = True

    def call(self, x, context):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.dense(self.geglu(self.norm3(x)))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "head_size": self.head_size,
                "gelu_approximate": self.gelu_approximate}


@keras.saving.register_keras_serializable("imagegen")
class SpatialTransformer(layers.Layer):
    """Feature map (b, h, w, c) attends to itself and to a context (b, m, d); same shape out.

    norm_epsilon, gelu_approximate: KerasCV's values by default; diffusers' are 1e-6 and False.
    """

    def __init__(self, num_heads, head_size, groups=32, norm_epsilon=1e-5, gelu_approximate=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_size, self.groups = num_heads, head_size, groups
        self.norm_epsilon, self.gelu_approximate = norm_epsilon, gelu_approximate
        channels = num_heads * head_size
        self.norm = layers.GroupNormalization(groups, epsilon=norm_epsilon, name="norm")
        self.proj1 = layers.Conv2D(channels, 1, name="proj1")
        self.transformer_block = BasicTransformerBlock(channels, num_heads, head_size, gelu_approximate, name="transformer_block")
        self.proj2 = layers.Conv2D(channels, 1, name="proj2")

    def build(self, x_shape, context_shape):
        input_shape = x_shape
        channels = self.num_heads * self.head_size
        if input_shape[-1] != channels:
            raise ValueError(f"feature channels {input_shape[-1]} must equal num_heads * head_size = {channels}")
        self.norm.build(input_shape)
        self.proj1.build(input_shape)
        self.transformer_block.build((input_shape[0], None, channels), context_shape)
        self.proj2.build(input_shape)
        self.built = True

    def call(self, x, context):
        height, width, channels = ops.shape(x)[1], ops.shape(x)[2], ops.shape(x)[3]
        h = self.proj1(self.norm(x))
        h = ops.reshape(h, (-1, height * width, channels))
        h = self.transformer_block(h, context)
        return x + self.proj2(ops.reshape(h, (-1, height, width, channels)))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_size": self.head_size, "groups": self.groups,
                "norm_epsilon": self.norm_epsilon, "gelu_approximate": self.gelu_approximate}
