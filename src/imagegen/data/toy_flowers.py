"""Toy flowers: a procedural, captioned flower data set that ships with the course.

Why: the diffusion, CLIP and text-conditioning notebooks need captioned images
offline, on two CPU cores, in minutes. Each image here is one flower drawn in
polar coordinates, with a caption that states exactly what is drawn ("a red
flower with five petals"). Because the attributes are known, later notebooks
can *measure* whether a generated image follows its prompt.

What varies from image to image:
- petal colour: one of ``COLORS`` (the attribute the captions name);
- petal count: 3 to 8 (the other named attribute);
- size, position and rotation of the flower;
- petal shape (round to slim), shading and a darker midrib;
- centre colour and size;
- background colour (muted, darker than the petals) and its vertical gradient.

Everything is vectorised numpy over a chunk of images at once, so 10,000
images at 64x64 take a couple of seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
# A colour no training set uses: notebook 07 teaches it to the mini model by textual inversion.
UNSEEN_COLORS = ("cyan",)
PETAL_COUNTS = (3, 4, 5, 6, 7, 8)
NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}

# The first template is the canonical prompt the later notebooks score against.
CAPTION_TEMPLATES = (
    "a {color} flower with {number} petals",
    "a photo of a {color} flower with {number} petals",
    "a {color} flower that has {number} petals",
    "a picture of a {number}-petaled {color} flower",
    "{number} {color} petals around the centre of a flower",
)

# Petal colours as HSV ranges (hue, saturation, value), each (low, high).
# Hues are in turns (0..1); red wraps around 0. Ranges are kept apart so that
# every colour stays nameable after jitter: pink is a pale, bright red-magenta,
# white has almost no saturation.
_PETAL_HSV = {
    "red": ((-0.02, 0.02), (0.75, 1.00), (0.75, 0.95)),
    "orange": ((0.065, 0.095), (0.85, 1.00), (0.90, 1.00)),
    "yellow": ((0.14, 0.17), (0.75, 1.00), (0.90, 1.00)),
    "green": ((0.28, 0.38), (0.65, 0.95), (0.60, 0.90)),
    "blue": ((0.58, 0.65), (0.70, 1.00), (0.75, 1.00)),
    "purple": ((0.75, 0.80), (0.55, 0.85), (0.55, 0.85)),
    "pink": ((0.90, 0.97), (0.30, 0.50), (0.95, 1.00)),
    "white": ((0.00, 1.00), (0.00, 0.06), (0.93, 1.00)),
    "cyan": ((0.49, 0.52), (0.75, 1.00), (0.80, 1.00)),  # unseen: between green and blue
}

# Flower centres: dark brown, gold, near black, orange-brown, cream.
_CENTRE_HSV = np.array(
    [[0.07, 0.75, 0.30], [0.13, 0.90, 0.95], [0.00, 0.00, 0.10], [0.06, 0.85, 0.65], [0.12, 0.15, 0.95]],
    dtype=np.float32,
)

_CHUNK = 256  # images rendered at once; bounds memory to a few MB per array


@dataclasses.dataclass
class ToyFlowers:
    """A captioned toy-flower set.

    images: float32 (n, size, size, 3) in [0, 1].
    captions: n strings, each naming the image's colour and petal count.
    colors: n colour names from ``COLORS``.
    petals: int32 (n,), petal counts in 3..8.
    """

    images: np.ndarray
    captions: list
    colors: list
    petals: np.ndarray

    def __len__(self):
        return len(self.images)

    @property
    def color_ids(self):
        """int32 (n,): index of each image's colour in ``COLORS``."""
        return np.array([COLORS.index(color) for color in self.colors], dtype=np.int32)

    def __getitem__(self, index):
        """A subset, e.g. ``flowers[:100]`` or ``flowers[mask]``."""
        positions = np.arange(len(self))[index]
        positions = np.atleast_1d(positions)
        return ToyFlowers(
            images=self.images[positions],
            captions=[self.captions[i] for i in positions],
            colors=[self.colors[i] for i in positions],
            petals=self.petals[positions],
        )


def toy_flower_caption(color, petals, template=0):
    """The caption for a flower: ``toy_flower_caption("red", 5)`` is "a red flower with five petals".

    template: index into ``CAPTION_TEMPLATES``; 0 is the canonical prompt.
    """
    if color not in COLORS + UNSEEN_COLORS:
        raise ValueError(f"unknown colour {color!r}; choose one of {', '.join(COLORS + UNSEEN_COLORS)}")
    if int(petals) not in NUMBER_WORDS:
        raise ValueError(f"petals must be an integer from 3 to 8, got {petals!r}")
    if not 0 <= template < len(CAPTION_TEMPLATES):
        raise ValueError(f"template must be in 0..{len(CAPTION_TEMPLATES) - 1}, got {template}")
    return CAPTION_TEMPLATES[template].format(color=color, number=NUMBER_WORDS[int(petals)])


def canonical_prompts():
    """Every canonical prompt, as (prompt, colour, petals) triples: 8 colours x 6 counts."""
    return [(toy_flower_caption(c, n), c, n) for c in COLORS for n in PETAL_COUNTS]


def toy_flowers(num_images, image_size=64, seed=0, canonical_fraction=0.5, colors=COLORS, petal_counts=PETAL_COUNTS):
    """Render ``num_images`` captioned toy flowers, deterministically for a seed.

    num_images: how many images.
    image_size: side in pixels (16 or more); shapes scale with it.
    seed: the same seed always gives the same images and captions.
    canonical_fraction: share of captions using the canonical template; the
        rest use a random paraphrase so a text encoder sees varied wording.
    colors, petal_counts: restrict the attributes (e.g. to hold some out).

    Returns a ``ToyFlowers`` with images float32 (n, size, size, 3) in [0, 1].
    """
    num_images = int(num_images)
    if num_images < 0:
        raise ValueError(f"num_images must be 0 or more, got {num_images}")
    if int(image_size) < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    unknown = [c for c in colors if c not in COLORS + UNSEEN_COLORS]
    if unknown or not colors:
        raise ValueError(f"colors must be a non-empty subset of {COLORS + UNSEEN_COLORS}, got {colors}")
    if not petal_counts or any(int(n) not in NUMBER_WORDS for n in petal_counts):
        raise ValueError(f"petal_counts must be a non-empty subset of {PETAL_COUNTS}, got {petal_counts}")

    rng = np.random.default_rng(seed)
    color_names = [colors[i] for i in rng.integers(0, len(colors), num_images)]
    petals = np.asarray(petal_counts, dtype=np.int32)[rng.integers(0, len(petal_counts), num_images)]
    templates = np.where(
        rng.random(num_images) < canonical_fraction, 0, rng.integers(1, len(CAPTION_TEMPLATES), num_images)
    )
    captions = [toy_flower_caption(c, n, t) for c, n, t in zip(color_names, petals, templates)]

    images = np.empty((num_images, image_size, image_size, 3), dtype=np.float32)
    for start in range(0, num_images, _CHUNK):
        stop = min(start + _CHUNK, num_images)
        # One generator per chunk keeps results independent of how chunks are split.
        chunk_rng = np.random.default_rng([seed, start])
        images[start:stop] = _render(chunk_rng, color_names[start:stop], petals[start:stop], image_size)
    return ToyFlowers(images=images, captions=captions, colors=color_names, petals=petals)


def _render(rng, color_names, petals, size):
    """Draw a chunk of flowers. Returns float32 (n, size, size, 3) in [0, 1]."""
    n = len(color_names)
    scale = size / 64.0  # pixel-sized details (anti-aliasing, midrib) scale with the image
    col = lambda values: np.asarray(values, dtype=np.float32).reshape(n, 1, 1)  # noqa: E731

    # Flower geometry, per image.
    centre_x = col(size / 2 + rng.uniform(-0.12, 0.12, n) * size)
    centre_y = col(size / 2 + rng.uniform(-0.12, 0.12, n) * size)
    radius = col(rng.uniform(0.28, 0.44, n) * size)
    rotation = col(rng.uniform(0, 2 * np.pi, n))
    sharpness = col(rng.uniform(0.6, 2.0, n))  # petal profile exponent: low = round, high = slim
    centre_radius = radius * col(rng.uniform(0.14, 0.24, n))
    count = col(petals)

    # Polar coordinates of every pixel centre around each flower's centre.
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - centre_x
    dy = grid[None, :, None] - centre_y
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)

    # Angle from the nearest petal's axis: delta in [-pi/n, pi/n].
    sector = 2 * np.pi / count
    delta = np.mod(theta - rotation + sector / 2, sector) - sector / 2
    # Petal edge radius: R * cos(n * delta / 2) ** p, so n lobes with gaps between them.
    edge = radius * np.maximum(np.cos(count * delta / 2), 0.0) ** sharpness
    antialias = 0.8 * scale
    petal_alpha = np.clip((edge - r) / antialias + 0.5, 0, 1)
    # Shading: darker at the base, lighter at the tip; a darker midrib along the axis;
    # a faint dark outline so that touching petals of pale colours stay countable.
    shade = 0.62 + 0.38 * np.clip(r / (edge + 1e-3), 0, 1)
    midrib = 1 - 0.18 * np.exp(-(((r * np.sin(delta)) / (0.9 * scale)) ** 2)) * (r > centre_radius)
    outline = 1 - 0.45 * 4 * petal_alpha * (1 - petal_alpha)
    petal_rgb = _petal_colors(rng, color_names)[:, None, None, :] * (shade * midrib * outline)[..., None]

    centre_hsv = _CENTRE_HSV[rng.integers(0, len(_CENTRE_HSV), n)]
    centre_alpha = np.clip((centre_radius - r) / antialias + 0.5, 0, 1)
    centre_shade = 0.75 + 0.25 * np.clip(1 - r / centre_radius, 0, 1)
    centre_rgb = _hsv_to_rgb(centre_hsv)[:, None, None, :] * centre_shade[..., None]

    # Background: a vertical gradient between two muted, dark colours.
    hue = rng.uniform(0, 1, n)
    top = _hsv_to_rgb(np.stack([hue, rng.uniform(0.1, 0.4, n), rng.uniform(0.12, 0.40, n)], -1))
    bottom = _hsv_to_rgb(np.stack([hue + rng.uniform(-0.08, 0.08, n), rng.uniform(0.1, 0.4, n), rng.uniform(0.12, 0.40, n)], -1))
    mix = (grid / size)[None, :, None, None]
    background = top[:, None, None, :] * (1 - mix) + bottom[:, None, None, :] * mix

    # Composite back to front: background, petals, centre.
    image = background * (1 - petal_alpha[..., None]) + petal_rgb * petal_alpha[..., None]
    image = image * (1 - centre_alpha[..., None]) + centre_rgb * centre_alpha[..., None]
    return np.clip(image, 0, 1).astype(np.float32)


def _petal_colors(rng, color_names):
    """One jittered RGB petal colour per image, float32 (n, 3)."""
    hsv = np.empty((len(color_names), 3), dtype=np.float32)
    for i, name in enumerate(color_names):
        hsv[i] = [rng.uniform(low, high) for low, high in _PETAL_HSV[name]]
    return _hsv_to_rgb(hsv)


def _hsv_to_rgb(hsv):
    """Vectorised HSV to RGB; hsv float (..., 3) with hue in turns (wraps), s and v in [0, 1]."""
    hsv = np.asarray(hsv, dtype=np.float32)
    hue, sat, val = np.mod(hsv[..., 0], 1.0), hsv[..., 1], hsv[..., 2]
    # Standard formula: channel k = v - v*s*max(0, min(m, 4 - m, 1)), m = (k + 6h) mod 6.
    channels = []
    for k in (5.0, 3.0, 1.0):
        m = np.mod(k + hue * 6.0, 6.0)
        channels.append(val - val * sat * np.clip(np.minimum(m, 4.0 - m), 0.0, 1.0))
    return np.stack(channels, axis=-1).astype(np.float32)
