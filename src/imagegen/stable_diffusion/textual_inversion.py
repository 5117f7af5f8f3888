"""Textual inversion (Gal et al., 2022): teach a frozen text-to-image model a new word from a few images.

A new token ("<cyan-flower>") gets one new row in the text encoder's embedding
table, started from an existing word's row ("blue"). Nothing else changes: the
UNet and the text encoder stay frozen, and only that row is trained, with the
ordinary diffusion loss on the example images' latents:

    c   = text_encoder(embed("a photo of a <new> flower"))       the row enters here
    x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) e                       x_0: an example's latent
    L   = | unet(x_t, t, c) - target |^2                        target: e, or v

After training the row is written into a grown copy of the text encoder, and the
tokenizer knows the token, so any prompt can use the new word.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from imagegen.clip import TextEncoder
from imagegen.stable_diffusion.schedulers import alphas_cumprod
from imagegen.training import EpochLogger


def grow_text_encoder(text_encoder, num_new, init_ids):
    """A copy of ``text_encoder`` with ``num_new`` more token rows, each a copy of ``init_ids``' row."""
    grown = TextEncoder(**{**text_encoder.config, "vocabulary_size": text_encoder.vocabulary_size + num_new})
    table = ops.convert_to_numpy(text_encoder.token_embeddings)
    for source, target in zip(text_encoder.weights, grown.weights):
        value = ops.convert_to_numpy(source)
        if source.path == text_encoder.token_embeddings.path:
            value = np.concatenate([table, table[np.asarray(init_ids)]])
        target.assign(value)
    return grown


@keras.saving.register_keras_serializable("imagegen")
class TextualInversion(keras.Model):
    """Trains the embedding rows of new tokens; the text encoder and the UNet stay frozen.

    text_encoder: already grown (``grow_text_encoder``); new_ids: the new tokens' ids.
    Train on {"latents": (n, h, w, c), "token_ids": (n, L)} (captions that use the tokens).
    """

    def __init__(self, text_encoder, unet, new_ids, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.text_encoder, self.unet = text_encoder, unet
        text_encoder.trainable = False
        unet.trainable = False
        self.new_ids = [int(i) for i in new_ids]
        self.first_new = min(self.new_ids)
        if sorted(self.new_ids) != list(range(self.first_new, text_encoder.vocabulary_size)):
            raise ValueError("new_ids must be the last rows of the text encoder's table (see grow_text_encoder)")
        start = ops.convert_to_numpy(text_encoder.token_embeddings)[self.first_new:]
        self.new_embeddings = self.add_weight(shape=start.shape, initializer=keras.initializers.Constant(start),
                                              name="new_embeddings")
        self.alphas = ops.convert_to_tensor(alphas_cumprod().astype("float32"))
        self.prediction = unet.config.get("prediction", "epsilon")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def encode(self, token_ids):
        """Text features with the trainable rows in place of the new tokens' rows."""
        ids = ops.convert_to_tensor(token_ids, "int32")
        layer = self.text_encoder.get_layer("embedding")
        table = ops.concatenate([ops.convert_to_tensor(layer.token_embedding.embeddings)[: self.first_new],
                                 self.new_embeddings], axis=0)
        embeddings = ops.take(table, ids, axis=0) + layer.position_embedding[None, : ops.shape(ids)[1]]
        return self.text_encoder.features_from_embeddings(embeddings)

    def call(self, inputs, training=False):
        latents = ops.convert_to_tensor(inputs["latents"], "float32")
        batch = ops.shape(latents)[0]
        timesteps = keras.random.randint((batch,), 0, len(alphas_cumprod()), seed=self.seed_generator)
        a = ops.reshape(ops.take(self.alphas, timesteps), (-1, 1, 1, 1))
        noise = keras.random.normal(ops.shape(latents), seed=self.seed_generator)
        noisy = ops.sqrt(a) * latents + ops.sqrt(1.0 - a) * noise  # x_t = sqrt(a) x_0 + sqrt(1 - a) e
        predicted = self.unet([noisy, ops.cast(timesteps, "float32"), self.encode(inputs["token_ids"])])
        target = ops.sqrt(a) * noise - ops.sqrt(1.0 - a) * latents if self.prediction == "v" else noise
        return predicted, target

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        predicted, target = y_pred
        loss = ops.mean(ops.square(ops.cast(predicted, "float32") - target))  # a half-precision UNet predicts in half
        self.loss_tracker.update_state(loss)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {metric.name: metric.result() for metric in self.metrics}

    def write_back(self):
        """Copy the learned rows into the text encoder's table; returns the text encoder."""
        table = ops.convert_to_numpy(self.text_encoder.token_embeddings).copy()
        table[self.first_new:] = ops.convert_to_numpy(self.new_embeddings)
        self.text_encoder.token_embeddings.assign(table)
        return self.text_encoder


def textual_inversion(pipeline, images, token, init_word, captions, steps=400, batch_size=16, learning_rate=5e-3,
                      seed=0, log_every=5):
    """Teach ``pipeline`` (a ``StableDiffusion``) a new ``token`` from a few ``images``; returns the loss history.

    images: uint8 or [0, 1] float (n, h, w, 3) at the pipeline's size (3 to 5 are enough).
    init_word: an existing one-token word the new row starts from ("blue", "cat").
    captions: prompts using the token, one is drawn per example each step
        (e.g. ["a photo of a <token>", "a <token> flower"]); flipped copies double the examples.
    log_every: print the loss every this many tenths of the run (0: silent).
    After it returns, ``pipeline`` understands prompts with ``token``.
    """
    if not any(token in caption for caption in captions):
        raise ValueError(f"the captions must use the new token {token!r}, e.g. 'a photo of a {token}'")
    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    init = tokenizer.encode(init_word)[1:-1]
    if len(init) != 1:
        raise ValueError(f"init_word {init_word!r} is {len(init)} tokens; choose a word that is one token, like 'flower'")
    if tokenizer.add_tokens([token]) == 0:
        raise ValueError(f"{token!r} is already in the vocabulary; pick a new token such as '<my-{token.strip('<>')}>'")
    grown = grow_text_encoder(encoder, 1, init)
    new_id = tokenizer.token_id(token)
    trainer = TextualInversion(grown, pipeline.unet, [new_id], seed=seed)
    latents = ops.convert_to_numpy(pipeline.encode_image(images))
    latents = np.concatenate([latents, latents[:, :, ::-1]])  # horizontal flips: twice the examples
    rng = np.random.default_rng(seed)
    epochs = max(1, min(10, steps))  # the loss is reported after each tenth of the steps
    per_epoch = int(np.ceil(steps / epochs)) * batch_size
    index = np.tile(np.arange(len(latents)), int(np.ceil(per_epoch / len(latents))))[:per_epoch]
    token_ids = tokenizer([captions[i] for i in rng.integers(0, len(captions), len(index))])
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=0.0)
    if pipeline.unet.dtype_policy.name == "mixed_float16":  # float16 gradients underflow without loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    trainer.compile(optimizer=optimizer)
    history = trainer.fit({"latents": latents[index], "token_ids": token_ids}, batch_size=batch_size, epochs=epochs,
                          shuffle=True, verbose=0, callbacks=[EpochLogger(log_every)] if log_every else [])
    pipeline.set_text_encoder(trainer.write_back())
    return history.history["loss"]
