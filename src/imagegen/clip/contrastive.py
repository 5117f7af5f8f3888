"""Contrastive CLIP: learn one space where an image and its caption land close together.

For a batch of n (image, caption) pairs, embed both, L2-normalise, and score
every image against every caption:

    logits_ij = exp(s) * <image_i, text_j>        s: learned log inverse temperature

The matching pairs are on the diagonal. The loss is cross-entropy that picks
the right caption for each image (rows) and the right image for each caption
(columns), averaged: symmetric InfoNCE (Radford et al., 2021, figure 3).

After training, a caption is a classifier: "a photo of a {class}" for every
class gives zero-shot classification, and ranking images by similarity to a
query gives retrieval (``zero_shot_classify``, ``retrieve``).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from imagegen.keras_common import LossTrackerMetrics, build_with_policy, dtype_policy_scope

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps exp(s) at 100


def contrastive_loss(logits, positives=None):
    """Symmetric InfoNCE over a (n, n) image-by-text logit matrix whose diagonal holds the pairs.

    loss = (CE(rows -> targets) + CE(columns -> targets)) / 2, so loss(L) == loss(L^T).
    positives: optional symmetric (n, n) 0/1 matrix of pairs that match (e.g. identical
        captions); each row's target then spreads evenly over its positives.
        Default: the identity (only the diagonal matches), as in CLIP.
    """
    n = ops.shape(logits)[0]
    positives = ops.eye(n) if positives is None else ops.cast(positives, logits.dtype)
    targets = positives / ops.sum(positives, axis=1, keepdims=True)
    image_to_text = keras.losses.categorical_crossentropy(targets, logits, from_logits=True)
    text_to_image = keras.losses.categorical_crossentropy(ops.transpose(targets), ops.transpose(logits), from_logits=True)
    return (ops.mean(image_to_text) + ops.mean(text_to_image)) / 2.0


def _normalize(x):
    return x / ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + 1e-12)


@keras.saving.register_keras_serializable("imagegen")
class CLIP(LossTrackerMetrics, keras.Model):
    """An image encoder and a text encoder, projected to a shared space of ``embedding_dims``.

    Inputs to ``fit``: a dict {"images": float (b, s, s, 3) in [0, 1], "token_ids": int (b, L)}.
    ``encode_images`` / ``encode_texts`` give unit vectors (b, embedding_dims).
    temperature: the initial softmax temperature (0.07, so s starts at log(1/0.07)).
    duplicates_match: count pairs with identical captions as matches too. A small caption
        set (toy flowers: 240 distinct captions) repeats captions within a batch, and
        plain CLIP would push an image away from its own caption's twin.
    """

    def __init__(self, image_encoder, text_encoder, embedding_dims=64, temperature=0.07, duplicates_match=True, **kwargs):
        super().__init__(**kwargs)
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.embedding_dims, self.temperature, self.duplicates_match = embedding_dims, temperature, duplicates_match
        with build_with_policy(self):  # the model's dtype policy, also when loaded from a file
            self.image_projection = layers.Dense(embedding_dims, use_bias=False, name="image_projection")
            self.text_projection = layers.Dense(embedding_dims, use_bias=False, name="text_projection")
        self.image_projection.build((None, image_encoder.outputs[0].shape[-1]))
        self.text_projection.build((None, text_encoder.width))
        self.logit_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(math.log(1.0 / temperature)), name="logit_scale")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="pair_accuracy")

    def build(self, input_shape=None):
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def encode_images(self, images, training=False):
        """images float (b, s, s, 3) in [0, 1] -> unit vectors (b, embedding_dims)."""
        return _normalize(self.image_projection(self.image_encoder(images, training=training)))

    def encode_texts(self, token_ids, training=False):
        """ids int (b, L) -> unit vectors (b, embedding_dims), from each caption's end-of-text feature."""
        features = self.text_encoder(token_ids, training=training)
        return _normalize(self.text_projection(self.text_encoder.pool(features, token_ids)))

    def scale(self):
        """exp(s), clamped at 100: the inverse temperature."""
        return ops.exp(ops.minimum(self.logit_scale, MAX_LOGIT_SCALE))

    def call(self, inputs, training=False):
        """{"images", "token_ids"} -> logits (b, b): scaled image-to-caption cosine similarities."""
        images = self.encode_images(inputs["images"], training=training)
        texts = self.encode_texts(inputs["token_ids"], training=training)
        return self.scale() * ops.matmul(images, ops.transpose(texts))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        positives = None
        if self.duplicates_match:
            ids = x["token_ids"]
            positives = ops.all(ops.equal(ids[:, None, :], ids[None, :, :]), axis=-1)
        loss = contrastive_loss(y_pred, positives)
        self.loss_tracker.update_state(loss)
        # How often the caption scoring highest for an image is its own (or an identical one).
        best = ops.argmax(y_pred, axis=1)
        if positives is None:
            matches = ops.cast(ops.equal(best, ops.arange(ops.shape(y_pred)[0])), "float32")
        else:
            matches = ops.cast(ops.take_along_axis(positives, best[:, None], axis=1)[:, 0], "float32")
        self.accuracy_tracker.update_state(ops.mean(matches))
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
            "embedding_dims": self.embedding_dims, "temperature": self.temperature, "duplicates_match": self.duplicates_match,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        with dtype_policy_scope(config.get("dtype")):  # a plain functional encoder takes the global policy itself
            for key in ("image_encoder", "text_encoder"):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def batched(function, array, batch_size=256):
    """function over array in batches, as one numpy array (keeps memory flat for large sets)."""
    return np.concatenate([ops.convert_to_numpy(function(array[i : i + batch_size])) for i in range(0, len(array), batch_size)])


def similarity(model, images, token_ids, batch_size=256):
    """Cosine similarities, numpy (n_images, n_texts) in [-1, 1]."""
    image_vectors = batched(model.encode_images, np.asarray(images, "float32"), batch_size)
    text_vectors = batched(model.encode_texts, np.asarray(token_ids, "int32"), batch_size)
    return image_vectors @ text_vectors.T


def zero_shot_classify(model, images, class_token_ids, batch_size=256):
    """Probabilities (n_images, n_classes): softmax over classes of exp(s) * cosine(image, class prompt).

    class_token_ids: one tokenised prompt per class, e.g. tokenizer([f"a {c} flower" for c in classes]).
    """
    logits = float(ops.convert_to_numpy(model.scale())) * similarity(model, images, class_token_ids, batch_size)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def retrieve(model, query_token_ids, images, top_k=5, batch_size=256):
    """For each text query, the indices (n_queries, top_k) of the most similar images, best first."""
    scores = similarity(model, images, query_token_ids, batch_size).T
    return np.argsort(-scores, axis=1)[:, :top_k]
