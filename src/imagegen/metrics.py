"""Measuring generated images: Kernel Inception Distance (KID) and its feature extractors; colour summaries.

KID compares two sets of images through features of a pretrained network: the
squared maximum mean discrepancy (MMD) between the feature sets, with the
polynomial kernel k(x, y) = (x . y / d + 1)^3. Lower is better; 0 means the
two sets look alike to the network. Unlike FID it has an unbiased estimator,
so it is meaningful on the few hundred images we can afford per epoch.

Features: InceptionV3 (ImageNet weights) in full mode, as the keras.io DDIM
example; in quick mode, the penultimate layer of the small toy-flower
classifier (``imagegen.classifier``), because InceptionV3's weights are a
download and it has never seen a toy flower.
"""

from __future__ import annotations

import keras
import numpy as np


def polynomial_kernel(x, y):
    """k(x, y) = (x . y / d + 1)^3 for all pairs: (n, d) and (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(real_features, generated_features):
    """Unbiased squared MMD between two feature sets (n, d) and (m, d) under the polynomial kernel.

    MMD^2 = E[k(r, r')] + E[k(g, g')] - 2 E[k(r, g)], with the diagonal terms
    left out of the first two means (that is what makes it unbiased).
    """
    real = np.asarray(real_features, dtype=np.float64)
    generated = np.asarray(generated_features, dtype=np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"need two (n, d) feature arrays with the same d, got {real.shape} and {generated.shape}")
    n, m = len(real), len(generated)
    if n < 2 or m < 2:
        raise ValueError("KID needs at least 2 images in each set")
    k_real, k_generated = polynomial_kernel(real, real), polynomial_kernel(generated, generated)
    k_cross = polynomial_kernel(real, generated)
    mean_real = (k_real.sum() - np.trace(k_real)) / (n * (n - 1))
    mean_generated = (k_generated.sum() - np.trace(k_generated)) / (m * (m - 1))
    return float(mean_real + mean_generated - 2.0 * k_cross.mean())


# Keras' ImageNet InceptionV3 without its classifier, and the md5 Keras pins it with (it publishes no sha256).
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"


def inception_features(image_size=75):
    """A feature function images [0, 1] -> (n, 2048) from ImageNet InceptionV3 (full mode; downloads weights).

    Images are resized to ``image_size`` (75 is InceptionV3's minimum, as in keras.io's DDIM). The
    weights (84 MB) come through ``download``: checked, atomic, and failing in seconds offline.
    """
    from imagegen.data.download import download

    weights = download(INCEPTION_URL, INCEPTION_MD5, subdir="keras", algorithm="md5")
    network = keras.applications.InceptionV3(include_top=False, weights=str(weights), pooling="avg",
                                             input_shape=(image_size, image_size, 3))

    def features(images):
        images = keras.ops.image.resize(np.asarray(images, dtype="float32"), (image_size, image_size))
        return network.predict(keras.applications.inception_v3.preprocess_input(images * 255.0), batch_size=128, verbose=0)

    return features


class KIDTracker(keras.callbacks.Callback):
    """Every few epochs, generate images and record their KID against real images' features.

    generate: callable num_images -> images in [0, 1] (e.g. a DiffusionModel's ``generate``).
    features: callable images -> (n, d) features.
    real_images: the reference set (e.g. validation images).
    After training, ``history`` holds (epoch, kid) pairs.
    """

    def __init__(self, generate, features, real_images, every=1, num_images=128):
        super().__init__()
        self.generate, self.features, self.every, self.num_images = generate, features, every, num_images
        self.real_features = features(real_images)
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        total = self.params.get("epochs")
        if (epoch + 1) % self.every == 0 or epoch + 1 == total:
            kid = kernel_inception_distance(self.real_features, self.features(self.generate(self.num_images)))
            self.history.append((epoch + 1, kid))
            if logs is not None:
                logs["kid"] = kid


def petal_hue(images, min_saturation=0.45, min_value=0.55):
    """The dominant bright colour of each image, as a hue in turns (0..1), or NaN where none is bright.

    images: uint8 or float in [0, 1], (n, h, w, 3). Toy-flower backgrounds are muted
    and dark, so the bright, saturated pixels are the petals (and a gold centre).
    The mean is circular (hue wraps: 0.99 and 0.01 are neighbours).
    """
    images = np.asarray(images)
    images = images.astype("float32") / 255.0 if images.dtype == np.uint8 else images.astype("float32")
    top, bottom = images.max(axis=-1), images.min(axis=-1)
    saturation = (top - bottom) / np.maximum(top, 1e-6)
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    hue = np.arctan2(np.sqrt(3.0) * (g - b), 2.0 * r - g - b) / (2 * np.pi) % 1.0  # hexagonal hue, close to HSV's
    hues = []
    for h, s, v in zip(hue, saturation, top):
        keep = (s >= min_saturation) & (v >= min_value)
        if not keep.any():
            hues.append(np.nan)
            continue
        angle = 2 * np.pi * h[keep]
        hues.append(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) / (2 * np.pi) % 1.0)
    return np.asarray(hues)


def hue_distance(hues, target):
    """Circular distance in turns (0..0.5) between hues and a target hue; NaN hues count as 0.5 (no colour)."""
    difference = np.abs(np.asarray(hues, dtype=np.float64) - target) % 1.0
    distance = np.minimum(difference, 1.0 - difference)
    return np.where(np.isnan(distance), 0.5, distance)


def color_histogram(images, levels=4):
    """The share of pixels in each of ``levels``^3 colour boxes, averaged over images (uint8 or [0, 1] floats).

    A coarse "what colours, how much" summary: two sets of pictures of the same place that differ
    only in a thing's look (a black cat with a white bib, or an orange one) differ in it.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.max() > 1.5:
        images = images / 255.0
    boxes = np.minimum((images * levels).astype(np.int64), levels - 1)  # each channel -> 0 .. levels-1
    codes = (boxes[..., 0] * levels + boxes[..., 1]) * levels + boxes[..., 2]
    return np.bincount(codes.ravel(), minlength=levels**3) / codes.size


def color_histogram_distance(images, reference, levels=4):
    """Total variation between the two sets' colour histograms: 0 = the same colours in the same amounts, 1 = none shared."""
    return 0.5 * float(np.abs(color_histogram(images, levels) - color_histogram(reference, levels)).sum())
