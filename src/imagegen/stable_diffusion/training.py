"""Training Stable Diffusion's parts from scratch, small: the autoencoder, then the UNet on its latents.

SD is trained in stages, and so is the course's mini model:
1. the autoencoder (``AutoencoderTrainer``): encoder -> Gaussian (mean, log-variance),
   a sample z = mean + sigma * e, decoder -> image. Loss per pixel
       |x - decoder(z)| + kl_weight * KL(N(mean, sigma) || N(0, 1))
   The small KL term keeps the latent space smooth; sampling z teaches the decoder
   to tolerate the small errors a diffusion model's latents carry. It must stay
   small (SD: 1e-6): at 1e-4 the sampling noise grew to a third of the latents'
   spread and the decoder blurred red and yellow into orange. (SD adds a
   perceptual and an adversarial loss for sharp 512x512 photos; flat toy flowers
   do without.)
2. the latent scale: 1 / std of the training latents, so the diffusion model
   sees unit-variance data (SD v1 measured 0.18215 this way).
3. the UNet (``latent_diffusion_model``): the course's ``DiffusionModel`` (EMA,
   caption dropout, v-prediction) on SD's 1000-step schedule, with frozen text
   features as context.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from imagegen.diffusion.model import DiffusionModel
from imagegen.keras_common import LossTrackerMetrics


@keras.saving.register_keras_serializable("imagegen")
class AutoencoderTrainer(LossTrackerMetrics, keras.Model):
    """Trains an ``Encoder`` and a ``Decoder`` together; inputs are images in [0, 1].

    The encoder's scale and the decoder's unscale layers cancel, so the models can be
    trained with any ``latent_scale`` and rebuilt with the measured one afterwards
    (``with_latent_scale``).
    """

    def __init__(self, encoder, decoder, kl_weight=1e-6, seed=None, latent_noise=0.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.kl_weight, self.seed = encoder, decoder, kl_weight, seed
        # While training, the decoder also sees the latents plus noise of ``latent_noise`` times their spread:
        # it learns to draw clean pictures from the slightly-off latents a diffusion model ends on.
        self.latent_noise = latent_noise
        # The encoder's (mean, log-variance) before scaling: the conv named "quant_conv".
        self.moments = keras.Model(encoder.inputs, encoder.get_layer("quant_conv").output, name="moments")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self.reconstruction_tracker, self.kl_tracker]

    def call(self, images, training=False):
        x = ops.convert_to_tensor(images, "float32") * 2.0 - 1.0  # the VAE works in [-1, 1]
        mean, log_variance = ops.split(self.moments(x, training=training), 2, axis=-1)
        log_variance = ops.clip(log_variance, -30.0, 20.0)
        z = mean + ops.exp(0.5 * log_variance) * keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        if training and self.latent_noise:
            spread = ops.stop_gradient(ops.std(mean))
            z = z + self.latent_noise * spread * keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        scale = self.encoder.latent_scale
        return x, self.decoder(z * scale, training=training), mean, log_variance

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target, reconstruction, mean, log_variance = y_pred
        reconstruction_loss = ops.mean(ops.abs(target - reconstruction))
        # KL(N(m, s^2) || N(0, 1)) = 0.5 (m^2 + s^2 - 1 - log s^2), per latent element
        kl = 0.5 * ops.mean(ops.square(mean) + ops.exp(log_variance) - 1.0 - log_variance)
        self.reconstruction_tracker.update_state(reconstruction_loss)
        self.kl_tracker.update_state(kl)
        return reconstruction_loss + self.kl_weight * kl

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder), "kl_weight": self.kl_weight, "seed": self.seed,
                "latent_noise": self.latent_noise}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


def measure_latent_scale(encoder, images, batch_size=256):
    """1 / std of the encoder's unscaled latent means over ``images`` (float in [0, 1])."""
    means = []
    for start in range(0, len(images), batch_size):
        batch = ops.convert_to_tensor(images[start : start + batch_size], "float32") * 2.0 - 1.0
        means.append(ops.convert_to_numpy(encoder(batch, training=False)) / encoder.latent_scale)
    return float(1.0 / np.concatenate(means).std())


def with_latent_scale(model, latent_scale):
    """A copy of an ``Encoder`` or ``Decoder`` with the same weights and a new latent scale."""
    copy = type(model).from_config({**model.get_config(), "latent_scale": float(latent_scale)})
    copy.set_weights(model.get_weights())
    return copy


@keras.saving.register_keras_serializable("imagegen")
class TimestepVector(keras.layers.Layer):
    """Timesteps (b, 1), as ``DiffusionModel`` hands every network, -> (b,), as SD's UNet takes them."""

    def call(self, timesteps):
        return ops.reshape(timesteps, (-1,))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


def timestep_network(unet, latent_size, context_length):
    """Wrap SD's UNet for ``DiffusionModel``: inputs [latents, timesteps (b, 1), context].

    Every schedule of the course gives the network timesteps on SD's scale (0..1000),
    so only the shape changes.
    """
    latent = keras.Input((latent_size, latent_size, unet.config["latent_channels"]), name="latent")
    timesteps = keras.Input((1,), name="timesteps")
    context = keras.Input((context_length, unet.config["context_dim"]), name="context")
    return keras.Model([latent, timesteps, context], unet([latent, TimestepVector(name="timestep")(timesteps), context]),
                       name="timestep_unet")


def latent_diffusion_model(unet, latent_size, context_length, training_power=1.0, condition_dropout=0.15, ema_momentum=0.999, loss="mse", seed=0):
    """A ``DiffusionModel`` that trains ``unet`` on latents (unit variance already: no normalisation).

    Its schedule is SD's scaled-linear 1000 steps, its target v if the UNet
    predicts v. Train on {"images": latents (n, h, w, 4), "context": text features}.
    ``unet_of(model)`` returns the trained (EMA) UNet.
    """
    model = DiffusionModel(timestep_network(unet, latent_size, context_length), schedule={"name": "scaled_linear", "training_power": training_power},
                           prediction=unet.config["prediction"], condition_dropout=condition_dropout,
                           ema_momentum=ema_momentum, loss=loss, seed=seed)
    model.data_mean.assign(np.zeros(model.channels, "float32"))  # latents are already scaled to unit variance
    model.data_std.assign(np.ones(model.channels, "float32"))
    return model


def unet_of(model, use_ema=True):
    """The UNet inside a ``latent_diffusion_model`` (its EMA copy by default)."""
    network = model.ema_network if use_ema else model.network
    return next(layer for layer in network.layers if layer.name.startswith("unet"))
