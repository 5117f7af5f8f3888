"""What a denoiser predicts, and the conversions between its targets: one place for the forward process.

With a = alpha_bar_t (the signal level), e ~ N(0, I) and a clean x_0:
    x_t  = sqrt(a) x_0 + sqrt(1 - a) e                 the forward process (DDPM, eq. 4)
    v    = sqrt(a) e - sqrt(1 - a) x_0                 "velocity" (Salimans & Ho 2022, sec. 4)
    e    = sqrt(1 - a) x_t + sqrt(a) v                 v -> epsilon
    x_0  = (x_t - sqrt(1 - a) e) / sqrt(a)             the clean estimate (DDIM, eq. 12)

prediction_type: "epsilon" (the network predicts e: DDPM, SD v1, our pixel-space
models by default) or "v" (SD 2.x's 768-v models and the course's text-conditioned
models). Samplers always receive e: ``to_epsilon`` converts.

``a`` is a Python float (sampling: one level for the batch) or a tensor that
broadcasts against x (training: a level per example).
"""

from __future__ import annotations

import math
import numbers

from keras import ops

PREDICTIONS = ("epsilon", "v")


def check_prediction(prediction):
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def _roots(a):
    """(sqrt(a), sqrt(1 - a)): Python floats for a scalar level, tensors otherwise."""
    if isinstance(a, numbers.Real):  # Python and numpy scalars: never multiply a tensor by an np.float64
        return math.sqrt(float(a)), math.sqrt(1.0 - float(a))
    return ops.sqrt(a), ops.sqrt(1.0 - a)


def add_noise(x0, noise, a):
    """x_t = sqrt(a) x_0 + sqrt(1 - a) e."""
    signal, noise_rate = _roots(a)
    return signal * ops.convert_to_tensor(x0, "float32") + noise_rate * ops.convert_to_tensor(noise, "float32")


def velocity(x0, noise, a):
    """v = sqrt(a) e - sqrt(1 - a) x_0 (diffusers' ``get_velocity``)."""
    signal, noise_rate = _roots(a)
    return signal * noise - noise_rate * x0


def training_target(x0, noise, a, prediction):
    """What a network of this prediction type learns to output: e, or v."""
    return noise if check_prediction(prediction) == "epsilon" else velocity(x0, noise, a)


def to_epsilon(output, x_t, a, prediction):
    """The network's output as the noise e: unchanged for epsilon, e = sqrt(1 - a) x_t + sqrt(a) v for v."""
    if prediction == "epsilon":
        return output
    signal, noise_rate = _roots(a)
    return noise_rate * ops.convert_to_tensor(x_t, "float32") + signal * output


def clean_estimate(x_t, noise, a, x0_range=None):
    """(x_0, e): x_0 = (x_t - sqrt(1 - a) e) / sqrt(a), optionally clipped.

    x0_range: (low, high) bounds, scalars or per channel. Clipping re-derives the
    noise from the clipped estimate (DDPM's "clip denoised"), so that the next
    level stays consistent with it; pixel-space models use it to keep colours
    in range, latent models never clip.
    """
    signal, noise_rate = _roots(a)
    x0 = (x_t - noise_rate * noise) / signal
    if x0_range is None:
        return x0, noise
    x0 = ops.clip(x0, x0_range[0], x0_range[1])
    return x0, (x_t - signal * x0) / noise_rate
