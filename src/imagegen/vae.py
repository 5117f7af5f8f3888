"""A convolutional variational autoencoder (VAE): the first random-sample model of the course.

An encoder maps an image x to a Gaussian over latent codes, q(z|x) = N(mean, exp(log_var));
a decoder maps a code z back to pixel probabilities p(x|z). Training maximises the
evidence lower bound (ELBO) on log p(x):

    log p(x) >= E_{z~q(z|x)}[log p(x|z)] - KL(q(z|x) || N(0, I))
                \\___ reconstruction ___/   \\_______ KL term _______/

The reconstruction term makes codes informative; the KL term pulls every q(z|x)
towards the prior N(0, I), so the codes of all images fill one continuous cloud
around the origin. That is why *sampling works*: draw z ~ N(0, I), decode it, and
you land where training put real images. Stable Diffusion's autoencoder is a VAE
too (its KL term is tiny, so it mostly compresses).

We minimise loss = reconstruction + beta * KL per image, summed over pixels and
latent dimensions and averaged over the batch, as the keras.io VAE example does.

Training customises Keras' step through ``compute_loss``: the default
``train_step`` of every backend (TensorFlow, JAX) calls it, so one method
replaces a per-backend ``GradientTape`` loop and still trains with ``fit()``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from imagegen.keras_common import LossTrackerMetrics, build_with_policy

RECONSTRUCTIONS = ("bernoulli", "gaussian")


@keras.saving.register_keras_serializable("imagegen")
class Sampling(layers.Layer):
    """The reparameterisation trick: z = mean + exp(log_var / 2) * epsilon, epsilon ~ N(0, I).

    Writing the random draw this way keeps z differentiable in mean and log_var.
    Inputs: [mean, log_var], each (batch, latent_dim). Output: z, same shape.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mean, log_var = inputs
        epsilon = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * epsilon

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def kl_divergence(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over latent dimensions.

    Closed form for diagonal Gaussians: 0.5 * sum(exp(log_var) + mean^2 - 1 - log_var).
    mean, log_var: (batch, latent_dim). Returns (batch,).
    """
    return 0.5 * ops.sum(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var, axis=-1)


def reconstruction_loss(images, reconstructions, kind="bernoulli", gaussian_sigma=0.1):
    """-log p(x|z) per example, summed over pixels (constants dropped).

    bernoulli: binary cross-entropy, for images in [0, 1] such as digits.
    gaussian: squared error / (2 sigma^2), a Gaussian likelihood with fixed sigma.
    images, reconstructions: (batch, h, w, c) in [0, 1]. Returns (batch,).
    """
    if kind == "bernoulli":
        per_pixel = keras.losses.binary_crossentropy(images[..., None], reconstructions[..., None])
    elif kind == "gaussian":
        per_pixel = ops.square(images - reconstructions) / (2.0 * gaussian_sigma**2)
    else:
        raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")
    return ops.sum(ops.reshape(per_pixel, (ops.shape(images)[0], -1)), axis=-1)


def build_encoder(image_size=28, channels=1, latent_dim=2, filters=(32, 64), dense_units=64):
    """Images (batch, size, size, channels) -> [mean, log_var], each (batch, latent_dim).

    Each entry of ``filters`` is a stride-2 convolution, halving the size.
    """
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for width in filters:
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    mean = layers.Dense(latent_dim, name="mean")(x)
    log_var = layers.Dense(latent_dim, name="log_var")(x)
    return keras.Model(images, [mean, log_var], name="encoder")


def build_decoder(image_size=28, channels=1, latent_dim=2, filters=(32, 64), dense_units=64):
    """Codes (batch, latent_dim) -> pixel probabilities (batch, size, size, channels) in [0, 1]."""
    scale = 2 ** len(filters)
    if image_size % scale:
        raise ValueError(f"image_size must be a multiple of {scale} for {len(filters)} downsamplings, got {image_size}")
    start = image_size // scale
    codes = keras.Input((latent_dim,), name="codes")
    x = layers.Dense(dense_units, activation="relu")(codes)
    x = layers.Dense(start * start * filters[-1], activation="relu")(x)
    x = layers.Reshape((start, start, filters[-1]))(x)
    for width in reversed(filters):
        x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", activation="relu")(x)
    images = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="pixels")(x)
    return keras.Model(codes, images, name="decoder")


@keras.saving.register_keras_serializable("imagegen")
class VAE(LossTrackerMetrics, keras.Model):
    """Encoder, sampling and decoder, trained on the negative ELBO with ``fit(images)``.

    image_size, channels: input images (batch, size, size, channels) in [0, 1].
    latent_dim: size of the code z (2 lets us plot the latent space).
    filters: widths of the stride-2 convolutions (the size must divide by 2**len).
    reconstruction: "bernoulli" (binary cross-entropy) or "gaussian" (squared error).
    beta: weight of the KL term (1 is the ELBO; larger trades detail for a smoother space).

    Calling the model returns (reconstruction, mean, log_var). ``fit``,
    ``evaluate`` and the history report loss, reconstruction_loss and kl_loss,
    per image.
    """

    def __init__(self, image_size=28, channels=1, latent_dim=2, filters=(32, 64), dense_units=64,
                 reconstruction="bernoulli", beta=1.0, gaussian_sigma=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {reconstruction!r}")
        self.image_size, self.channels, self.latent_dim = image_size, channels, latent_dim
        self.filters, self.dense_units = tuple(filters), dense_units
        self.reconstruction, self.beta, self.gaussian_sigma, self.seed = reconstruction, beta, gaussian_sigma, seed
        with build_with_policy(self):  # the model's dtype policy, also when loaded from a file
            self.encoder = build_encoder(image_size, channels, latent_dim, self.filters, dense_units)
            self.decoder = build_decoder(image_size, channels, latent_dim, self.filters, dense_units)
            self.sampling = Sampling(seed=seed, name="sampling")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def build(self, input_shape=None):
        """Nothing to create: the encoder and decoder are functional models, built on construction."""
        self.built = True

    def call(self, images, training=False):
        mean, log_var = self.encoder(images, training=training)
        # Training decodes a random code from q(z|x); inference decodes its mean.
        codes = self.sampling([mean, log_var]) if training else mean
        return self.decoder(codes, training=training), mean, log_var

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Negative ELBO: reconstruction + beta * KL, averaged over the batch (y is ignored)."""
        reconstructions, mean, log_var = y_pred
        reconstruction = ops.mean(reconstruction_loss(x, reconstructions, self.reconstruction, self.gaussian_sigma))
        kl = ops.mean(kl_divergence(mean, log_var))
        loss = reconstruction + self.beta * kl
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return loss

    def encode(self, images, batch_size=256):
        """Images (n, size, size, channels) -> (mean, log_var) as numpy, each (n, latent_dim)."""
        mean, log_var = self.encoder.predict(images, batch_size=batch_size, verbose=0)
        return mean, log_var

    def decode(self, codes, batch_size=256):
        """Codes (n, latent_dim) -> images (n, size, size, channels) as numpy, in [0, 1]."""
        return self.decoder.predict(codes, batch_size=batch_size, verbose=0)

    def reconstruct(self, images):
        """Encode to the mean code and decode it back."""
        return self.decode(self.encode(images)[0])

    def sample(self, num_images, seed=0):
        """Random samples: draw z ~ N(0, I) and decode. Returns (n, size, size, channels)."""
        codes = keras.random.normal((num_images, self.latent_dim), seed=seed)
        return self.decode(ops.convert_to_numpy(codes))

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size, "channels": self.channels, "latent_dim": self.latent_dim,
            "filters": list(self.filters), "dense_units": self.dense_units, "reconstruction": self.reconstruction,
            "beta": self.beta, "gaussian_sigma": self.gaussian_sigma, "seed": self.seed,
        }
