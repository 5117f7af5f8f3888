"""Data for the course: real data sets in full mode, offline stand-ins in quick mode.

- ``digits``, ``shoes``, ``flowers``: mode-aware loaders returning numpy ``ImageSet``s.
- ``toy_flowers``: the procedural captioned flower set that ships with the course.
- ``toy_world``: procedural captioned scenes (astronauts, horses, cats, boats, ...) with
  the ground truth of every scene; by default no astronaut ever rides a horse.
- ``sample_photo``: photos shipped with scikit-image and scikit-learn.
- ``download``: sha256-pinned, atomic, cached downloads that fail fast offline
  (with ``imagegen.network.OfflineError``).
- ``tfds_sets``: the full-mode ``tf.data`` pipelines themselves.
"""

from imagegen.data.download import ChecksumError, download
from imagegen.data.samples import SAMPLE_PHOTOS, sample_photo
from imagegen.data.sets import ImageSet, digits, flower_caption, flowers, shoes
from imagegen.data.toy_flowers import (
    CAPTION_TEMPLATES,
    COLORS,
    NUMBER_WORDS,
    PETAL_COUNTS,
    ToyFlowers,
    canonical_prompts,
    toy_flower_caption,
    toy_flowers,
)
from imagegen.data.toy_world import TITLE_PROMPT, ToyWorld, toy_world

__all__ = [
    "CAPTION_TEMPLATES", "COLORS", "NUMBER_WORDS", "PETAL_COUNTS", "SAMPLE_PHOTOS",
    "ChecksumError", "ImageSet", "TITLE_PROMPT", "ToyFlowers", "ToyWorld",
    "canonical_prompts", "digits", "download", "flower_caption", "flowers",
    "sample_photo", "shoes", "toy_flower_caption", "toy_flowers", "toy_world",
]
