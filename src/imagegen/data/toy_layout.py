"""Where the toy world's objects stand: on the ground, in the sky, or a rider on its mount.

Two layouts, chosen by ``varied``:

- posed (``varied=False``, what the generators train on): like a studio photo. A thing
  stands in the middle of the picture at one size and faces right; a pair stands side by
  side as a centred group (the subject on the left); a flyer hovers centred over what it
  is above. Why: a model trained for 45 minutes on 2 CPU cores then spends its training
  on what things look like and how they combine, rather than on every place they might
  stand (with free layouts the mini model drew the right colours as blobs).
- varied (``varied=True``, what the judge trains on): anywhere along the ground, at
  several sizes, facing either way; so the judge reads a picture wherever a generator
  puts things.

The varied layout is the toy world as it was first drawn (version 2): with ``varied=True`` a
seed gives exactly those pictures, which the shipped judge was trained on. The posed layout
draws no random numbers for positions, so the same seed gives other scenes.
"""

from __future__ import annotations

import numpy as np

from imagegen.data.toy_sprites import SEATS, paste, sprite

WATER = ("lake", "beach")
# Posed sizes (scale per 64 pixels) and gaps, each the middle of what the varied layout draws from.
SINGLE_SCALES, POSED_SINGLE = (1.3, 1.45, 1.6, 1.75), 1.6
PAIR_SCALES, POSED_PAIR = (1.15, 1.25, 1.35), 1.25
POSED_GAP, POSED_FLYER_GAP = 2, 4


def scale_of(rng, choices, posed, size, varied):
    """A sprite scale for a ``size``-pixel picture: drawn from ``choices`` when varied, else ``posed``."""
    return size / 64 * (rng.choice(choices) if varied else posed)


def facing(rng, varied):
    """Flip the sprite? Half the time when varied; never when posed."""
    return varied and bool(rng.random() < 0.5)


def _draw_int(rng, low, high, varied):
    """An integer in [low, high]: random when varied, the middle when posed."""
    return int(rng.integers(low, max(high, low) + 1)) if varied else (low + max(high, low)) // 2


def record(name, color, left, top, image, size):
    h, w = image.shape[:2]
    box = (max(int(left), 0), max(int(top), 0), min(int(left) + w, size), min(int(top) + h, size))
    return {"name": name, "color": color, "box": box}


def ground_range(name, size, horizon, shore, place, beside_boat=False):
    """Where an object's bottom edge may sit (pixel rows)."""
    if name == "boat":
        return int(horizon + 0.55 * (shore - horizon)), shore
    if place in WATER:
        return (shore + 2, min(shore + 6, size - 1)) if beside_boat else (shore + 4, size - 1)
    return int(horizon + 0.45 * (size - horizon)), size - 1


def place_grounded(rng, canvas, things, size, horizon, shore, place, varied=False):
    """Stand one or two (name, colour, sprite) side by side on the ground (boats on the water); returns their records."""
    widths = [image.shape[1] for _, _, image in things]
    gap = int(rng.integers(1, 5)) if varied else POSED_GAP
    total = sum(widths) + gap * (len(things) - 1)
    if total < size:
        left = _draw_int(rng, 0, size - total, varied)
    else:
        left = (size - total) // 2
    order = list(range(len(things)))
    if varied and rng.random() < 0.5:
        order.reverse()
    has_boat = any(name == "boat" for name, _, _ in things)
    placed = [None] * len(things)
    for i in order:
        name, color, image = things[i]
        low, high = ground_range(name, size, horizon, shore, place, beside_boat=has_boat)
        bottom = _draw_int(rng, low, high, varied)
        placed[i] = (name, color, image, left, bottom - image.shape[0] + 1)
        left += image.shape[1] + gap
    for name, color, image, x, y in sorted(placed, key=lambda p: p[4] + p[2].shape[0]):  # farther first
        paste(canvas, image, x, y)
    return [record(name, color, x, y, image, size) for name, color, image, x, y in placed]


def place_flying(rng, canvas, thing, size, horizon, over=None, varied=False):
    """Put one (name, colour, sprite) in the sky, over ``over`` (a box) when given; returns its record in a list."""
    name, color, image = thing
    h, w = image.shape[:2]
    if over is None:
        left = _draw_int(rng, 0, max(size - w, 0), varied)
        top = _draw_int(rng, 1, max(int(horizon * 0.9) - h // 2, 2) - 1, varied)
    else:
        shift = int(rng.integers(-2, 3)) if varied else 0
        left = int(np.clip((over[0] + over[2]) / 2 + shift - w / 2, 0, size - w))
        gap = int(rng.integers(2, 7)) if varied else POSED_FLYER_GAP
        top = int(max(1, over[1] - h - gap))  # >= 2 rows of sky between
    paste(canvas, image, left, top)
    return [record(name, color, left, top, image, size)]


def place_riding(rng, canvas, rider, mount, scale, size, horizon, shore, place, color_of, look_of, varied=False):
    """A rider on a mount: the rider's hips on the mount's saddle (``SEATS``); returns [rider, mount] records.

    color_of(rng, name) and look_of(rng, name) draw the mount's colour and the rider's look.
    """
    mount_kind = "rocket_flying" if mount == "rocket" else mount
    rider_kind = rider if rider == "cat" else rider + "_sitting"
    m_color = color_of(rng, mount)
    flipped = facing(rng, varied)  # both face the same way
    m_image = sprite(mount_kind, round(float(scale), 2), m_color, None, flipped)
    r_image = sprite(rider_kind, round(float(scale), 2), None, look_of(rng, rider), flipped)
    (seat_x, seat_y), (hip_x, hip_y) = SEATS[mount_kind], SEATS[rider_kind]
    mh, mw = m_image.shape[:2]
    rh, rw = r_image.shape[:2]
    # The rider's hips on the saddle: offsets of the rider's box from the mount's box.
    dx = (seat_x - hip_x) * scale if not flipped else (mw - seat_x * scale) - (rw - hip_x * scale)
    dy = (seat_y - hip_y) * scale
    if mount == "rocket":  # a flying rocket, the rider's head below the top edge
        low = int(-dy) + 1 + mh
        bottom = _draw_int(rng, low, int(horizon * 0.95), varied)
    else:
        bottom = _draw_int(rng, *ground_range(mount, size, horizon, shore, place), varied)
    m_top = min(bottom - mh + 1, size - mh)
    left_min, left_max = max(0, int(-dx)), size - max(mw, int(dx) + rw)
    m_left = _draw_int(rng, left_min, left_max, varied)  # posed: the pair's box centred
    r_left, r_top = int(round(m_left + dx)), int(round(m_top + dy))
    paste(canvas, m_image, m_left, m_top)
    paste(canvas, r_image, r_left, r_top)
    return [record(rider, None, r_left, r_top, r_image, size), record(mount, m_color, m_left, m_top, m_image, size)]
