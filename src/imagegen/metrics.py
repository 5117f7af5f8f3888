"""Measuring generated images: Kernel Inception Distance (KID) and its feature extractors.

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


def inception_features(image_size=75):
    """A feature function images [0, 1] -> (n, 2048) from ImageNet InceptionV3 (full mode; downloads weights).

    Images are resized to ``image_size`` (75 is InceptionV3's minimum, as in keras.io's DDIM).
    """
    from imagegen.data.download import OfflineError, is_reachable

    if not is_reachable("https://storage.googleapis.com", timeout=5.0):
        raise OfflineError("InceptionV3's ImageNet weights are a download and the network is unreachable; "
                           "in quick mode use the toy-flower classifier's features (imagegen.classifier).")
    network = keras.applications.InceptionV3(include_top=False, weights="imagenet", pooling="avg",
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
