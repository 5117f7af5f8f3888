"""The diffusion model: learn to predict the noise in a noisy image, then run that on pure noise.

Training (``fit(images)``): for each image in [0, 1], normalise it per channel
to x_0 = (image - mean) / std (``adapt`` measures mean and std on the data, as
the keras.io DDIM does; before that, mean = std = 0.5 maps [0, 1] to [-1, 1]),
draw a timestep and noise, form x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) e, and
train the network to predict the noise from (x_t, timestep) with an MAE or MSE loss.

Why predict the noise: it has the same scale at every level (unit variance),
which makes one network good at all of them, and the clean image follows from
it in closed form (``prediction.clean_estimate``).

v-prediction (``prediction="v"``, Salimans and Ho, 2022): the network predicts
v = sqrt(a_t) e - sqrt(1 - a_t) x_0 instead. At the noisiest levels the noise
target carries almost no information about the image (x_0 = (x_t - noise_rate
* noise) / signal divides by a signal rate near 0.02), while v there is almost
-x_0: the network must say what the image will be. A text-conditioned model
decides colour and layout at those levels, so v-prediction learns prompts
faster (notebook 05). The sampler still receives the noise
(``prediction.to_epsilon``).

Why EMA: see ``imagegen.diffusion.ema``; sampling uses the EMA network by default.

Text conditioning (notebook 05): with a network that takes a third input, a
context (b, L, d) such as a text encoder's token features, ``fit`` takes a dict
{"images": ..., "context": ...}. During training each caption is replaced by
the empty prompt's encoding (``null_context``) with probability
``condition_dropout``, so the same network also learns the unconditional
prediction that classifier-free guidance needs at sampling time.

Training customises Keras through ``call`` (which noises the batch) and
``compute_loss``; the default ``train_step`` of each backend does the rest,
and ``EMATraining.train_step`` only adds the EMA update after the optimizer step.
"""

from __future__ import annotations

import keras
from keras import ops

from imagegen.diffusion import prediction as predictions
from imagegen.diffusion.ema import EMATraining
from imagegen.diffusion.samplers import classifier_free_guidance, get_scheduler, invert, sample
from imagegen.diffusion.schedules import get_schedule
from imagegen.keras_common import LossTrackerMetrics, dtype_policy_scope

LOSSES = ("mae", "mse")


@keras.saving.register_keras_serializable("imagegen")
class DiffusionModel(LossTrackerMetrics, EMATraining, keras.Model):
    """A denoising network with a noise schedule, an EMA copy, and the course's samplers.

    network: a Keras model [noisy images, timesteps (b, 1)] -> predicted noise or v (``build_unet``).
    schedule: "cosine" (keras.io DDIM), "linear" or "scaled_linear" (SD), or a config dict.
    loss: "mae" (keras.io's choice) or "mse" (DDPM's).
    prediction: "epsilon" (predict the noise, as DDPM and SD v1) or "v" (see above).
    ema_momentum: m in ema_w <- m * ema_w + (1 - m) * w.
    condition_dropout: for a network with a context input, the share of training
        captions replaced by ``null_context`` (set it with ``set_null_context``).
    Images going in and out are float in [0, 1], (batch, size, size, channels).
    """

    def __init__(self, network, schedule="cosine", loss="mae", ema_momentum=0.999, seed=None, condition_dropout=0.1,
                 prediction="epsilon", **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.prediction = predictions.check_prediction(prediction)
        self.network = network
        self.ema_network = keras.models.clone_model(network)
        self.ema_network.set_weights(network.get_weights())
        self.ema_network.trainable = False
        self.schedule = get_schedule(schedule)
        self.loss_name, self.ema_momentum, self.seed = loss, ema_momentum, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="noise_loss")  # the loss on e, or on v
        self.image_size = network.inputs[0].shape[1]
        self.channels = network.inputs[0].shape[-1]
        self.data_mean = self.add_weight(shape=(self.channels,), initializer=keras.initializers.Constant(0.5), trainable=False, name="data_mean")
        self.data_std = self.add_weight(shape=(self.channels,), initializer=keras.initializers.Constant(0.5), trainable=False, name="data_std")
        self.conditional = len(network.inputs) == 3
        self.condition_dropout = condition_dropout
        if not 0.0 <= condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {condition_dropout}")
        if self.conditional:
            self.context_shape = tuple(network.inputs[2].shape[1:])
            self.null_context = self.add_weight(shape=self.context_shape, initializer="zeros", trainable=False, name="null_context")

    def set_null_context(self, null_context):
        """The unconditional context, e.g. the text encoder's output for the empty prompt "" (L, d)."""
        null_context = ops.convert_to_numpy(null_context).reshape(self.context_shape)
        self.null_context.assign(null_context)

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
        return [self.loss_tracker]

    def build(self, input_shape=None):
        """Nothing to create: both networks are built functional models."""
        self.built = True

    def _split_inputs(self, inputs):
        """images, or {"images", "context"} for a conditional network -> (images, context or None)."""
        if not self.conditional:
            if isinstance(inputs, dict):
                raise ValueError("this network takes no context; pass images only")
            return inputs, None
        if not isinstance(inputs, dict) or set(inputs) != {"images", "context"}:
            raise ValueError('a conditional model trains on a dict {"images": (b, s, s, c), "context": (b, L, d)}')
        return inputs["images"], inputs["context"]

    def call(self, inputs, training=False):
        """Noise a batch of clean images at random timesteps; return (prediction, target): e, or v."""
        images, context = self._split_inputs(inputs)
        x0 = self.normalize(images)
        batch = ops.shape(x0)[0]
        timesteps, signal, _ = self.schedule.training_levels(batch, self.seed_generator)
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        a_t = ops.square(signal)[:, None, None, None]
        network_inputs = [predictions.add_noise(x0, noise, a_t), ops.reshape(timesteps, (-1, 1))]
        if self.conditional:
            context = ops.cast(context, "float32")
            if training and self.condition_dropout > 0:
                # Caption dropout: the unconditional prediction is learned on the same network.
                drop = keras.random.uniform((batch, 1, 1), seed=self.seed_generator) < self.condition_dropout
                context = ops.where(drop, self.null_context[None], context)
            network_inputs.append(context)
        return self.network(network_inputs, training=training), predictions.training_target(x0, noise, a_t, self.prediction)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        predicted, target = y_pred
        error = predicted - target
        loss = ops.mean(ops.abs(error)) if self.loss_name == "mae" else ops.mean(ops.square(error))
        self.loss_tracker.update_state(loss)
        return loss

    # -- sampling -------------------------------------------------------------------------
    def _contexts(self, num_images, context, negative_context):
        """Broadcast (L, d) or (n, L, d) contexts to (num_images, L, d); the negative defaults to null."""
        if not self.conditional:
            if context is not None or negative_context is not None:
                raise ValueError("this model is unconditional: it takes no context or negative context")
            return None, None
        if context is None:
            raise ValueError("a conditional model needs a context, e.g. prompt_encoder(['a red flower'])")

        def expand(value):
            value = ops.cast(ops.convert_to_tensor(value), "float32")
            if tuple(value.shape[-2:]) != self.context_shape:
                raise ValueError(f"context must end in shape {self.context_shape}, got {tuple(value.shape)}")
            value = ops.reshape(value, (-1, *self.context_shape))
            if value.shape[0] not in (1, num_images):
                raise ValueError(f"got {value.shape[0]} contexts for {num_images} images; give 1 or {num_images}")
            return ops.broadcast_to(value, (num_images, *self.context_shape))

        negative = self.null_context if negative_context is None else negative_context
        return expand(context), expand(negative)

    def denoiser(self, use_ema=True, context=None, negative_context=None, guidance_scale=1.0):
        """A callable (x_t in model space, timestep, a_t) -> the predicted noise e, for the samplers.

        With a context: classifier-free guidance at ``guidance_scale``, both halves in
        one network call on a doubled batch; the unconditional half reads
        ``negative_context`` (a negative prompt's encoding) or the null context.
        """
        network = self.ema_network if use_ema else self.network
        if context is not None:
            context = ops.convert_to_tensor(context, "float32")
            negative_context = ops.convert_to_tensor(self.null_context if negative_context is None else negative_context, "float32")

        def predict(x, timesteps):
            if context is None:
                return network([x, timesteps], training=False)
            if guidance_scale == 1.0:  # the unconditional half cancels: skip it
                return network([x, timesteps, context], training=False)
            both = network([ops.concatenate([x, x]), ops.concatenate([timesteps, timesteps]),
                            ops.concatenate([context, negative_context])], training=False)
            conditional, unconditional = ops.split(both, 2)
            return classifier_free_guidance(conditional, unconditional, guidance_scale)

        def denoise(x, timestep, a_t):
            x = ops.convert_to_tensor(x, "float32")
            output = predict(x, ops.full((ops.shape(x)[0], 1), float(timestep), dtype="float32"))
            return predictions.to_epsilon(output, x, a_t, self.prediction)

        return denoise

    def initial_noise(self, num_images, seed=None):
        """Pure noise x_T ~ N(0, I) of the model's image shape."""
        return keras.random.normal((num_images, self.image_size, self.image_size, self.channels), seed=seed)

    def generate(self, num_images=16, num_steps=20, eta=0.0, seed=None, initial_noise=None, use_ema=True,
                 on_step=None, clip_denoised=True, context=None, negative_context=None, guidance_scale=1.0,
                 scheduler="ddim"):
        """Generate images from noise. Returns numpy float32 (n, size, size, channels) in [0, 1].

        num_steps: denoising steps (DDIM works well with 10 to 50).
        eta: DDIM's: 0 deterministic; 1 behaves like DDPM.
        initial_noise: x_T to start from (default: drawn from ``seed``).
        on_step: callback (step index, x_next, x0) with tensors in model space (``denormalize`` shows them).
        clip_denoised: keep each clean-image estimate within valid pixels.
        context: conditional models: (L, d) for all images or (num_images, L, d).
        negative_context: what to steer away from (default: the null context).
        guidance_scale: classifier-free guidance strength s (1 = plain conditional).
        scheduler: "ddim" or "dpm++2m" (``imagegen.diffusion.samplers``), the same as Stable Diffusion's.
        """
        if initial_noise is not None:
            num_images = initial_noise.shape[0]
        context, negative_context = self._contexts(num_images, context, negative_context)
        noise = self.initial_noise(num_images, seed) if initial_noise is None else initial_noise
        options = {"eta": eta, "seed": seed} if eta else {}
        sampler = get_scheduler(scheduler, self.schedule, x0_range=self.pixel_range() if clip_denoised else None, **options)
        denoise = self.denoiser(use_ema, context, negative_context, guidance_scale)
        x0 = sample(denoise, ops.convert_to_tensor(noise, "float32"), sampler, num_steps, on_step=on_step)
        return self.denormalize(x0)

    def invert(self, images, num_steps=50, use_ema=True, refine_steps=2, context=None):
        """DDIM inversion: the noise x_T that ``generate(initial_noise=x_T, num_steps=num_steps, eta=0,
        clip_denoised=False, context=context)`` maps back to ``images`` (see ``samplers.invert``
        for ``refine_steps``). Conditional models invert under ``context`` without guidance."""
        context, _ = self._contexts(len(images), context, None)
        plan = self.schedule.plan(num_steps)
        return ops.convert_to_numpy(invert(self.denoiser(use_ema, context), self.normalize(images), plan, refine_steps))

    def get_config(self):
        return {
            **super().get_config(),
            "network": keras.saving.serialize_keras_object(self.network),
            "schedule": self.schedule.get_config(), "loss": self.loss_name,
            "ema_momentum": self.ema_momentum, "seed": self.seed, "condition_dropout": self.condition_dropout,
            "prediction": self.prediction,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        with dtype_policy_scope(config.get("dtype")):  # the network's layers keep the saved mixed-precision policy
            config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)

