"""CLIP's text encoder: token ids -> one vector per token, which Stable Diffusion's UNet reads.

A pre-norm Transformer (Radford et al., 2021), the same as GPT-2's:

    h_0 = token_embedding[ids] + position_embedding[0..L-1]        (learned positions)
    h   = h + Attention(LayerNorm(h))   with a causal mask: token i sees tokens <= i
    h   = h + W_2 quick_gelu(W_1 LayerNorm(h))                     quick_gelu(x) = x * sigmoid(1.702 x)
    out = LayerNorm(h_last)                                        (the "final layer norm")

Stable Diffusion v1 conditions on the whole sequence ``out`` (77 x 768), not
just one vector. Contrastive CLIP pools the vector at the end-of-text token
(``pool``): thanks to the causal mask it is the only one that has read the
whole caption.

``clip-l`` is SD v1's text encoder (OpenAI's ViT-L/14 text tower, 123M
parameters); the small configs train on a CPU in minutes.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from imagegen.keras_common import build_with_policy, dtype_policy_scope
from imagegen.weight_order import assign_in_order, keras_cv_arrays

CONFIGS = {
    # SD v1's text encoder: width 768, 12 layers of 12 heads, 77 tokens.
    "clip-l": dict(vocabulary_size=49408, max_length=77, width=768, num_layers=12, num_heads=12, activation="quick_gelu"),
    # CPU-sized: trains on toy-flower captions in a minute (notebooks 04, 05 and the mini model).
    "clip-tiny": dict(vocabulary_size=49408, max_length=16, width=128, num_layers=4, num_heads=4, activation="quick_gelu"),
}


def quick_gelu(x):
    """CLIP's GELU approximation: x * sigmoid(1.702 x)."""
    return x * ops.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": lambda x: ops.gelu(x, approximate=False)}


@keras.saving.register_keras_serializable("imagegen")
class TokenAndPositionEmbedding(layers.Layer):
    """ids (b, L) -> token_embedding[ids] + position_embedding[:L], (b, L, width)."""

    def __init__(self, vocabulary_size, max_length, width, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.max_length, self.width = vocabulary_size, max_length, width
        with build_with_policy(self):
            self.token_embedding = layers.Embedding(vocabulary_size, width, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02), name="token_embedding")
        self.position_embedding = self.add_weight(shape=(max_length, width), initializer=keras.initializers.RandomNormal(stddev=0.01), name="position_embedding")

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.built = True

    def call(self, ids):
        length = ops.shape(ids)[1]
        return self.token_embedding(ids) + ops.cast(self.position_embedding[None, :length], self.compute_dtype)

    @property
    def keras_cv_weights(self):
        """KerasCV's order (``imagegen.weight_order``): the token table, then the positions.

        ``weights`` lists the positions first: Keras puts a layer's own weights before its sublayers'.
        """
        return [self.token_embedding.embeddings, self.position_embedding]

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "max_length": self.max_length, "width": self.width}


@keras.saving.register_keras_serializable("imagegen")
class CausalSelfAttention(layers.Layer):
    """Multi-head self-attention where position i attends only to positions <= i.

    softmax(Q K^T / sqrt(d_head) + M) V with M_ij = -inf for j > i; then an output projection.
    """

    def __init__(self, width, num_heads, **kwargs):
        super().__init__(**kwargs)
        if width % num_heads:
            raise ValueError(f"width {width} must divide by num_heads {num_heads}")
        self.width, self.num_heads, self.head_dim = width, num_heads, width // num_heads
        with build_with_policy(self):
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (layers.Dense(width, name=n) for n in ("q_proj", "k_proj", "v_proj", "out_proj"))

    def build(self, input_shape):
        for projection in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            projection.build(input_shape)
        self.built = True

    def call(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]

        def heads(t):  # (b, L, width) -> (b, L, heads, head_dim)
            return ops.reshape(t, (batch, length, self.num_heads, self.head_dim))

        attended = ops.dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), is_causal=True)
        return self.out_proj(ops.reshape(attended, (batch, length, self.width)))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "num_heads": self.num_heads}


@keras.saving.register_keras_serializable("imagegen")
class TransformerLayer(layers.Layer):
    """Pre-norm block: h + attn(LN(h)), then h + fc2(act(fc1(LN(h)))) with a 4x wide MLP."""

    def __init__(self, width, num_heads, activation="quick_gelu", **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.width, self.num_heads, self.activation = width, num_heads, activation
        with build_with_policy(self):
            self.layer_norm1 = layers.LayerNormalization(epsilon=1e-5, name="layer_norm1")
            self.attention = CausalSelfAttention(width, num_heads, name="attention")
            self.layer_norm2 = layers.LayerNormalization(epsilon=1e-5, name="layer_norm2")
            self.fc1 = layers.Dense(4 * width, name="fc1")
            self.fc2 = layers.Dense(width, name="fc2")

    def build(self, input_shape):
        for sublayer in (self.layer_norm1, self.attention, self.layer_norm2, self.fc1):
            sublayer.build(input_shape)
        self.fc2.build((*input_shape[:-1], 4 * self.width))
        self.built = True

    def call(self, h):
        h = h + self.attention(self.layer_norm1(h))
        return h + self.fc2(ACTIVATIONS[self.activation](self.fc1(self.layer_norm2(h))))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "num_heads": self.num_heads, "activation": self.activation}


@keras.saving.register_keras_serializable("imagegen")
class TextEncoder(keras.Model):
    """ids int (b, max_length) -> token features float (b, max_length, width).

    TextEncoder.from_config_name("clip-l") is SD v1's; pass sizes for others.
    ``pool(features, ids)`` picks each caption's end-of-text vector (b, width).
    dtype: the layers' dtype policy (default: the global one when it is built); saved with the model.
    """

    def __init__(self, vocabulary_size=49408, max_length=77, width=768, num_layers=12, num_heads=12,
                 activation="quick_gelu", end_token_id=49407, **kwargs):
        with dtype_policy_scope(kwargs.get("dtype")):
            ids = keras.Input((max_length,), dtype="int32", name="token_ids")
            h = TokenAndPositionEmbedding(vocabulary_size, max_length, width, name="embedding")(ids)
            for index in range(num_layers):
                h = TransformerLayer(width, num_heads, activation, name=f"layer_{index}")(h)
            features = layers.LayerNormalization(epsilon=1e-5, name="final_layer_norm")(h)
            kwargs.setdefault("name", "text_encoder")
            super().__init__(ids, features, **kwargs)  # in the scope: a functional model takes the global policy
        self.config = dict(vocabulary_size=vocabulary_size, max_length=max_length, width=width, num_layers=num_layers,
                           num_heads=num_heads, activation=activation, end_token_id=end_token_id)
        self.vocabulary_size, self.max_length, self.width, self.end_token_id = vocabulary_size, max_length, width, end_token_id
        # KerasCV's weight order (``imagegen.weight_order``): its CLIPEmbedding, encoder layers, final norm.
        self.keras_cv_order = ["embedding", *(f"layer_{i}" for i in range(num_layers)), "final_layer_norm"]

    @classmethod
    def from_config_name(cls, name, **overrides):
        """A randomly initialised encoder of a named size: "clip-l" (SD v1) or "clip-tiny"."""
        if name not in CONFIGS:
            raise ValueError(f"unknown text encoder config {name!r}; choose one of {', '.join(CONFIGS)}")
        return cls(**{**CONFIGS[name], **overrides})

    def pool(self, features, ids):
        """The feature at each row's first end-of-text token: (b, L, width), (b, L) -> (b, width)."""
        is_end = ops.cast(ops.equal(ids, self.end_token_id), "int32")
        position = ops.argmax(is_end, axis=1)  # first <|endoftext|>; added tokens may have larger ids
        return ops.take_along_axis(features, ops.reshape(position, (-1, 1, 1)), axis=1)[:, 0]

    def features_from_embeddings(self, embeddings, training=False):
        """Token + position embeddings (b, L, width) -> features: the encoder after its embedding layer.

        Textual inversion uses it to feed embeddings that include a trainable row.
        """
        h = embeddings
        for index in range(self.config["num_layers"]):
            h = self.get_layer(f"layer_{index}")(h, training=training)
        return self.get_layer("final_layer_norm")(h)

    @property
    def token_embeddings(self):
        """The (vocabulary_size, width) token embedding variable (textual inversion edits its rows)."""
        return self.get_layer("embedding").token_embedding.embeddings

    # -- weights from KerasCV -------------------------------------------------------------------
    @classmethod
    def from_keras_cv(cls, keras_cv_text_encoder, num_layers=None, num_heads=None, activation=None, **kwargs):
        """Copy a KerasCV ``stable_diffusion.TextEncoder`` (SD v1's, or any built from the same layers) into ours.

        The sizes come from the model's layers, not from its weight count (which cannot tell
        the number of heads): the vocabulary, width and length from its ``CLIPEmbedding``, the
        layer count, heads and activation (quick-GELU) from its ``CLIPEncoderLayer``s.
        num_layers, num_heads, activation: give them for a model whose layers do not show them.
        kwargs: for ``TextEncoder`` (``name``, ``dtype``).
        """
        sizes = _keras_cv_text_sizes(keras_cv_text_encoder, num_layers=num_layers, num_heads=num_heads, activation=activation)
        encoder = cls(**sizes, **kwargs)
        return assign_in_order(encoder, keras_cv_arrays(keras_cv_text_encoder), f"KerasCV's {keras_cv_text_encoder.name}")

    def get_config(self):
        return {**super().get_config(), **self.config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _keras_cv_text_sizes(model, num_layers=None, num_heads=None, activation=None):
    """Our ``TextEncoder``'s sizes for a KerasCV text encoder, read from its layers; the values given win.

    KerasCV's structure: a ``CLIPEmbedding`` (``token_embedding``, ``position_embedding``), then
    ``CLIPEncoderLayer``s, each with a ``clip_attn`` (``num_heads``) and an ``activation`` function.
    Only quick-GELU is matched by itself: KerasCV's SD 2 encoder uses tanh-approximated GELU, ours exact.
    """
    described = f"{type(model).__name__} {model.name!r}"
    structure = "KerasCV's TextEncoder is a CLIPEmbedding, then CLIPEncoderLayers, then a LayerNormalization"
    embedding = next((layer for layer in model.layers if hasattr(layer, "token_embedding") and hasattr(layer, "position_embedding")), None)
    if embedding is None:
        raise ValueError(f"{described} has no CLIPEmbedding layer, so neither its sizes nor its weight order are known "
                         f"({structure}); pass a KerasCV text encoder")
    blocks = [layer for layer in model.layers if hasattr(layer, "clip_attn")]
    heads = sorted({block.clip_attn.num_heads for block in blocks})
    activations = sorted({getattr(block.activation, "__name__", repr(block.activation)) for block in blocks})
    if num_layers is None:
        if not blocks:
            raise ValueError(f"{described} has no CLIPEncoderLayer to count ({structure}); "
                             "pass num_layers=..., num_heads=... to TextEncoder.from_keras_cv")
        num_layers = len(blocks)
    if num_heads is None:
        if len(heads) != 1:
            raise ValueError(f"cannot read num_heads from {described}'s CLIPEncoderLayers (found {heads}); "
                             "pass num_heads=... to TextEncoder.from_keras_cv")
        num_heads = heads[0]
    if activation is None:
        if activations != ["quick_gelu"]:
            raise ValueError(f"cannot match the activation of {described}'s CLIPEncoderLayers ({activations}) to one of "
                             f"ours ({sorted(ACTIVATIONS)}); pass activation=... to TextEncoder.from_keras_cv")
        activation = "quick_gelu"
    return dict(vocabulary_size=embedding.token_embedding.input_dim, max_length=embedding.position_embedding.input_dim,
                width=embedding.token_embedding.output_dim, num_layers=num_layers, num_heads=num_heads, activation=activation)
