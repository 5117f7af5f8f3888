"""Moving through a latent space: interpolation and attribute vectors.

Used for VAE codes (notebook 02), diffusion noise (notebook 03) and Stable
Diffusion latents and text embeddings (the latent walks of notebook 07).

Why spherical interpolation: a code drawn from N(0, I) in d dimensions has
norm close to sqrt(d). The straight line between two such codes passes
closer to the origin (the midpoint has norm about sqrt(d / 2)), where the
model saw few codes during training. ``slerp`` follows the great circle
instead, keeping the norm, so every point along the way looks like a sample.
"""

from __future__ import annotations

import numpy as np


def lerp(start, end, t):
    """Linear interpolation: (1 - t) * start + t * end."""
    return (1.0 - t) * np.asarray(start) + t * np.asarray(end)


def slerp(start, end, t, epsilon=1e-7):
    """Spherical linear interpolation between two arrays of any (equal) shape.

    slerp(a, b, t) = sin((1 - t) * omega) / sin(omega) * a + sin(t * omega) / sin(omega) * b,
    where omega is the angle between a and b (flattened). Falls back to lerp
    when they are (anti)parallel, where the formula divides by ~0.
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    if start.shape != end.shape:
        raise ValueError(f"start and end must have the same shape, got {start.shape} and {end.shape}")
    a, b = start.ravel(), end.ravel()
    cosine = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + epsilon)
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))
    if np.sin(omega) < 1e-4:
        return lerp(start, end, t).astype(np.float32)
    mixed = (np.sin((1.0 - t) * omega) * start + np.sin(t * omega) * end) / np.sin(omega)
    return mixed.astype(np.float32)


def interpolate(start, end, num_steps, method="slerp"):
    """``num_steps`` points from start to end inclusive, stacked on a new first axis.

    method: "slerp" (spherical) or "lerp" (straight line).
    """
    if method not in ("slerp", "lerp"):
        raise ValueError(f"method must be 'slerp' or 'lerp', got {method!r}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2 to include both ends, got {num_steps}")
    function = slerp if method == "slerp" else lerp
    return np.stack([function(start, end, t) for t in np.linspace(0.0, 1.0, num_steps)]).astype(np.float32)


def circular_walk(start, end, num_steps):
    """A closed loop through two codes: x(angle) = cos(angle) * start + sin(angle) * end.

    With start and end independent N(0, I) draws, every point is again an
    N(0, I) draw (cos^2 + sin^2 = 1 keeps the variance), so the whole loop
    looks like samples. Returns (num_steps, *shape); the loop ends where it began.
    """
    angles = np.linspace(0.0, 2.0 * np.pi, num_steps, endpoint=False)
    start, end = np.asarray(start), np.asarray(end)
    return np.stack([np.cos(angle) * start + np.sin(angle) * end for angle in angles]).astype(np.float32)


def attribute_vector(codes, labels, from_label, to_label):
    """The direction from one class to another: mean code of ``to_label`` minus mean code of ``from_label``.

    codes: (n, latent_dim); labels: (n,). Adding the vector to a code of
    ``from_label`` moves it towards ``to_label`` ("latent arithmetic").
    """
    codes, labels = np.asarray(codes), np.asarray(labels)
    for label in (from_label, to_label):
        if not np.any(labels == label):
            raise ValueError(f"no codes with label {label!r}")
    return codes[labels == to_label].mean(axis=0) - codes[labels == from_label].mean(axis=0)


def grid_2d(num_per_side, extent=0.95):
    """Codes on a square grid over a 2-D N(0, I) prior, spaced by probability, not distance.

    Coordinates are the standard normal quantiles of evenly spaced probabilities
    in [1 - extent, extent], so the grid covers the prior's mass evenly (as in
    the VAE paper's manifold figures). Returns (num_per_side**2, 2), row by row
    from the top (high z[1]) down.
    """
    from scipy.stats import norm

    values = norm.ppf(np.linspace(1.0 - extent, extent, num_per_side))
    return np.array([[x, y] for y in values[::-1] for x in values], dtype=np.float32)
