"""The diffusion model: learn to predict the noise in a noisy image, then run that on pure noise.

Training (``fit(images)``): for each image in [0, 1], normalise it per channel
to x_0 = (image - mean) / std (``adapt`` measures mean and std on the data, as
the keras.io DDIM does; before that, mean = std = 0.5 maps [0, 1] to [-1, 1]),
draw a noise level and noise, form x_t = signal * x_0 + noise_rate * noise, and
train the network to predict the noise from (x_t, t) with an MAE or MSE loss.

Why predict the noise: it has the same scale at every level (unit variance),
which makes one network good at all of them, and the clean image follows from
it in closed form (see ``sampler.ddim_step``).

Why EMA: the weights jitter from batch to batch; an exponential moving average
ema_w <- m * ema_w + (1 - m) * w (m = 0.999) is a smoothed model that samples
better images. Sampling uses the EMA network by default. The momentum warms up
as m_n = min(m, (1 + n) / (10 + n)) over the first optimizer steps n, so a
short run's EMA is not stuck near the random initial weights.

Training customises Keras through ``call`` (which noises the batch) and
``compute_loss``; the default ``train_step`` of each backend does the rest,
and ``train_step`` only adds the EMA update after the optimizer step.
"""

from __future__ import annotations

import keras
from keras import ops

from imagegen.diffusion.sampler import ddim_invert, ddim_sample
from imagegen.diffusion.schedules import get_schedule

LOSSES = ("mae", "mse")


@keras.saving.register_keras_serializable("imagegen")
class DiffusionModel(keras.Model):
    """A noise-predicting network with a schedule, an EMA copy, and a DDIM sampler.

    network: a Keras model [noisy images, times] -> predicted noise (``build_unet``).
    schedule: "cosine" (keras.io DDIM), "linear" or "scaled_linear" (SD), or a config dict.
    loss: "mae" (keras.io's choice) or "mse" (DDPM's).
    ema_momentum: m in ema_w <- m * ema_w + (1 - m) * w.
    Images going in and out are float in [0, 1], (batch, size, size, channels).
    """

    def __init__(self, network, schedule="cosine", loss="mae", ema_momentum=0.999, seed=None, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.network = network
        self.ema_network = keras.models.clone_model(network)
        self.ema_network.set_weights(network.get_weights())
        self.ema_network.trainable = False
        self.schedule = get_schedule(schedule)
        self.loss_name, self.ema_momentum, self.seed = loss, ema_momentum, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.noise_loss_tracker = keras.metrics.Mean(name="noise_loss")
        self.image_size = network.inputs[0].shape[1]
        self.channels = network.inputs[0].shape[-1]
        self.data_mean = self.add_weight(shape=(self.channels,), initializer=keras.initializers.Constant(0.5), trainable=False, name="data_mean")
        self.data_std = self.add_weight(shape=(self.channels,), initializer=keras.initializers.Constant(0.5), trainable=False, name="data_std")

    def adapt(self, images):
        """Measure the per-channel mean and standard deviation of training images (float in [0, 1])."""
        images = ops.convert_to_numpy(images).reshape(-1, self.channels)
        self.data_mean.assign(images.mean(axis=0))
        self.data_std.assign(images.std(axis=0) + 1e-3)

    def normalize(self, images):
        """Images in [0, 1] -> model space: (image - mean) / std."""
        return (ops.convert_to_tensor(images, "float32") - self.data_mean) / self.data_std

    def denormalize(self, x):
        """Model space -> numpy images in [0, 1]."""
        return ops.convert_to_numpy(ops.clip(ops.convert_to_tensor(x) * self.data_std + self.data_mean, 0.0, 1.0))

    def pixel_range(self):
        """Per-channel bounds of valid pixels [0, 1] in model space, for clipping the clean-image estimate."""
        return (0.0 - self.data_mean) / self.data_std, (1.0 - self.data_mean) / self.data_std

    @property
    def metrics(self):
        return [self.noise_loss_tracker]

    def build(self, input_shape=None):
        """Nothing to create: both networks are built functional models."""
        self.built = True

    def call(self, images, training=False):
        """Noise a batch of clean images at random levels; return (predicted noise, true noise)."""
        x0 = self.normalize(images)
        batch = ops.shape(x0)[0]
        times, signal, noise_rate = self.schedule.training_levels(batch, self.seed_generator)
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        # Forward process: x_t = signal * x_0 + noise_rate * noise.
        noisy = signal[:, None, None, None] * x0 + noise_rate[:, None, None, None] * noise
        predicted = self.network([noisy, ops.reshape(times, (-1, 1))], training=training)
        return predicted, noise

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        predicted, noise = y_pred
        error = predicted - noise
        loss = ops.mean(ops.abs(error)) if self.loss_name == "mae" else ops.mean(ops.square(error))
        self.noise_loss_tracker.update_state(loss)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {metric.name: metric.result() for metric in self.metrics}

    # -- EMA ------------------------------------------------------------------------------
    def train_step(self, *args):
        """The backend's usual step, then the EMA update ema_w <- m * ema_w + (1 - m) * w."""
        if keras.backend.backend() == "jax":
            state, data = args
            logs, state = super().train_step(state, data)
            return logs, self._jax_ema_update(state)
        logs = super().train_step(*args)
        self.update_ema()
        return logs

    def ema_momentum_at(self, step):
        """The warmed-up momentum after ``step`` optimizer steps: min(m, (1 + n) / (10 + n))."""
        step = ops.cast(step, "float32")
        return ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))

    def update_ema(self, momentum=None):
        """Move every EMA weight towards its network weight (TensorFlow, torch, or outside fit)."""
        if momentum is None:
            momentum = self.ema_momentum_at(self.optimizer.iterations) if self.optimizer is not None else self.ema_momentum
        for ema_weight, weight in zip(self.ema_network.weights, self.network.weights):
            ema_weight.assign(momentum * ema_weight + (1.0 - momentum) * weight)

    def _jax_ema_update(self, state):
        """JAX's step is stateless: apply the EMA update to the returned state's variables."""
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        positions = {id(v): ("t", i) for i, v in enumerate(self.trainable_variables)}
        positions.update({id(v): ("n", i) for i, v in enumerate(self.non_trainable_variables)})
        iterations = optimizer_variables[[id(v) for v in self.optimizer.variables].index(id(self.optimizer.iterations))]
        momentum = self.ema_momentum_at(iterations)
        non_trainable = list(non_trainable)
        for ema_weight, weight in zip(self.ema_network.weights, self.network.weights):
            kind, source = positions[id(weight)]
            value = trainable[source] if kind == "t" else non_trainable[source]
            _, target = positions[id(ema_weight)]
            non_trainable[target] = momentum * non_trainable[target] + (1.0 - momentum) * value
        return trainable, non_trainable, optimizer_variables, metrics_variables

    # -- sampling -------------------------------------------------------------------------
    def denoiser(self, use_ema=True):
        """A callable (x_t in model space, time float) -> predicted noise, for the sampler."""
        network = self.ema_network if use_ema else self.network

        def denoise(x, time):
            times = ops.full((ops.shape(x)[0], 1), time, dtype="float32")
            return network([x, times], training=False)

        return denoise

    def initial_noise(self, num_images, seed=None):
        """Pure noise x_T ~ N(0, I) of the model's image shape."""
        return keras.random.normal((num_images, self.image_size, self.image_size, self.channels), seed=seed)

    def generate(self, num_images=16, num_steps=20, eta=0.0, seed=None, initial_noise=None, use_ema=True,
                 on_step=None, clip_denoised=True):
        """Generate images from noise with DDIM. Returns numpy float32 (n, size, size, channels) in [0, 1].

        num_steps: denoising steps (DDIM works well with 10 to 50).
        eta: 0 deterministic; 1 behaves like DDPM.
        initial_noise: x_T to start from (default: drawn from ``seed``).
        on_step: callback (step, x_prev, x0_hat) with tensors in model space (``denormalize`` shows them).
        clip_denoised: keep each clean-image estimate within valid pixels.
        """
        noise = self.initial_noise(num_images, seed) if initial_noise is None else initial_noise
        times, alpha_bars = self.schedule.sampling_plan(num_steps)
        x0 = ddim_sample(self.denoiser(use_ema), noise, times, alpha_bars, eta=eta, seed=seed, on_step=on_step,
                         x0_range=self.pixel_range() if clip_denoised else None)
        return self.denormalize(x0)

    def invert(self, images, num_steps=50, use_ema=True, refine_steps=2):
        """DDIM inversion: the noise x_T that ``generate(initial_noise=x_T, num_steps=num_steps, eta=0,
        clip_denoised=False)`` maps back to ``images`` (see ``sampler.ddim_invert`` for ``refine_steps``)."""
        times, alpha_bars = self.schedule.sampling_plan(num_steps)
        noise = ddim_invert(self.denoiser(use_ema), self.normalize(images), times, alpha_bars, refine_steps)
        return ops.convert_to_numpy(noise)

    def get_config(self):
        return {
            **super().get_config(),
            "network": keras.saving.serialize_keras_object(self.network),
            "schedule": self.schedule.get_config(), "loss": self.loss_name,
            "ema_momentum": self.ema_momentum, "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)

