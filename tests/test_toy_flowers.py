"""The procedural toy-flower set: deterministic, well-formed, captions true to the pictures."""

import numpy as np
import pytest

from imagegen.data import (
    CAPTION_TEMPLATES,
    COLORS,
    NUMBER_WORDS,
    PETAL_COUNTS,
    canonical_prompts,
    toy_flower_caption,
    toy_flowers,
)
from imagegen.data.toy_flowers import _PETAL_HSV, _hsv_to_rgb

WORD_TO_NUMBER = {word: number for number, word in NUMBER_WORDS.items()}


def parse_caption(caption):
    """(colour, petals) read back from any caption template."""
    words = caption.replace("-petaled", " ").split()
    colors = [word for word in words if word in COLORS]
    numbers = [WORD_TO_NUMBER[word] for word in words if word in WORD_TO_NUMBER]
    assert len(colors) == 1 and len(numbers) == 1, caption
    return colors[0], numbers[0]


def test_same_seed_same_set_other_seed_other_set():
    first, again, other = toy_flowers(64, 32, seed=3), toy_flowers(64, 32, seed=3), toy_flowers(64, 32, seed=4)
    np.testing.assert_array_equal(first.images, again.images)
    assert first.captions == again.captions and first.colors == again.colors
    np.testing.assert_array_equal(first.petals, again.petals)
    assert not np.allclose(first.images, other.images)


def test_shapes_types_and_ranges():
    flowers = toy_flowers(300, 64)  # more than one rendering chunk
    assert flowers.images.shape == (300, 64, 64, 3) and flowers.images.dtype == np.float32
    assert 0.0 <= flowers.images.min() and flowers.images.max() <= 1.0
    assert len(flowers) == len(flowers.captions) == len(flowers.colors) == len(flowers.petals) == 300
    assert set(flowers.colors) == set(COLORS) and set(flowers.petals.tolist()) == set(PETAL_COUNTS)
    assert flowers.images.std() > 0.1  # pictures, not flat fields
    assert toy_flowers(2, 128).images.shape == (2, 128, 128, 3)


def test_captions_agree_with_colors_and_petals():
    flowers = toy_flowers(1000, 32, seed=11)
    for caption, color, petals in zip(flowers.captions, flowers.colors, flowers.petals):
        assert parse_caption(caption) == (color, int(petals))
    used = {next(i for i, t in enumerate(CAPTION_TEMPLATES) if t.format(color=c, number=NUMBER_WORDS[int(n)]) == caption)
            for caption, c, n in zip(flowers.captions, flowers.colors, flowers.petals)}
    assert used == set(range(len(CAPTION_TEMPLATES)))  # paraphrases appear, and the canonical form


def test_the_drawn_colour_is_the_named_colour():
    """A nearest-prototype reading of the brightest, most colourful pixels names the caption's colour."""
    flowers = toy_flowers(400, 64, seed=5)
    prototypes = np.stack([_hsv_to_rgb([np.mean(r) for r in _PETAL_HSV[c]]) for c in COLORS])
    correct = 0
    for image, color in zip(flowers.images, flowers.colors):
        pixels = image.reshape(-1, 3)
        brightness = pixels.max(axis=1)
        petal_pixels = pixels[brightness >= np.quantile(brightness, 0.85)]
        guess = COLORS[np.argmin(np.linalg.norm(prototypes - np.median(petal_pixels, axis=0), axis=1))]
        correct += guess == color
    assert correct / len(flowers) > 0.9


def test_subsets_and_restricted_attributes():
    flowers = toy_flowers(50, 32, colors=("blue",), petal_counts=(5,))
    assert set(flowers.colors) == {"blue"} and set(flowers.petals.tolist()) == {5}
    subset = flowers[:10]
    assert len(subset) == 10 and subset.captions == flowers.captions[:10]
    np.testing.assert_array_equal(flowers.color_ids, [COLORS.index("blue")] * 50)


def test_canonical_caption_and_prompts():
    assert toy_flower_caption("red", 5) == "a red flower with five petals"
    prompts = canonical_prompts()
    assert len(prompts) == len(COLORS) * len(PETAL_COUNTS) == 48
    assert all(parse_caption(prompt) == (color, petals) for prompt, color, petals in prompts)


@pytest.mark.parametrize(
    "arguments, message",
    [(("teal", 5), "unknown colour"), (("red", 9), "3 to 8"), (("red", 5, 99), "template")],
)
def test_bad_caption_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        toy_flower_caption(*arguments)


def test_bad_set_arguments_are_named():
    with pytest.raises(ValueError, match="image_size"):
        toy_flowers(4, 8)
    with pytest.raises(ValueError, match="colors"):
        toy_flowers(4, 32, colors=("teal",))
