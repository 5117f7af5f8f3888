"""Samplers for Stable Diffusion's 1000-step schedule: which noise levels to visit, and how to step between them.

At each level the UNet predicts the noise e in x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) e
(a_t = alpha_bar_t), which gives the clean estimate x0 = (x_t - sqrt(1 - a_t) e) / sqrt(a_t).

*Where* to step is a ``SamplingSchedule``: the training betas and a timestep
spacing. Each source of weights brings its own, because the same weights
sampled on another plan give (slightly) other pictures:
- ``SamplingSchedule.keras_cv()``: KerasCV's plan, timesteps round(i * 999 / (n - 1)),
  each step moving to the next listed level and the last one to a_next = 1.
- ``SamplingSchedule.from_diffusers(config)``: a diffusers ``scheduler_config.json``
  (SD 1.5: "leading" timesteps (0, 20, ..., 980) + 1 for 50 steps; a step from t
  moves to t - 1000 // n; the last one to alpha_bar_0, not 1).

*How* to step is the sampler:
- DDIM (eta = 0): x_next = sqrt(a_next) x0 + sqrt(1 - a_next) e. Good at 50 steps.
- DPM-Solver++(2M) (Lu et al., 2022): a second-order multistep solver of the
  diffusion ODE in log-SNR time lambda = log(alpha / sigma). With h = lambda_next - lambda,
      x_next = (sigma_next / sigma) x - alpha_next (exp(-h) - 1) D,
  where D = x0 on the first step and, later, D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev
  with r = h_prev / h. Good at 20 to 25 steps.

A scheduler is stateless: ``plan(num_steps)`` lists the steps, and ``step``
takes the previous clean estimate explicitly, so a loop stays easy to read.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from imagegen.diffusion.schedules import DiscreteSchedule

NUM_TRAIN_STEPS = 1000
SPACINGS = ("keras_cv", "linspace", "leading", "trailing")

# SD 1.5's scheduler_config.json, the schedule its single-file checkpoints were published with.
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
                      prediction_type="epsilon")


def alphas_cumprod():
    """SD v1's alpha_bar_t for t = 0..999: betas sqrt-linear from 0.00085 to 0.012."""
    return DiscreteSchedule.scaled_linear(0.00085, 0.012, NUM_TRAIN_STEPS).alpha_bars


def keras_cv_timesteps(num_steps):
    """KerasCV's DDIM timesteps, increasing: round(i * 999 / (n - 1)) for i = 0..n-1 ([0] for n = 1)."""
    if int(num_steps) < 1 or num_steps > NUM_TRAIN_STEPS:
        raise ValueError(f"num_steps must be between 1 and {NUM_TRAIN_STEPS}, got {num_steps}")
    ratio = (NUM_TRAIN_STEPS - 1) / (num_steps - 1) if num_steps > 1 else NUM_TRAIN_STEPS
    return (np.arange(num_steps) * ratio).round().astype(np.int64)


def _cosine_betas(num_train_steps):
    """Improved DDPM's cosine schedule ("squaredcos_cap_v2"): alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2."""
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    return np.array([min(1 - f((i + 1) / num_train_steps) / f(i / num_train_steps), 0.999) for i in range(num_train_steps)])


class SamplingSchedule:
    """The levels a sampler visits: the training schedule's alpha_bar_t and a timestep spacing.

    beta_schedule: "scaled_linear" (SD: sqrt(beta) linear from beta_start to beta_end),
        "linear", "squaredcos_cap_v2", or explicit ``trained_betas``.
    spacing: "keras_cv" (KerasCV's plan), or diffusers' "linspace", "leading", "trailing".
    steps_offset: added to "leading" timesteps (SD 1.5: 1).
    final_alpha_bar: where the last step lands (1: a clean image; SD 1.5: alpha_bar_0).
    clip_x0: clip the clean estimate to [-clip_x0, clip_x0] (diffusers' clip_sample; pixel-space models).
    """

    def __init__(self, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 num_train_steps=NUM_TRAIN_STEPS, spacing="keras_cv", steps_offset=0, final_alpha_bar=1.0,
                 clip_x0=None, trained_betas=None):
        if spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
        if trained_betas is not None:
            betas = np.asarray(trained_betas, dtype=np.float64)
        elif beta_schedule == "scaled_linear":
            betas = DiscreteSchedule.scaled_linear(beta_start, beta_end, num_train_steps).betas
        elif beta_schedule == "linear":
            betas = DiscreteSchedule.linear(beta_start, beta_end, num_train_steps).betas
        elif beta_schedule == "squaredcos_cap_v2":
            betas = _cosine_betas(num_train_steps)
        else:
            raise ValueError(f"unknown beta_schedule {beta_schedule!r}; choose scaled_linear, linear or squaredcos_cap_v2")
        self.alpha_bars = np.cumprod(1.0 - betas)  # alpha_bar_t = prod_{s <= t} (1 - beta_s)
        self.num_train_steps, self.spacing, self.steps_offset = len(betas), spacing, int(steps_offset)
        self.final_alpha_bar = float(self.alpha_bars[0] if final_alpha_bar is None else final_alpha_bar)
        self.clip_x0 = clip_x0

    @classmethod
    def keras_cv(cls):
        """KerasCV's (and the course's presets'): SD's betas, round(i * 999 / (n - 1)), ending on a clean image."""
        return cls()

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
        schedule = cls(config.get("beta_start", 0.0001), config.get("beta_end", 0.02), config.get("beta_schedule", "linear"),
                       config.get("num_train_timesteps", NUM_TRAIN_STEPS), config.get("timestep_spacing", "leading"),
                       config.get("steps_offset", 0), 1.0 if config.get("set_alpha_to_one", True) else None,
                       config.get("clip_sample_range", 1.0) if config.get("clip_sample", False) else None,
                       config.get("trained_betas"))
        return schedule, prediction

    def timesteps(self, num_steps):
        """The n timesteps visited, noisiest first."""
        n, total = int(num_steps), self.num_train_steps
        if n != num_steps or not 1 <= n <= total:
            raise ValueError(f"num_steps must be a whole number between 1 and {total}, got {num_steps}")
        if self.spacing == "keras_cv":
            if total == NUM_TRAIN_STEPS:
                return keras_cv_timesteps(n)[::-1]
        if self.spacing in ("keras_cv", "linspace"):  # (the same timesteps; the next level differs, see plan)
            return np.linspace(0, total - 1, n).round()[::-1].astype(np.int64)
        if self.spacing == "leading":  # 0, T//n, 2T//n, ... + offset
            return (np.arange(n) * (total // n))[::-1].astype(np.int64) + self.steps_offset
        return np.round(np.arange(total, 0, -total / n)).astype(np.int64) - 1  # trailing: T-1, T-1-T/n, ...

    def plan(self, num_steps):
        """[(timestep, a_t, a_next)] noisiest first.

        KerasCV: a_next is the next listed level, 1 after the last. diffusers' DDIM:
        a_next = alpha_bar[t - T // n], or final_alpha_bar once that is below 0.
        """
        timesteps = [int(t) for t in self.timesteps(num_steps)]
        alphas = [float(self.alpha_bars[t]) for t in timesteps]
        if self.spacing == "keras_cv":
            nexts = alphas[1:] + [self.final_alpha_bar]
        else:
            jump = self.num_train_steps // int(num_steps)
            nexts = [float(self.alpha_bars[t - jump]) if t - jump >= 0 else self.final_alpha_bar for t in timesteps]
        return list(zip(timesteps, alphas, nexts))

    def clean_estimate(self, x, noise, a_t):
        """x0 = (x - sqrt(1 - a_t) e) / sqrt(a_t), clipped if the schedule says so."""
        x0 = (x - float(np.sqrt(1.0 - a_t)) * noise) / float(np.sqrt(a_t))
        return x0 if self.clip_x0 is None else ops.clip(x0, -self.clip_x0, self.clip_x0)


class DDIM:
    """Deterministic DDIM; on ``SamplingSchedule.keras_cv()`` (the default), step for step KerasCV's ``generate_image``."""

    name = "ddim"

    def __init__(self, schedule=None):
        self.schedule = schedule or SamplingSchedule.keras_cv()
        self.alpha_bars = self.schedule.alpha_bars

    def plan(self, num_steps):
        """[(timestep, a_t, a_next)] noisiest first (see ``SamplingSchedule.plan``)."""
        return self.schedule.plan(num_steps)

    def step(self, x, noise, a_t, a_next, previous_x0=None):
        """One update; returns (x_next, x0): x_next = sqrt(a_next) x0 + sqrt(1 - a_next) e."""
        x0 = self.schedule.clean_estimate(x, noise, a_t)
        return float(np.sqrt(a_next)) * x0 + float(np.sqrt(1.0 - a_next)) * noise, x0


class DPMSolverPlusPlus(DDIM):
    """DPM-Solver++(2M): second order from the second step on, first order into the clean image.

    It walks the same plan as DDIM; only ``step`` differs.
    """

    name = "dpm++2m"

    def step(self, x, noise, a_t, a_next, previous=None):
        """One update. ``previous`` is (x0, h) from the last step or None; returns (x_next, (x0, h))."""
        alpha, sigma = np.sqrt(a_t), np.sqrt(1.0 - a_t)
        x0 = self.schedule.clean_estimate(x, noise, a_t)
        if a_next >= 1.0:  # sigma_next = 0: the solution is the clean estimate itself
            return x0, (x0, None)
        alpha_next, sigma_next = np.sqrt(a_next), np.sqrt(1.0 - a_next)
        h = np.log(alpha_next / sigma_next) - np.log(alpha / sigma)  # lambda_next - lambda
        data = x0
        if previous is not None and previous[1] is not None:
            previous_x0, previous_h = previous
            r = previous_h / h
            data = float(1.0 + 1.0 / (2.0 * r)) * x0 - float(1.0 / (2.0 * r)) * previous_x0
        x_next = float(sigma_next / sigma) * x - float(alpha_next * np.expm1(-h)) * data
        return x_next, (x0, h)


SCHEDULERS = {"ddim": DDIM, "dpm++2m": DPMSolverPlusPlus}


def get_scheduler(scheduler, schedule=None):
    """A scheduler from its name ("ddim", "dpm++2m") on ``schedule`` (default KerasCV's), or the scheduler itself."""
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        return SCHEDULERS[scheduler](schedule)
    if not (hasattr(scheduler, "plan") and hasattr(scheduler, "step")):
        raise TypeError(f"a scheduler needs plan() and step(); got {type(scheduler).__name__}")
    if schedule is not None:
        raise ValueError("pass a scheduler by name together with a schedule, or a ready scheduler alone")
    return scheduler


def add_noise(latents, noise, a_t):
    """The forward process at one level: sqrt(a_t) x_0 + sqrt(1 - a_t) e."""
    return float(np.sqrt(a_t)) * ops.convert_to_tensor(latents) + float(np.sqrt(1.0 - a_t)) * ops.convert_to_tensor(noise)
