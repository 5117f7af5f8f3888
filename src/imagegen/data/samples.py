"""Sample photos for image-to-image and inpainting, shipped with scikit-image and scikit-learn.

No download: these files are inside the installed packages, so the
applications notebook works offline. Photos are returned as uint8
(height, width, 3), optionally centre-cropped and resized.
"""

from __future__ import annotations

import numpy as np

# name -> (package, loader argument): where each photo ships.
SAMPLE_PHOTOS = {
    "astronaut": ("skimage", "astronaut"),  # Eileen Collins, NASA (public domain)
    "coffee": ("skimage", "coffee"),
    "chelsea": ("skimage", "chelsea"),  # a cat
    "rocket": ("skimage", "rocket"),
    "china": ("sklearn", "china.jpg"),  # a temple
    "flower": ("sklearn", "flower.jpg"),
}


def sample_photo(name, size=None):
    """A sample photo as uint8 (height, width, 3).

    name: one of ``SAMPLE_PHOTOS``.
    size: None for the original; an int for a centre-cropped square of that
        side; or (height, width) for a centre crop to that aspect, resized.
    """
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}; choose one of {', '.join(SAMPLE_PHOTOS)}")
    package, key = SAMPLE_PHOTOS[name]
    if package == "skimage":
        import skimage.data

        image = getattr(skimage.data, key)()
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(key)
    image = np.asarray(image, dtype=np.uint8)[..., :3]
    if size is None:
        return image
    height, width = (size, size) if np.isscalar(size) else size
    return resize_crop(image, int(height), int(width))


def resize_crop(image, height, width):
    """Centre-crop ``image`` (uint8 (h, w, 3)) to the aspect of (height, width), then resize to it."""
    from PIL import Image

    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    in_height, in_width = image.shape[:2]
    scale = min(in_height / height, in_width / width)
    crop_height, crop_width = int(round(height * scale)), int(round(width * scale))
    top, left = (in_height - crop_height) // 2, (in_width - crop_width) // 2
    cropped = image[top : top + crop_height, left : left + crop_width]
    return np.asarray(Image.fromarray(cropped).resize((width, height), Image.Resampling.LANCZOS))


def photo_crops(name, size, count=4):
    """``count`` square views of one sample photo, uint8 (count, size, size, 3): the whole, then closer crops.

    Textual inversion's examples in full mode (notebook 07): several pictures of one thing that ship
    with the course, so no download and no folder of one's own is needed.
    """
    image = sample_photo(name)
    height, width = image.shape[:2]
    views = []
    for k in range(count):
        side = int(min(height, width) * (1.0 - 0.08 * k))  # each view 8% closer than the one before
        across = (0.5, 0.2, 0.8, 0.5)[k % 4]  # and from a little further left or right
        top, left = (height - side) // 2, int((width - side) * across)
        views.append(resize_crop(image[top : top + side, left : left + side], size, size))
    return np.stack(views)


def concept_images(folder, size, limit=5):
    """The first ``limit`` pictures (png, jpg) of a folder, centre-cropped to squares: uint8 (n, size, size, 3)."""
    import os

    from PIL import Image

    names = sorted(p for p in os.listdir(folder) if p.lower().endswith((".png", ".jpg", ".jpeg")))[:limit]
    if len(names) < 3:
        raise ValueError(f"{folder} has {len(names)} pictures (png or jpg); textual inversion needs 3 to 5 of one thing")
    return np.stack([resize_crop(np.asarray(Image.open(os.path.join(folder, n)).convert("RGB")), size, size) for n in names])
