"""Noise schedules: how much signal and how much noise an image holds at each diffusion time.

Forward process: x_t = signal_rate(t) * x_0 + noise_rate(t) * noise, with
signal_rate^2 + noise_rate^2 = 1. Writing alpha_bar = signal_rate^2 (the DDPM
paper's cumulative product), signal_rate = sqrt(alpha_bar) and
noise_rate = sqrt(1 - alpha_bar).

Two families:
- ``CosineSchedule``: continuous time t in [0, 1], as in the keras.io DDIM
  example; the angle arccos(signal_rate) moves linearly from
  arccos(max_signal_rate) to arccos(min_signal_rate).
- ``DiscreteSchedule``: 1000 steps with a beta per step, alpha_bar_t =
  prod_{s<=t} (1 - beta_s). ``linear`` (DDPM: 1e-4 to 0.02) and
  ``scaled_linear`` (Stable Diffusion: sqrt-space linear, 0.00085 to 0.012).

Both give the model the same two things: noise levels for training
(``training_levels``) and a list of levels for sampling (``sampling_plan``).
Train and sample with the *same* schedule: mixing them is a classic bug.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops


def rates_from_alpha_bar(alpha_bar):
    """(signal_rate, noise_rate) = (sqrt(alpha_bar), sqrt(1 - alpha_bar))."""
    return ops.sqrt(alpha_bar), ops.sqrt(1.0 - alpha_bar)


def alpha_bar_from_rates(signal_rate):
    """alpha_bar = signal_rate^2."""
    return ops.square(signal_rate)


class CosineSchedule:
    """Continuous cosine schedule of the keras.io DDIM example.

    t = 0 is the least noisy level (signal rate ``max_signal_rate``), t = 1 the
    noisiest (``min_signal_rate``). The network sees t itself as its time input.
    training_power: training times are t = u ** training_power with u ~ U[0, 1].
    1 is uniform (the default, and what the course's models use); 0.5 (density
    2t) trains more on the noisiest levels, where a conditional model decides
    layout and colour, but starves the least noisy ones: notebook 05 measured
    fewer prompts followed and grainier pictures with it.
    """

    name = "cosine"

    def __init__(self, min_signal_rate=0.02, max_signal_rate=0.95, training_power=1.0):
        if not 0.0 < min_signal_rate < max_signal_rate < 1.0:
            raise ValueError(f"need 0 < min_signal_rate < max_signal_rate < 1, got {min_signal_rate}, {max_signal_rate}")
        if training_power <= 0:
            raise ValueError(f"training_power must be positive, got {training_power}")
        self.min_signal_rate, self.max_signal_rate = min_signal_rate, max_signal_rate
        self.training_power = training_power
        self.start_angle = math.acos(max_signal_rate)
        self.end_angle = math.acos(min_signal_rate)

    def rates(self, t):
        """(signal_rate, noise_rate) at continuous times t in [0, 1]."""
        angle = self.start_angle + ops.convert_to_tensor(t, "float32") * (self.end_angle - self.start_angle)
        return ops.cos(angle), ops.sin(angle)  # cos^2 + sin^2 = 1

    def alpha_bar(self, t):
        """alpha_bar(t) = signal_rate(t)^2, as numpy."""
        angle = self.start_angle + np.asarray(t, dtype=np.float64) * (self.end_angle - self.start_angle)
        return np.cos(angle) ** 2

    def training_levels(self, batch_size, seed):
        """Random levels for a training batch: (network times (b,), signal (b,), noise (b,)), t = u ** power."""
        import keras

        t = keras.random.uniform((batch_size,), seed=seed)
        if self.training_power != 1.0:
            t = ops.power(t, self.training_power)
        signal, noise = self.rates(t)
        return t, signal, noise

    def sampling_plan(self, num_steps):
        """Levels to sample with, noisiest first: (network times, alpha_bars), each (num_steps,) numpy.

        t_i = 1 - i / num_steps for i = 0..num_steps-1; the last update goes to a clean image.
        """
        _check_steps(num_steps)
        times = 1.0 - np.arange(num_steps) / num_steps
        return times.astype(np.float32), self.alpha_bar(times).astype(np.float32)

    def time_for_alpha_bar(self, alpha_bar):
        """The inverse of ``alpha_bar``: the time t whose level has this alpha_bar."""
        angle = np.arccos(np.sqrt(np.clip(alpha_bar, 0.0, 1.0)))
        return (angle - self.start_angle) / (self.end_angle - self.start_angle)

    def get_config(self):
        return {"name": self.name, "min_signal_rate": self.min_signal_rate, "max_signal_rate": self.max_signal_rate,
                "training_power": self.training_power}


class DiscreteSchedule:
    """A schedule of ``len(betas)`` discrete steps (DDPM and Stable Diffusion).

    alpha_bar[t] = prod_{s <= t} (1 - betas[s]). The network's time input for
    step t is t / 1000, which its sinusoidal embedding scales back to t,
    matching Stable Diffusion's timestep embedding.
    training_power: training steps are floor(T u ** training_power), u ~ U[0, 1)
    (1: uniform; 0.5: more of the noisiest steps, as ``CosineSchedule``).
    """

    def __init__(self, betas, name="custom", beta_start=None, beta_end=None, training_power=1.0):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 2 or np.any(betas <= 0) or np.any(betas >= 1):
            raise ValueError("betas must be a 1-D array of values in (0, 1)")
        if training_power <= 0:
            raise ValueError(f"training_power must be positive, got {training_power}")
        self.name, self.beta_start, self.beta_end = name, beta_start, beta_end
        self.training_power = training_power
        self.betas = betas
        self.alpha_bars = np.cumprod(1.0 - betas)  # alpha_bar_t = prod (1 - beta_s)
        self.num_train_steps = len(betas)

    @classmethod
    def linear(cls, beta_start=1e-4, beta_end=0.02, num_train_steps=1000, training_power=1.0):
        """DDPM's schedule: betas linear from beta_start to beta_end."""
        return cls(np.linspace(beta_start, beta_end, num_train_steps), "linear", beta_start, beta_end, training_power)

    @classmethod
    def scaled_linear(cls, beta_start=0.00085, beta_end=0.012, num_train_steps=1000, training_power=1.0):
        """Stable Diffusion's schedule: sqrt(beta) linear from sqrt(beta_start) to sqrt(beta_end)."""
        betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_steps) ** 2
        return cls(betas, "scaled_linear", beta_start, beta_end, training_power)

    @classmethod
    def from_continuous(cls, schedule, num_train_steps=1000):
        """Discretise a continuous schedule: betas chosen so alpha_bar[t] = schedule.alpha_bar((t + 1) / T)."""
        alpha_bars = schedule.alpha_bar(np.arange(1, num_train_steps + 1) / num_train_steps)
        previous = np.concatenate([[1.0], alpha_bars[:-1]])
        return cls(np.clip(1.0 - alpha_bars / previous, 1e-8, 0.999), f"discrete_{schedule.name}")

    def alpha_bar(self, time):
        """alpha_bar at a network time (timestep / 1000), as numpy: the same call as the cosine schedule's."""
        return self.alpha_bars[np.clip(np.rint(np.asarray(time, dtype=np.float64) * 1000.0).astype(int), 0, self.num_train_steps - 1)]

    def rates(self, timesteps):
        """(signal_rate, noise_rate) at integer timesteps."""
        alpha_bar = ops.take(ops.convert_to_tensor(self.alpha_bars.astype(np.float32)), ops.cast(timesteps, "int32"))
        return rates_from_alpha_bar(alpha_bar)

    def training_levels(self, batch_size, seed):
        """Random levels for a training batch: timesteps floor(T u ** power) in 0..T-1; network times = timestep / 1000."""
        import keras

        if self.training_power == 1.0:
            timesteps = keras.random.randint((batch_size,), 0, self.num_train_steps, seed=seed)
        else:
            u = ops.power(keras.random.uniform((batch_size,), seed=seed), self.training_power)
            timesteps = ops.minimum(ops.cast(ops.floor(u * self.num_train_steps), "int32"), self.num_train_steps - 1)
        signal, noise = self.rates(timesteps)
        return ops.cast(timesteps, "float32") / 1000.0, signal, noise

    def sampling_timesteps(self, num_steps):
        """KerasCV's DDIM timesteps, noisiest first: range(1, T, T // num_steps) reversed."""
        _check_steps(num_steps)
        if num_steps > self.num_train_steps:
            raise ValueError(f"num_steps must be at most {self.num_train_steps}, got {num_steps}")
        return np.arange(1, self.num_train_steps, self.num_train_steps // num_steps)[::-1]

    def sampling_plan(self, num_steps):
        """Levels to sample with, noisiest first: (network times, alpha_bars), each numpy."""
        timesteps = self.sampling_timesteps(num_steps)
        return (timesteps / 1000.0).astype(np.float32), self.alpha_bars[timesteps].astype(np.float32)

    def timestep_for_alpha_bar(self, alpha_bar):
        """The step whose alpha_bar is closest to the given one."""
        return int(np.argmin(np.abs(self.alpha_bars - alpha_bar)))

    def get_config(self):
        if self.name not in ("linear", "scaled_linear"):
            raise ValueError(f"only the named schedules can be saved by name, not {self.name!r}")
        return {"name": self.name, "beta_start": self.beta_start, "beta_end": self.beta_end, "num_train_steps": self.num_train_steps,
                "training_power": self.training_power}


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


def _check_steps(num_steps):
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be 1 or more, got {num_steps}")
