"""Textual inversion (Gal et al., 2022): teach a frozen text-to-image model a new word from a few images.

A new token ("<cyan-flower>") gets one new row in the text encoder's embedding
table, started from an existing word's row ("blue"). Nothing else changes: the
UNet and the text encoder stay frozen, and only that row is trained, with the
ordinary diffusion loss on the example images' latents:

    c   = text_encoder(embed("a photo of a <new> flower"))       the row enters here
    x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) e                       x_0: an example's latent
    L   = | unet(x_t, t, c) - target |^2                        target: e, or v

The loss is the one the UNet was trained with, so that the row is pulled towards
what the UNet learned to answer: the mean squared error for SD v1.x and the
course's mini model (``training.latent_diffusion_model``'s default); ``loss="mae"``
for a UNet trained with the mean absolute error (the first, toy-flower mini).

After a successful training the row is written into a grown copy of the text
encoder, and the tokenizer learns the token, so any prompt can use the new word.
If training fails or is interrupted, the pipeline is left as it was: the
tokenizer and the text encoder only change together, at the end.
"""

from __future__ import annotations

import copy

import keras
import numpy as np
from keras import ops

from imagegen.clip import TextEncoder
from imagegen.diffusion.model import LOSSES
from imagegen.diffusion.prediction import add_noise, training_target
from imagegen.diffusion.schedules import DiscreteSchedule
from imagegen.keras_common import LossTrackerMetrics
from imagegen.resumable import EpochLogger


def grow_text_encoder(text_encoder, num_new, init_ids):
    """A copy of ``text_encoder`` (its dtype policy too) with ``num_new`` more token rows, each a copy of ``init_ids``' row."""
    grown = TextEncoder.from_config({**text_encoder.get_config(), "vocabulary_size": text_encoder.vocabulary_size + num_new})
    table = ops.convert_to_numpy(text_encoder.token_embeddings)
    for source, target in zip(text_encoder.weights, grown.weights):
        value = ops.convert_to_numpy(source)
        if source.path == text_encoder.token_embeddings.path:
            value = np.concatenate([table, table[np.asarray(init_ids)]])
        target.assign(value)
    return grown


@keras.saving.register_keras_serializable("imagegen")
class TextualInversion(LossTrackerMetrics, keras.Model):
    """Trains the embedding rows of new tokens; the text encoder and the UNet stay frozen.

    text_encoder: already grown (``grow_text_encoder``); new_ids: the new tokens' ids.
    loss: "mae" or "mse", the loss the UNet was trained with ("mse": SD v1.x and the course's mini model).
    Train on {"latents": (n, h, w, c), "token_ids": (n, L)} (captions that use the tokens).
    Both modules are frozen from construction on; ``release()`` gives them back their
    ``trainable`` settings (``textual_inversion`` does, also when training fails).
    """

    def __init__(self, text_encoder, unet, new_ids, loss="mse", seed=0, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} (the one the UNet was trained with), got {loss!r}")
        self.new_ids = [int(i) for i in new_ids]
        self.first_new = min(self.new_ids)
        if sorted(self.new_ids) != list(range(self.first_new, text_encoder.vocabulary_size)):
            raise ValueError("new_ids must be the last rows of the text encoder's table (see grow_text_encoder)")
        self.text_encoder, self.unet, self.loss_name = text_encoder, unet, loss
        self._trainable_before = [(module, module.trainable) for module in (text_encoder, unet)]
        text_encoder.trainable = False
        unet.trainable = False
        start = ops.convert_to_numpy(text_encoder.token_embeddings)[self.first_new:]
        self.new_embeddings = self.add_weight(shape=start.shape, initializer=keras.initializers.Constant(start),
                                              name="new_embeddings")
        self.alphas = ops.convert_to_tensor(DiscreteSchedule.scaled_linear().alpha_bars.astype("float32"))  # SD's a_t
        self.prediction = unet.config.get("prediction", "epsilon")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def release(self):
        """Give the text encoder and the UNet back the ``trainable`` settings they had before."""
        for module, trainable in self._trainable_before:
            module.trainable = trainable

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
        timesteps = keras.random.randint((batch,), 0, ops.shape(self.alphas)[0], seed=self.seed_generator)
        a = ops.reshape(ops.take(self.alphas, timesteps), (-1, 1, 1, 1))
        noise = keras.random.normal(ops.shape(latents), seed=self.seed_generator)
        noisy = add_noise(latents, noise, a)  # x_t = sqrt(a) x_0 + sqrt(1 - a) e
        predicted = self.unet([noisy, ops.cast(timesteps, "float32"), self.encode(inputs["token_ids"])])
        return predicted, training_target(latents, noise, a, self.prediction)  # e, or v

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        predicted, target = y_pred
        error = ops.cast(predicted, "float32") - target  # a half-precision UNet predicts in half
        loss = ops.mean(ops.abs(error)) if self.loss_name == "mae" else ops.mean(ops.square(error))
        self.loss_tracker.update_state(loss)
        return loss

    def write_back(self):
        """Copy the learned rows into the text encoder's table; returns the text encoder."""
        table = ops.convert_to_numpy(self.text_encoder.token_embeddings).copy()
        table[self.first_new:] = ops.convert_to_numpy(self.new_embeddings)
        self.text_encoder.token_embeddings.assign(table)
        return self.text_encoder


def textual_inversion(pipeline, images, token, init_word, captions, steps=400, batch_size=16, learning_rate=5e-3,
                      loss="mse", seed=0, log_every=5):
    """Teach ``pipeline`` (a ``StableDiffusion``) a new ``token`` from a few ``images``; returns the loss history.

    images: uint8 or [0, 1] float (n, h, w, 3) at the pipeline's size (3 to 5 are enough).
    init_word: an existing one-token word the new row starts from ("blue", "cat").
    captions: prompts using the token, one is drawn per example each step
        (e.g. ["a photo of a <token>", "a <token> flower"]); or one such list per image, when the
        pictures differ in what a caption would say (["<token> on the moon"], ["<token> in a field"], ...),
        so that the token does not learn it. Flipped copies double the examples.
    loss: the one the UNet was trained with: "mse" for SD v1.x and the course's mini model ("mae" for the toy-flower one).
    log_every: print the loss every this many tenths of the run (0: silent).
    After it returns, ``pipeline`` understands prompts with ``token``. If it raises (or is
    interrupted), the pipeline's tokenizer, text encoder and UNet are as they were.
    """
    per_image = [list(c) for c in captions] if captions and not isinstance(captions[0], str) else [list(captions)] * len(images)
    if len(per_image) != len(images):
        raise ValueError(f"captions: {len(per_image)} lists for {len(images)} images; give one list per image, or one list")
    if not all(any(token in caption for caption in group) for group in per_image):
        raise ValueError(f"the captions must use the new token {token!r}, e.g. 'a photo of a {token}'")
    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    init = tokenizer.encode(init_word)[1:-1]
    if len(init) != 1:
        raise ValueError(f"init_word {init_word!r} is {len(init)} tokens; choose a word that is one token, like 'flower'")
    trial = copy.deepcopy(tokenizer)  # learns the token now; the pipeline's tokenizer only once training succeeded
    if trial.add_tokens([token]) == 0:
        raise ValueError(f"{token!r} is already in the vocabulary; pick a new token such as '<my-{token.strip('<>')}>'")
    new_id = trial.token_id(token)
    if new_id != encoder.vocabulary_size:
        raise ValueError(f"the tokenizer ({tokenizer.vocabulary_size} tokens) and the text encoder "
                         f"({encoder.vocabulary_size} rows) are out of step; build the pipeline with matching ones")
    trainer = TextualInversion(grow_text_encoder(encoder, 1, init), pipeline.unet, [new_id], loss=loss, seed=seed)
    try:
        latents = ops.convert_to_numpy(pipeline.encode_image(images))
        latents = np.concatenate([latents, latents[:, :, ::-1]])  # horizontal flips: twice the examples
        rng = np.random.default_rng(seed)
        epochs = max(1, min(10, steps))  # the loss is reported after each tenth of the steps
        per_epoch = int(np.ceil(steps / epochs)) * batch_size
        index = np.tile(np.arange(len(latents)), int(np.ceil(per_epoch / len(latents))))[:per_epoch]
        if isinstance(captions[0], str):  # one list for every picture
            texts = [captions[i] for i in rng.integers(0, len(captions), len(index))]
        else:  # a flipped copy keeps its picture's captions
            texts = [per_image[i % len(per_image)][rng.integers(len(per_image[i % len(per_image)]))] for i in index]
        token_ids = trial(texts)
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=0.0)
        if pipeline.unet.dtype_policy.name == "mixed_float16":  # float16 gradients underflow without loss scaling
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        trainer.compile(optimizer=optimizer)
        history = trainer.fit({"latents": latents[index], "token_ids": token_ids}, batch_size=batch_size, epochs=epochs,
                              shuffle=True, verbose=0, callbacks=[EpochLogger(log_every)] if log_every else [])
    finally:
        trainer.release()
    pipeline.set_text_encoder(trainer.write_back())  # success: the encoder and the tokenizer learn the token together
    tokenizer.add_tokens([token])
    return history.history["loss"]
