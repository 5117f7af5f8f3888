"""The toy world's places: a field, a lake, a beach and the moon, each in a few fixed looks.

Why fixed looks: a scene set pastes objects onto a background, and drawing the sky,
the sun, clouds, hills or moon craters anew for every image would cost more than
everything else. Why no fine texture (stars, grass stripes, ripples): a small model
spends its capacity on whatever the pictures hold, and a place is recognised by its
large areas of colour; the capacity is better spent on the objects. ``background`` draws
each (place, size, variant) once and caches it; ``toy_world`` jitters its brightness per image.

Rows matter to the scenes: objects stand below the ``horizon``; at a lake or a beach,
boats float between the horizon and the ``shore``, and everything else stands below it.
"""

from __future__ import annotations

import functools

import numpy as np

PLACES = ("field", "lake", "beach", "moon")

VARIANTS = 16  # fixed looks per place; a scene picks one and jitters its brightness


@functools.lru_cache(maxsize=64)
def background(place, size, variant):
    """(image float32 (size, size, 3), horizon row, shore row) for one of ``VARIANTS`` fixed looks of a place."""
    rng = np.random.default_rng(1000 * PLACES.index(place) + variant)
    y = (np.arange(size, dtype=np.float32)[:, None] + 0.5) / size
    x = (np.arange(size, dtype=np.float32)[None, :] + 0.5) / size
    image = np.zeros((size, size, 3), np.float32)
    horizon = int(size * rng.uniform(0.42, 0.52))
    shore = int(size * (rng.uniform(0.70, 0.76) if place == "lake" else rng.uniform(0.62, 0.67)))
    if place == "moon":
        image[:] = (0.02, 0.02, 0.06)
        ground = y >= horizon / size
        grey = 0.55 + 0.08 * rng.random()
        image[np.broadcast_to(ground, (size, size))] = (grey, grey, grey * 1.02)
        for _ in range(3):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(horizon / size + 0.08, 0.98), rng.uniform(0.05, 0.09)
            crater = ((x - cx) / r) ** 2 + ((y - cy) / (0.4 * r)) ** 2 <= 1
            image[crater] = grey * 0.72
        if rng.random() < 0.5:  # the Earth in the sky
            cx, cy = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.25)
            image[(x - cx) ** 2 + (y - cy) ** 2 <= 0.06 ** 2] = (0.25, 0.45, 0.90)
        return image, horizon, size
    sky_top, sky_low = np.array((0.35, 0.60, 0.92)), np.array((0.70, 0.85, 0.98))
    t = np.clip(y / (horizon / size), 0, 1)[..., None]
    image[:] = sky_top * (1 - t) + sky_low * t
    if rng.random() < 0.6:  # the sun
        cx, cy = rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.25)
        image[(x - cx) ** 2 + (y - cy) ** 2 <= 0.055 ** 2] = (1.0, 0.92, 0.35)
    for _ in range(int(rng.integers(0, 3))):  # clouds
        cx, cy = rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        image[((x - cx) / 0.11) ** 2 + ((y - cy) / 0.035) ** 2 <= 1] = (0.97, 0.97, 0.99)
    below = np.broadcast_to(y >= horizon / size, (size, size))
    grass = np.array((0.35, 0.68, 0.25)) * rng.uniform(0.9, 1.1)
    if place == "field":
        image[below] = grass
        return image, horizon, size
    water = np.array((0.20, 0.45, 0.80)) * rng.uniform(0.9, 1.1)
    land = grass if place == "lake" else np.array((0.93, 0.84, 0.60)) * rng.uniform(0.95, 1.05)
    image[below] = water
    if place == "lake":  # far hills across the water
        hills = (y < horizon / size) & (y > horizon / size - 0.06 - 0.04 * np.sin(x * 9 + rng.uniform(0, 6)))
        image[hills] = (0.25, 0.50, 0.25)
    image[np.broadcast_to(y >= shore / size, (size, size))] = land
    return np.clip(image, 0, 1).astype(np.float32), horizon, shore
