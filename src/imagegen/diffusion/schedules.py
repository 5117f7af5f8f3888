"""Noise schedules: how much signal an image keeps at each timestep, for training and for sampling.

Forward process (DDPM, Ho et al. 2020, eq. 4): x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) e,
where a_t = alpha_bar_t is the signal level: signal rate sqrt(a_t), noise rate
sqrt(1 - a_t), and signal^2 + noise^2 = 1 (``imagegen.diffusion.prediction``).

Every schedule speaks in *timesteps* on one scale, 0 (cleanest) to T = 1000
(noisiest), and that timestep is what the network is given, in pixel space as
in Stable Diffusion:
- ``CosineSchedule``: continuous, as in the keras.io DDIM example; with
  t = timestep / T in [0, 1], the angle arccos(signal rate) moves linearly from
  arccos(max_signal_rate) to arccos(min_signal_rate). At timestep 0 the signal
  rate is still ``max_signal_rate`` (0.95), not 1.
- ``DiscreteSchedule``: T steps with a beta each, a_t = prod_{s<=t} (1 - beta_s):
  ``linear`` (DDPM: 1e-4 to 0.02) and ``scaled_linear`` (Stable Diffusion:
  sqrt(beta) linear from 0.00085 to 0.012). Its sampling plans follow one
  timestep-spacing rule (``imagegen.diffusion.spacing``).

Both give a model the same two things: random levels for training
(``training_levels``) and a plan for sampling (``plan``: ``Step(timestep, a_t,
a_next)``, noisiest first). Train and sample with the *same* schedule: mixing
them is a classic bug.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from imagegen.diffusion import spacing as timestep_spacing
from imagegen.diffusion.spacing import Step

NUM_TRAIN_STEPS = 1000


class CosineSchedule:
    """The continuous cosine schedule of the keras.io DDIM example, on timesteps 0..1000.

    training_power: training timesteps are T u ** training_power with u ~ U[0, 1].
    1 is uniform (the default, and what the course's models use); 0.5 (density
    2t) trains more on the noisiest levels, where a conditional model decides
    layout and colour, but starves the least noisy ones: notebook 05 measured
    fewer prompts followed and grainier pictures with it.
    """

    name = "cosine"
    num_train_steps = NUM_TRAIN_STEPS

    def __init__(self, min_signal_rate=0.02, max_signal_rate=0.95, training_power=1.0):
        if not 0.0 < min_signal_rate < max_signal_rate < 1.0:
            raise ValueError(f"need 0 < min_signal_rate < max_signal_rate < 1, got {min_signal_rate}, {max_signal_rate}")
        _check_power(training_power)
        self.min_signal_rate, self.max_signal_rate = min_signal_rate, max_signal_rate
        self.training_power = training_power
        self.start_angle = math.acos(max_signal_rate)
        self.end_angle = math.acos(min_signal_rate)

    def rates(self, timesteps):
        """(signal_rate, noise_rate) tensors at timesteps in [0, 1000]."""
        t = ops.convert_to_tensor(timesteps, "float32") / self.num_train_steps
        angle = self.start_angle + t * (self.end_angle - self.start_angle)
        return ops.cos(angle), ops.sin(angle)  # cos^2 + sin^2 = 1

    def alpha_bar(self, timesteps):
        """a_t = signal_rate^2 at timesteps in [0, 1000], as numpy."""
        t = np.asarray(timesteps, dtype=np.float64) / self.num_train_steps
        return np.cos(self.start_angle + t * (self.end_angle - self.start_angle)) ** 2

    def training_levels(self, batch_size, seed):
        """Random levels for a training batch: (timesteps (b,) float, signal (b,), noise (b,))."""
        t = keras.random.uniform((batch_size,), seed=seed)
        if self.training_power != 1.0:
            t = ops.power(t, self.training_power)
        timesteps = t * float(self.num_train_steps)
        return (timesteps, *self.rates(timesteps))

    def plan(self, num_steps):
        """[Step(timestep, a_t, a_next)]: timesteps T (1 - i / n), i = 0..n-1; the last step lands on a clean image."""
        n = _check_steps(num_steps)
        steps = self.num_train_steps * (1.0 - np.arange(n) / n)
        levels = self.alpha_bar(steps)
        nexts = np.append(levels[1:], 1.0)
        return [Step(float(t), float(a), float(b)) for t, a, b in zip(steps, levels, nexts)]

    def get_config(self):
        return {"name": self.name, "min_signal_rate": self.min_signal_rate, "max_signal_rate": self.max_signal_rate,
                "training_power": self.training_power}


class DiscreteSchedule:
    """A schedule of ``len(betas)`` discrete steps (DDPM and Stable Diffusion), a_t = prod_{s <= t} (1 - beta_s).

    spacing, steps_offset: which timesteps a sampler visits (``imagegen.diffusion.spacing``).
    final_alpha_bar: the level the last step lands on (1: a clean image; SD 1.5's config: a_0).
    clip_x0: clip the clean estimate to [-clip_x0, clip_x0] while sampling (diffusers' clip_sample).
    training_power: training timesteps are floor(T u ** training_power), u ~ U[0, 1) (1: uniform).
    """

    def __init__(self, betas, name="custom", beta_start=None, beta_end=None, training_power=1.0, spacing="keras_cv",
                 steps_offset=0, final_alpha_bar=1.0, clip_x0=None):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 2 or np.any(betas <= 0) or np.any(betas >= 1):
            raise ValueError("betas must be a 1-D array of values in (0, 1)")
        _check_power(training_power)
        self.name, self.beta_start, self.beta_end = name, beta_start, beta_end
        self.training_power = training_power
        self.betas = betas
        self.alpha_bars = np.cumprod(1.0 - betas)  # a_t = prod_{s <= t} (1 - beta_s)
        self.num_train_steps = len(betas)
        self.spacing, self.steps_offset = timestep_spacing.check_spacing(spacing), int(steps_offset)
        self.final_alpha_bar = float(self.alpha_bars[0] if final_alpha_bar is None else final_alpha_bar)
        self.clip_x0 = clip_x0

    @classmethod
    def linear(cls, beta_start=1e-4, beta_end=0.02, num_train_steps=NUM_TRAIN_STEPS, **options):
        """DDPM's schedule: betas linear from beta_start to beta_end."""
        return cls(np.linspace(beta_start, beta_end, num_train_steps), "linear", beta_start, beta_end, **options)

    @classmethod
    def scaled_linear(cls, beta_start=0.00085, beta_end=0.012, num_train_steps=NUM_TRAIN_STEPS, **options):
        """Stable Diffusion's schedule: sqrt(beta) linear from sqrt(beta_start) to sqrt(beta_end)."""
        betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_steps) ** 2
        return cls(betas, "scaled_linear", beta_start, beta_end, **options)

    @classmethod
    def squaredcos_cap_v2(cls, num_train_steps=NUM_TRAIN_STEPS, **options):
        """Improved DDPM's cosine betas (Nichol & Dhariwal 2021, eq. 17): a(t) = cos((t + 0.008) / 1.008 * pi / 2)^2."""
        f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = [min(1 - f((i + 1) / num_train_steps) / f(i / num_train_steps), 0.999) for i in range(num_train_steps)]
        return cls(betas, "squaredcos_cap_v2", **options)

    @classmethod
    def from_continuous(cls, schedule, num_train_steps=NUM_TRAIN_STEPS):
        """Discretise a continuous schedule: betas chosen so a[t] = schedule.alpha_bar(T (t + 1) / n)."""
        alpha_bars = schedule.alpha_bar(np.arange(1, num_train_steps + 1) * (schedule.num_train_steps / num_train_steps))
        previous = np.concatenate([[1.0], alpha_bars[:-1]])
        return cls(np.clip(1.0 - alpha_bars / previous, 1e-8, 0.999), f"discrete_{schedule.name}")

    @classmethod
    def from_diffusers(cls, config):
        """(schedule, prediction) from a diffusers ``scheduler_config.json`` dict, whatever its ``_class_name``.

        Missing keys take diffusers' DDIM defaults, except that the clean estimate is
        not clipped unless the file says so (clipping latents to [-1, 1] is never meant).
        prediction: "epsilon" or "v" (the file's "v_prediction").
        """
        for key, why in (("thresholding", "dynamic thresholding is for pixel-space models"),
                         ("rescale_betas_zero_snr", "zero-terminal-SNR rescaling is not implemented")):
            if config.get(key):
                raise ValueError(f"scheduler config sets {key}=true: {why}; remove it to sample with our DDIM")
        prediction = {"epsilon": "epsilon", "v_prediction": "v"}.get(config.get("prediction_type", "epsilon"))
        if prediction is None:
            raise ValueError(f"prediction_type {config['prediction_type']!r} is not supported: only epsilon and v_prediction")
        options = dict(spacing=config.get("timestep_spacing", "leading"), steps_offset=config.get("steps_offset", 0),
                       final_alpha_bar=1.0 if config.get("set_alpha_to_one", True) else None,
                       clip_x0=config.get("clip_sample_range", 1.0) if config.get("clip_sample", False) else None)
        total, kind = config.get("num_train_timesteps", NUM_TRAIN_STEPS), config.get("beta_schedule", "linear")
        if config.get("trained_betas") is not None:
            return cls(config["trained_betas"], "trained", **options), prediction
        if kind == "squaredcos_cap_v2":
            return cls.squaredcos_cap_v2(total, **options), prediction
        if kind not in ("scaled_linear", "linear"):
            raise ValueError(f"unknown beta_schedule {kind!r}; choose scaled_linear, linear or squaredcos_cap_v2")
        return getattr(cls, kind)(config.get("beta_start", 0.0001), config.get("beta_end", 0.02), total,
                                  **options), prediction

    def alpha_bar(self, timesteps):
        """a_t at (rounded) timesteps, as numpy: the same call as the cosine schedule's."""
        index = np.clip(np.rint(np.asarray(timesteps, dtype=np.float64)).astype(int), 0, self.num_train_steps - 1)
        return self.alpha_bars[index]

    def rates(self, timesteps):
        """(signal_rate, noise_rate) tensors at integer timesteps."""
        alpha_bar = ops.take(ops.convert_to_tensor(self.alpha_bars.astype(np.float32)), ops.cast(timesteps, "int32"))
        return ops.sqrt(alpha_bar), ops.sqrt(1.0 - alpha_bar)

    def training_levels(self, batch_size, seed):
        """Random levels for a training batch: (timesteps (b,) float, whole numbers in 0..T-1, signal, noise)."""
        if self.training_power == 1.0:
            timesteps = keras.random.randint((batch_size,), 0, self.num_train_steps, seed=seed)
        else:
            u = ops.power(keras.random.uniform((batch_size,), seed=seed), self.training_power)
            timesteps = ops.minimum(ops.cast(ops.floor(u * self.num_train_steps), "int32"), self.num_train_steps - 1)
        return (ops.cast(timesteps, "float32"), *self.rates(timesteps))

    def timesteps(self, num_steps):
        """The n timesteps a sampler visits, noisiest first."""
        return timestep_spacing.timesteps(self.spacing, num_steps, self.num_train_steps, self.steps_offset)

    def plan(self, num_steps):
        """[Step(timestep, a_t, a_next)] noisiest first (``imagegen.diffusion.spacing``)."""
        return timestep_spacing.plan(self.spacing, num_steps, self.alpha_bars, self.steps_offset, self.final_alpha_bar)

    def get_config(self):
        if self.name not in ("linear", "scaled_linear"):
            raise ValueError(f"only the named schedules can be saved by name, not {self.name!r}")
        return {"name": self.name, "beta_start": self.beta_start, "beta_end": self.beta_end,
                "num_train_steps": self.num_train_steps, "training_power": self.training_power, "spacing": self.spacing,
                "steps_offset": self.steps_offset, "final_alpha_bar": self.final_alpha_bar, "clip_x0": self.clip_x0}


def get_schedule(config):
    """A schedule from a name ("cosine", "linear", "scaled_linear"), a config dict, or a schedule."""
    if isinstance(config, (CosineSchedule, DiscreteSchedule)):
        return config
    config = {"name": config} if isinstance(config, str) else dict(config)
    name = config.pop("name")
    if name == "cosine":
        return CosineSchedule(**config)
    if name in ("linear", "scaled_linear"):
        return getattr(DiscreteSchedule, name)(**config)
    raise ValueError(f"unknown schedule {name!r}; use 'cosine', 'linear' or 'scaled_linear'")


def _check_power(training_power):
    if training_power <= 0:
        raise ValueError(f"training_power must be positive, got {training_power}")


def _check_steps(num_steps):
    n = int(num_steps)
    if n != num_steps or n < 1:
        raise ValueError(f"num_steps must be a whole number of 1 or more, got {num_steps}")
    return n
