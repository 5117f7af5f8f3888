"""A small classifier that reads a toy flower's petal colour and petal count.

Why: to *measure* generated toy flowers. Its two heads say which colour and
how many petals an image shows, so notebooks can report how often a generated
image matches its prompt; its penultimate layer gives the features for KID in
quick mode. It trains in seconds on freshly rendered toy flowers.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from imagegen.data.toy_flowers import COLORS, PETAL_COUNTS, toy_flowers


def build_classifier(image_size=32, feature_dims=128):
    """images (b, s, s, 3) in [0, 1] -> {"color": (b, 8) probabilities, "petals": (b, 6) probabilities}."""
    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    for width in (16, 32, 64):
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    features = layers.Dense(feature_dims, activation="relu", name="features")(x)
    color = layers.Dense(len(COLORS), activation="softmax", name="color")(features)
    petals = layers.Dense(len(PETAL_COUNTS), activation="softmax", name="petals")(features)
    return keras.Model(images, {"color": color, "petals": petals}, name="toy_flower_classifier")


class ToyFlowerClassifier:
    """Reads colour and petal count from toy-flower images (float in [0, 1], any batch).

    ``fit`` trains it on rendered toy flowers; ``predict`` gives names and counts;
    ``accuracy`` scores images against the attributes they should show;
    ``features`` gives the penultimate layer for KID.
    """

    def __init__(self, image_size=32, seed=0):
        self.image_size = image_size
        self.seed = seed
        self.model = build_classifier(image_size)
        self.feature_model = keras.Model(self.model.input, self.model.get_layer("features").output)
        self.feature_scale = 1.0

    def fit(self, num_images=6000, epochs=6, batch_size=64, verbose=0):
        """Train on ``num_images`` fresh toy flowers (a seed no generator trains on); returns held-out accuracies."""
        flowers = toy_flowers(num_images + 1000, self.image_size, seed=1_000_000 + self.seed)
        train, held_out = flowers[:num_images], flowers[num_images:]
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                           loss={"color": "sparse_categorical_crossentropy", "petals": "sparse_categorical_crossentropy"},
                           metrics={"color": ["accuracy"], "petals": ["accuracy"]})
        self.model.fit(train.images, {"color": train.color_ids, "petals": _petal_ids(train.petals)},
                       epochs=epochs, batch_size=batch_size, verbose=verbose)
        # KID's kernel (x . y / d + 1)^3 expects features of unit scale: measure it once on real images.
        raw = self.feature_model.predict(train.images[:2000], batch_size=256, verbose=0)
        self.feature_scale = 1.0 / float(np.sqrt(np.mean(np.square(raw)) + 1e-12))
        return self.accuracy(held_out.images, held_out.colors, held_out.petals)

    def predict(self, images):
        """(colour names, petal counts) for each image."""
        outputs = self.model.predict(np.asarray(images, dtype="float32"), batch_size=256, verbose=0)
        colors = [COLORS[i] for i in np.argmax(outputs["color"], axis=1)]
        petals = np.asarray(PETAL_COUNTS)[np.argmax(outputs["petals"], axis=1)]
        return colors, petals

    def accuracy(self, images, colors, petals=None):
        """{"color": fraction with the given colour, "petals": fraction with the given count (if given)}."""
        predicted_colors, predicted_petals = self.predict(images)
        result = {"color": float(np.mean([a == b for a, b in zip(predicted_colors, colors)]))}
        if petals is not None:
            result["petals"] = float(np.mean(predicted_petals == np.asarray(petals)))
        return result

    def features(self, images):
        """Penultimate-layer features (n, 128), scaled to unit mean square on real toy flowers, for KID."""
        features = self.feature_model.predict(np.asarray(images, dtype="float32"), batch_size=256, verbose=0)
        return features * self.feature_scale


def _petal_ids(petals):
    return np.asarray(petals) - PETAL_COUNTS[0]
