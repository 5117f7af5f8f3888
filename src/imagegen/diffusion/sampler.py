"""The DDIM sampler: turn noise into an image in a few denoising steps, and back.

A denoiser predicts the noise in x_t. From it we estimate the clean image and
step to a less noisy level (Song et al., 2021, eq. 12):

    x0_hat  = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)
    sigma   = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)
    x_prev  = sqrt(a_prev) * x0_hat + sqrt(1 - a_prev - sigma^2) * eps + sigma * z,   z ~ N(0, I)

where a = alpha_bar. eta = 0 is deterministic (DDIM); eta = 1 adds the
DDPM posterior's noise. Because the eta = 0 update is a discretised ODE, it can
be run backwards: DDIM *inversion* maps an image to the noise that generates it.

The functions take any ``denoise(x, time) -> predicted noise`` callable and a
plan of levels (network times and alpha_bars, noisiest first), so they serve
our DDIM, the text-conditional model and Stable Diffusion alike.
"""

from __future__ import annotations

import keras
from keras import ops


def classifier_free_guidance(noise_conditional, noise_unconditional, guidance_scale):
    """Push the prediction away from the unconditional one (Ho & Salimans, 2022).

    eps = eps_uncond + s * (eps_cond - eps_uncond)
    s = 1 is the conditional prediction; s > 1 follows the prompt harder (SD uses 7.5).
    With a negative prompt, its prediction takes the place of eps_uncond, so the
    sample is pushed away from what the negative prompt describes.
    """
    return noise_unconditional + guidance_scale * (noise_conditional - noise_unconditional)


def ddim_step(x_t, predicted_noise, alpha_bar_t, alpha_bar_prev, eta=0.0, noise=None, x0_range=None):
    """One DDIM update from level a_t to the less noisy a_prev. Returns (x_prev, x0_hat).

    x0_range: optional (low, high) bounds (scalars or per-channel arrays) for the
    clean-image estimate. Pixel-space models clip it to the valid pixel range
    and re-derive the noise from the clipped estimate (DDPM's "clip denoised"),
    which stops colours drifting out of range in early or short training.
    """
    x0_hat = (x_t - ops.sqrt(1.0 - alpha_bar_t) * predicted_noise) / ops.sqrt(alpha_bar_t)
    if x0_range is not None:
        x0_hat = ops.clip(x0_hat, x0_range[0], x0_range[1])
        predicted_noise = (x_t - ops.sqrt(alpha_bar_t) * x0_hat) / ops.sqrt(1.0 - alpha_bar_t)
    sigma = eta * ops.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)) * ops.sqrt(1.0 - alpha_bar_t / alpha_bar_prev)
    direction = ops.sqrt(ops.maximum(1.0 - alpha_bar_prev - ops.square(sigma), 0.0)) * predicted_noise
    x_prev = ops.sqrt(alpha_bar_prev) * x0_hat + direction
    if noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev, x0_hat


def ddim_sample(denoise, initial_noise, times, alpha_bars, eta=0.0, seed=None, final_alpha_bar=1.0, on_step=None, x0_range=None):
    """Run DDIM from ``initial_noise`` through the plan; returns the final (clean) sample.

    denoise: callable (x, time float) -> predicted noise, same shape as x.
    initial_noise: x at the first (noisiest) level, e.g. N(0, I) noise.
    times, alpha_bars: the plan, noisiest first (see a schedule's ``sampling_plan``).
    eta: 0 deterministic, 1 DDPM-like.
    seed: seeds the extra noise when eta > 0.
    final_alpha_bar: the level after the last step (1.0 = clean image).
    on_step: optional callback (step index, x_prev, x0_hat) for trajectories and progress.
    x0_range: optional (low, high) clip for the clean-image estimate (see ``ddim_step``).
    """
    if len(times) != len(alpha_bars) or len(times) == 0:
        raise ValueError("times and alpha_bars must be non-empty and of equal length")
    seed_generator = keras.random.SeedGenerator(seed) if eta > 0 else None
    x = ops.convert_to_tensor(initial_noise, "float32")
    for index, (time, alpha_bar) in enumerate(zip(times, alpha_bars)):
        alpha_bar_prev = alpha_bars[index + 1] if index + 1 < len(alpha_bars) else final_alpha_bar
        predicted_noise = denoise(x, float(time))
        extra = keras.random.normal(ops.shape(x), seed=seed_generator) if eta > 0 else None
        x, x0_hat = ddim_step(x, predicted_noise, float(alpha_bar), float(alpha_bar_prev), eta, extra, x0_range)
        if on_step is not None:
            on_step(index, x, x0_hat)
    return x


def ddim_invert(denoise, images, times, alpha_bars, refine_steps=0):
    """DDIM inversion: the deterministic (eta = 0) path run backwards, from images to noise.

    images: x at the cleanest level, in the model's pixel space.
    times, alpha_bars: the same plan as for sampling (noisiest first); inversion
        walks it from the cleanest level up.
    refine_steps: fixed-point iterations per step. Plain DDIM inversion (0)
        predicts the noise at the current level, while sampling will predict it
        at the next one; each iteration re-predicts it there, solving the
        implicit step so that sampling the result returns the images exactly
        (up to the network's consistency). 2 or 3 are usually enough.
    """
    times, alpha_bars = list(times)[::-1], list(alpha_bars)[::-1]
    x = ops.convert_to_tensor(images, "float32")
    previous_alpha_bar, previous_time = 1.0, times[0]  # a clean image; its noise is read at the cleanest time
    for time, alpha_bar in zip(times, alpha_bars):
        predicted_noise = denoise(x, float(previous_time))
        x_next = _step_up(x, predicted_noise, previous_alpha_bar, float(alpha_bar))
        for _ in range(refine_steps):
            x_next = _step_up(x, denoise(x_next, float(time)), previous_alpha_bar, float(alpha_bar))
        x, previous_alpha_bar, previous_time = x_next, float(alpha_bar), time
    return x


def _step_up(x, predicted_noise, alpha_bar, alpha_bar_next):
    """The eta = 0 update solved for the noisier level: the exact inverse of ``ddim_step`` for a given noise."""
    # x0 = (x - sqrt(1 - a) eps) / sqrt(a);  x_next = sqrt(a_next) x0 + sqrt(1 - a_next) eps
    x0_hat = (x - ops.sqrt(1.0 - alpha_bar) * predicted_noise) / ops.sqrt(alpha_bar)
    return ops.sqrt(alpha_bar_next) * x0_hat + ops.sqrt(1.0 - alpha_bar_next) * predicted_noise
