"""Samplers for Stable Diffusion's 1000-step scaled-linear schedule: DDIM and DPM-Solver++(2M).

Both walk a list of timesteps from noisy to clean. At each one the UNet predicts
the noise e in x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) e (a_t = alpha_bar_t), which
gives the clean estimate x0 = (x_t - sqrt(1 - a_t) e) / sqrt(a_t). They differ
in how they move to the next level:

- DDIM (eta = 0), exactly as KerasCV samples: timesteps round(i * 999 / (n - 1)),
  x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) e, and the last step lands on x0
  (a_prev = 1). Good at 50 steps.
- DPM-Solver++(2M) (Lu et al., 2022): a second-order multistep solver of the
  diffusion ODE in log-SNR time lambda = log(alpha / sigma). With h = lambda_next - lambda,
      x_next = (sigma_next / sigma) x - alpha_next (exp(-h) - 1) D,
  where D = x0 on the first step and, later, D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev
  with r = h_prev / h. Good at 20 to 25 steps.

A scheduler is stateless: ``plan(num_steps)`` lists the steps, and ``step``
takes the previous clean estimate explicitly, so a loop stays easy to read.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from imagegen.diffusion.schedules import DiscreteSchedule

NUM_TRAIN_STEPS = 1000


def alphas_cumprod():
    """SD v1's alpha_bar_t for t = 0..999: betas sqrt-linear from 0.00085 to 0.012."""
    return DiscreteSchedule.scaled_linear(0.00085, 0.012, NUM_TRAIN_STEPS).alpha_bars


def keras_cv_timesteps(num_steps):
    """KerasCV's DDIM timesteps, increasing: round(i * 999 / (n - 1)) for i = 0..n-1 ([0] for n = 1)."""
    if int(num_steps) < 1 or num_steps > NUM_TRAIN_STEPS:
        raise ValueError(f"num_steps must be between 1 and {NUM_TRAIN_STEPS}, got {num_steps}")
    ratio = (NUM_TRAIN_STEPS - 1) / (num_steps - 1) if num_steps > 1 else NUM_TRAIN_STEPS
    return (np.arange(num_steps) * ratio).round().astype(np.int64)


class DDIM:
    """Deterministic DDIM, step for step what KerasCV's ``generate_image`` does."""

    name = "ddim"
    order = 1

    def __init__(self):
        self.alpha_bars = alphas_cumprod()

    def plan(self, num_steps):
        """[(timestep, a_t, a_next)] noisiest first; a_next = 1 on the last step (a clean image)."""
        timesteps = keras_cv_timesteps(num_steps)
        alphas = [float(self.alpha_bars[t]) for t in timesteps]
        nexts = [1.0] + alphas[:-1]
        return [(int(timesteps[i]), alphas[i], nexts[i]) for i in reversed(range(num_steps))]

    def step(self, x, noise, a_t, a_next, previous_x0=None):
        """One update; returns (x_next, x0) with x0 = (x - sqrt(1 - a_t) e) / sqrt(a_t)."""
        x0 = (x - np.sqrt(1.0 - a_t) * noise) / np.sqrt(a_t)
        return np.sqrt(a_next) * x0 + np.sqrt(1.0 - a_next) * noise, x0


class DPMSolverPlusPlus(DDIM):
    """DPM-Solver++(2M): second order from the second step on, first order into the clean image.

    It walks DDIM's plan (noisiest 999 down to 0, then a final step to a_next = 1); only ``step`` differs.
    """

    name = "dpm++2m"
    order = 2

    def step(self, x, noise, a_t, a_next, previous=None):
        """One update. ``previous`` is (x0, h) from the last step or None; returns (x_next, (x0, h))."""
        alpha, sigma = np.sqrt(a_t), np.sqrt(1.0 - a_t)
        x0 = (x - sigma * noise) / alpha
        if a_next >= 1.0:  # sigma_next = 0: the solution is the clean estimate itself
            return x0, (x0, None)
        alpha_next, sigma_next = np.sqrt(a_next), np.sqrt(1.0 - a_next)
        h = np.log(alpha_next / sigma_next) - np.log(alpha / sigma)  # lambda_next - lambda
        data = x0
        if previous is not None and previous[1] is not None:
            previous_x0, previous_h = previous
            r = previous_h / h
            data = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * previous_x0
        x_next = (sigma_next / sigma) * x - alpha_next * np.expm1(-h) * data
        return x_next, (x0, h)


SCHEDULERS = {"ddim": DDIM, "dpm++2m": DPMSolverPlusPlus}


def get_scheduler(scheduler):
    """A scheduler from its name ("ddim", "dpm++2m") or the scheduler itself."""
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        return SCHEDULERS[scheduler]()
    if not (hasattr(scheduler, "plan") and hasattr(scheduler, "step")):
        raise TypeError(f"a scheduler needs plan() and step(); got {type(scheduler).__name__}")
    return scheduler


def add_noise(latents, noise, a_t):
    """The forward process at one level: sqrt(a_t) x_0 + sqrt(1 - a_t) e."""
    return np.sqrt(a_t) * ops.convert_to_tensor(latents) + np.sqrt(1.0 - a_t) * ops.convert_to_tensor(noise)
