"""KID and the toy-flower classifier that supplies its features offline."""

import numpy as np
import pytest

from imagegen.classifier import ToyFlowerClassifier
from imagegen.data import toy_flowers
from imagegen.environment import set_seed
from imagegen.metrics import KIDTracker, kernel_inception_distance, polynomial_kernel


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    real, same = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    assert abs(kernel_inception_distance(real, same)) < 0.05
    kids = [kernel_inception_distance(real, rng.normal(shift, 1.0, size=(300, 16))) for shift in (0.5, 1.0, 2.0)]
    assert 0.05 < kids[0] < kids[1] < kids[2]
    np.testing.assert_allclose(kernel_inception_distance(real, same), kernel_inception_distance(same, real), rtol=1e-9)


def test_kid_matches_the_mmd_formula_by_hand():
    x, y = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0], [0.0, 2.0]])
    k = lambda a, b: (a @ b / 2 + 1) ** 3  # noqa: E731
    by_hand = (sum(k(x[i], x[j]) for i in range(3) for j in range(3) if i != j) / 6
               + sum(k(y[i], y[j]) for i in range(2) for j in range(2) if i != j) / 2
               - 2 * np.mean([k(a, b) for a in x for b in y]))
    np.testing.assert_allclose(kernel_inception_distance(x, y), by_hand, rtol=1e-12)
    assert polynomial_kernel(x, y).shape == (3, 2)


def test_kid_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same d"):
        kernel_inception_distance(np.zeros((4, 3)), np.zeros((4, 5)))


def test_classifier_reads_colours_and_gives_features():
    set_seed(0)
    classifier = ToyFlowerClassifier(image_size=16)
    held_out = classifier.fit(num_images=1500, epochs=4)
    assert held_out["color"] > 0.7  # eight colours: chance is 0.125
    flowers = toy_flowers(20, 16, seed=5)
    colors, petals = classifier.predict(flowers.images)
    assert len(colors) == 20 and set(petals) <= set(range(3, 9))
    features = classifier.features(flowers.images)
    assert features.shape == (20, 128)
    assert 0.3 < np.sqrt(np.mean(features**2)) < 3  # unit scale, as KID's polynomial kernel expects
    scores = classifier.accuracy(flowers.images, flowers.colors, flowers.petals)
    assert set(scores) == {"color", "petals"} and 0 <= scores["petals"] <= 1


def test_kid_tracker_records_every_few_epochs():
    import keras

    rng = np.random.default_rng(0)
    tracker = KIDTracker(lambda n: rng.normal(size=(n, 4)), lambda x: np.asarray(x), rng.normal(size=(50, 4)), every=2, num_images=50)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((4, 1)), np.zeros((4, 1)), epochs=5, verbose=0, callbacks=[tracker])
    assert [epoch for epoch, _ in tracker.history] == [2, 4, 5]
    assert all(abs(kid) < 0.5 for _, kid in tracker.history)


def test_colour_histograms_count_pixels_and_their_distance_is_total_variation():
    from imagegen.metrics import color_histogram, color_histogram_distance

    black = np.zeros((2, 8, 8, 3), np.uint8)
    half = black.copy()
    half[:, :4] = 255  # half the pixels white
    histogram = color_histogram(half)
    assert histogram.shape == (64,) and histogram.sum() == pytest.approx(1.0)
    assert histogram[0] == pytest.approx(0.5) and histogram[63] == pytest.approx(0.5)
    assert color_histogram_distance(black, black) == 0.0
    assert color_histogram_distance(half, black) == pytest.approx(0.5)
    assert color_histogram_distance(black, np.full_like(black, 255)) == pytest.approx(1.0)
    assert color_histogram_distance(half / 255.0, half) == pytest.approx(0.0)  # floats in [0, 1] and uint8 alike
