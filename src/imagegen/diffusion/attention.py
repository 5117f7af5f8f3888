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

Memory: at SD's 64x64 latents a self-attention has n = m = 4096 tokens, and the
score matrix q k^T holds batch * heads * n * m numbers (8.6 GB in float32 for the
guided batch 16 with 8 heads). ``attention`` therefore splits the queries into
chunks of at most ``QUERY_CHUNK_SIZE`` tokens when n is larger: each query row's
softmax only needs that row's scores, so

    Attention(q, k, v) = concat_i softmax(q_i k^T / sqrt(d_head)) v,   q = [q_1; q_2; ...]

is exact, and only chunk * m scores per head exist at a time. On JAX with a GPU
where cuDNN's flash attention applies (Ampere or newer, half precision), Keras's
fused kernel is used instead; on PyTorch, its fused SDPA.

The layer and weight names follow KerasCV's ``SpatialTransformer`` so that SD
weights map onto them one to one; the course's small UNets use the same layers.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from imagegen.keras_common import build_with_policy

# Queries per chunk in ``attention``; 0 or None: never chunk (Keras's plain attention).
# Read when a function is traced; 1024 keeps 32x32 latents (SD at 256x256) unchunked.
QUERY_CHUNK_SIZE = 1024


def attention(query, key, value, query_chunk_size=None):
    """softmax(q k^T / sqrt(d)) v for q (b, n, heads, d) and k, v (b, m, heads, d) -> (b, n, heads, d).

    query_chunk_size: queries per chunk (None: ``QUERY_CHUNK_SIZE``; 0: never chunk).
    Chunking needs n known when the function is traced (a python int in the static
    shape, as in our models under jit); otherwise Keras's attention runs unchunked.
    The chunks go through a loop (``ops.map``: a while loop under XLA), so that no
    compiler can schedule them side by side and hold all their scores at once.
    """
    chunk = QUERY_CHUNK_SIZE if query_chunk_size is None else query_chunk_size
    length = _static(query.shape[1])
    if not chunk or length is None or length <= chunk or _fused_attention_available(query, key, value):
        return ops.dot_product_attention(query, key, value, flash_attention=None)
    batch, heads, depth = ops.shape(query)[0], query.shape[2], query.shape[3]
    count = -(-length // chunk)  # ceil(n / chunk) chunks ...
    size = -(-length // count)  # ... of c = ceil(n / count) <= chunk queries each
    padded = count * size  # n rounded up: zero queries are appended, their outputs dropped
    if padded > length:
        query = ops.pad(query, ((0, 0), (0, padded - length), (0, 0), (0, 0)))
    # q = [q_1; ...; q_count]: (b, count * c, heads, d) -> (count, b, c, heads, d)
    chunks = ops.moveaxis(ops.reshape(query, (batch, count, size, heads, depth)), 1, 0)
    # o_i = softmax(q_i k^T / sqrt(d)) v, one chunk after the other
    outputs = ops.map(lambda q_i: _attend(q_i, key, value), chunks)
    # o = [o_1; ...; o_count]: back to (b, n, heads, d)
    outputs = ops.reshape(ops.moveaxis(outputs, 0, 1), (batch, padded, heads, depth))
    return outputs[:, :length] if padded > length else outputs


def _static(dim):
    """A dimension as a python int, or None where it is only known at run time (None, a tensor, a JAX symbol)."""
    return dim if isinstance(dim, int) else None


def _attend(query, key, value):
    """One chunk of queries (b, c, heads, d): its scores are (b, heads, c, m), float32 as in Keras's attention."""
    scale = 1.0 / math.sqrt(query.shape[-1])
    # s = (q / sqrt(d)) k^T                     (b, heads, c, m)
    scores = ops.einsum("bqhd,bkhd->bhqk", ops.cast(query, "float32") * scale, ops.cast(key, "float32"))
    # p = softmax(s) over the m keys, in float32, then in the values' dtype
    probs = ops.cast(ops.softmax(scores, axis=-1), value.dtype)
    # o = p v                                   (b, c, heads, d)
    return ops.einsum("bhqk,bkhd->bqhd", probs, value)


def _fused_attention_available(query, key, value):
    """True where Keras's ``dot_product_attention`` has a memory-efficient kernel of its own.

    PyTorch: always (SDPA). JAX: on an accelerator where cuDNN flash attention
    (or TPU splash attention) accepts these shapes and dtypes, as Keras itself
    decides with flash_attention=None. TensorFlow and JAX on the CPU: never.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return True
    if backend != "jax":
        return False
    import jax

    if jax.default_backend() != "gpu":  # CPU; and TPU, where Keras's splash kernel rejects cross-attention's shapes
        return False
    try:  # Keras's own test (Ampere or newer, float16/bfloat16, head size), private: absent means no
        from keras.src.backend.jax.nn import _can_use_flash_attention
    except ImportError:
        return False
    return bool(_can_use_flash_attention(query, key, value, None))


@keras.saving.register_keras_serializable("imagegen")
class CrossAttention(layers.Layer):
    """Multi-head attention from ``x`` (b, n, c) to ``context`` (b, m, d) (self-attention if None).

    query_chunk_size: see ``attention`` (None: the module's ``QUERY_CHUNK_SIZE`` when traced).
    recorder: None, or a callable that an eager call hands the attention weights
        softmax(q k^T / sqrt(d)), (b, heads, n, m), for looking at (``stable_diffusion.attention_maps``).
    """

    def __init__(self, num_heads, head_size, query_chunk_size=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_size, self.query_chunk_size = num_heads, head_size, query_chunk_size
        self.recorder = None
        inner = num_heads * head_size
        with build_with_policy(self):  # sublayers take this layer's dtype policy, also when loaded from a file
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

        def heads(t, length):  # (b, n, heads * d) -> (b, n, heads, d); n stays static where it is known
            return ops.reshape(t, (batch, -1 if length is None else length, self.num_heads, self.head_size))

        n, m = _static(x.shape[1]), _static(context.shape[1])
        q, k, v = heads(self.to_q(x), n), heads(self.to_k(context), m), heads(self.to_v(context), m)
        attended = attention(q, k, v, self.query_chunk_size)
        if self.recorder is not None:  # softmax(q k^T / sqrt(d)) again, (b, heads, n, m): only to look at
            self.recorder(ops.softmax(ops.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.head_size), axis=-1))
        return self.out_proj(ops.reshape(attended, (batch, -1 if n is None else n, self.num_heads * self.head_size)))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_size": self.head_size,
                "query_chunk_size": self.query_chunk_size}


@keras.saving.register_keras_serializable("imagegen")
class GEGLU(layers.Layer):
    """u -> a * gelu(g) where [a, g] = Dense(2 * output_dim)(u) (Shazeer, 2020).

    approximate: gelu's tanh form (KerasCV's) or the exact erf form (diffusers').
    """

    def __init__(self, output_dim, approximate=True, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.approximate = output_dim, approximate
        with build_with_policy(self):
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
        with build_with_policy(self):
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
        with build_with_policy(self):
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
