"""The course's data sets, in quick or full mode, behind one call each.

``digits()``, ``shoes()`` and ``flowers()`` return an ``ImageSet`` of numpy
arrays whatever the mode, so notebooks have one code path:

| call        | full mode (tensorflow-datasets)      | quick mode (offline stand-in)             |
|-------------|--------------------------------------|-------------------------------------------|
| digits()    | MNIST, 60,000 train images           | scikit-learn digits, 1,797 real digits    |
| shoes()     | Fashion-MNIST sandals/sneakers/boots | none: shoes need the download             |
| flowers()   | Oxford Flowers 102, captioned        | toy flowers, captioned (``toy_flowers``)  |

Quick mode says once which stand-in it uses. In full mode an unreachable
source raises ``OfflineError`` within seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from imagegen import modes
from imagegen.data import tfds_sets
from imagegen.data.toy_flowers import COLORS, toy_flowers

_announced = set()


@dataclasses.dataclass
class ImageSet:
    """Images with their labels and, for flowers, captions.

    images: float32 (n, height, width, channels) in [0, 1].
    labels: int32 (n,), indices into ``class_names``.
    class_names: the label names.
    source: where the images come from, in words.
    captions: n strings, or None.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list
    source: str
    captions: list = None

    def __len__(self):
        return len(self.images)


def _announce(key, message):
    """Print ``message`` the first time ``key`` is seen in this process."""
    if key not in _announced:
        _announced.add(key)
        print(message)


def _check_split(split):
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")


def digits(image_size=28, split="train", mode=None, limit=None):
    """Handwritten digits: MNIST in full mode, scikit-learn's 1,797 digits in quick mode.

    image_size: side in pixels of the returned images (MNIST is 28, the
        scikit-learn digits are 8x8 and are upsampled smoothly).
    split: "train" or "validation" (quick mode holds out a seeded 10%).
    limit: keep at most this many images.
    Returns an ``ImageSet`` with images (n, size, size, 1) and labels 0..9.
    """
    _check_split(split)
    mode = mode or modes.mode()
    names = [str(i) for i in range(10)]
    if mode == "full":
        pipeline = tfds_sets.mnist_pipeline("train" if split == "train" else "test", image_size)
        images, labels = tfds_sets.to_numpy(pipeline, limit)
        return ImageSet(images, labels, names, "MNIST (tensorflow-datasets)")

    from sklearn.datasets import load_digits
    from skimage.transform import resize

    _announce("digits", "Quick mode: scikit-learn's 1,797 handwritten digits (8x8) stand in for MNIST.")
    bunch = load_digits()
    images = bunch.images.astype("float32") / 16.0  # pixel values 0..16 -> [0, 1]
    if image_size != 8:
        images = resize(images, (len(images), image_size, image_size), order=3, anti_aliasing=False)
    images = np.clip(images, 0, 1).astype("float32")[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.9 * len(order))
    keep = order[:cut] if split == "train" else order[cut:]
    keep = keep[:limit] if limit else keep
    return ImageSet(images[keep], bunch.target[keep].astype("int32"), names, "scikit-learn digits (offline stand-in for MNIST)")


def shoes(image_size=28, split="train", mode=None, limit=None):
    """Shoes from Fashion-MNIST (sandal, sneaker, ankle boot); full mode only.

    Returns an ``ImageSet`` with images (n, size, size, 1) and labels 0..2.
    """
    _check_split(split)
    mode = mode or modes.mode()
    if mode != "full":
        raise RuntimeError(
            "shoes() needs Fashion-MNIST, which is downloaded: no offline stand-in ships with the course. "
            "Use digits() in quick mode, or set IMAGEGEN_MODE=full on a machine with the network."
        )
    pipeline = tfds_sets.shoes_pipeline("train" if split == "train" else "test", image_size)
    images, labels = tfds_sets.to_numpy(pipeline, limit)
    return ImageSet(images, labels, list(tfds_sets.SHOE_NAMES), "Fashion-MNIST shoes (tensorflow-datasets)")


def flower_caption(class_name):
    """The caption for an Oxford Flowers 102 class: "a photo of a sunflower, a type of flower"."""
    return f"a photo of a {class_name}, a type of flower"


def flowers(image_size=64, split="train", mode=None, limit=None, seed=0):
    """Captioned flowers: Oxford Flowers 102 in full mode, toy flowers in quick mode.

    Quick mode renders ``limit`` toy flowers (default 4,000 for train, 500 for
    validation, from different seeds); labels are then colour indices into
    ``COLORS``. Full mode captions each image from its class name.
    Returns an ``ImageSet`` with images (n, size, size, 3) and captions.
    """
    _check_split(split)
    mode = mode or modes.mode()
    if mode == "full":
        names = tfds_sets.flowers102_class_names()
        images, labels = tfds_sets.to_numpy(tfds_sets.flowers102_pipeline(split, image_size), limit)
        captions = [flower_caption(names[label]) for label in labels]
        return ImageSet(images, labels, names, "Oxford Flowers 102 (tensorflow-datasets)", captions)

    _announce("flowers", "Quick mode: procedural captioned toy flowers stand in for Oxford Flowers 102.")
    count = limit or (4000 if split == "train" else 500)
    toy = toy_flowers(count, image_size, seed=seed if split == "train" else seed + 10_000)
    return ImageSet(toy.images, toy.color_ids, list(COLORS), "toy flowers (offline stand-in for Oxford Flowers 102)", toy.captions)
