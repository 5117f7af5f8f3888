"""The full-mode tensorflow-datasets pipelines, run offline on tfds' mock data.

This is the code that runs on Colab; tfds.testing.mock_data stands in for the
downloaded files, and the reachability check is told the host answers.
"""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from imagegen import data, network  # noqa: E402
from imagegen.data import tfds_sets  # noqa: E402


@pytest.fixture
def mock_tfds(monkeypatch):
    monkeypatch.setattr(network, "is_reachable", lambda url, timeout: True)
    with tfds.testing.mock_data(num_examples=24):
        yield


def first_batch(dataset):
    images, labels = next(iter(dataset))
    return np.asarray(images), np.asarray(labels)


def test_mnist_pipeline(mock_tfds):
    images, labels = first_batch(tfds_sets.mnist_pipeline(batch_size=8, shuffle=True))
    assert images.shape == (8, 28, 28, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1 and images.max() > 0.5
    assert set(labels.tolist()) <= set(range(10))
    resized, _ = first_batch(tfds_sets.mnist_pipeline(image_size=32, batch_size=4))
    assert resized.shape == (4, 32, 32, 1)


def test_shoes_pipeline_keeps_only_shoes(mock_tfds):
    images, labels = tfds_sets.to_numpy(tfds_sets.shoes_pipeline())
    assert images.shape[1:] == (28, 28, 1)
    assert 0 < len(labels) < 24 and set(labels.tolist()) <= {0, 1, 2}


def test_flowers_pipeline_crops_resizes_and_names_classes(mock_tfds):
    images, labels = first_batch(tfds_sets.flowers102_pipeline("train", image_size=64, batch_size=4))
    assert images.shape == (4, 64, 64, 3) and 0 <= images.min() and images.max() <= 1
    assert set(labels.tolist()) <= set(range(102))
    names = tfds_sets.flowers102_class_names()
    assert len(names) == 102 and names[0] == "pink primrose"


def test_full_mode_loaders_return_image_sets(mock_tfds):
    flowers = data.flowers(32, mode="full", limit=5)
    assert flowers.images.shape == (5, 32, 32, 3) and len(flowers.class_names) == 102
    assert all(caption.startswith("a photo of a ") and caption.endswith(", a type of flower") for caption in flowers.captions)
    digits = data.digits(28, "validation", mode="full", limit=6)
    assert digits.images.shape == (6, 28, 28, 1) and "MNIST" in digits.source
    shoes = data.shoes(mode="full")
    assert shoes.class_names == ["sandal", "sneaker", "ankle boot"]


def test_unprepared_and_unreachable_names_the_fixes(monkeypatch, tmp_path):
    monkeypatch.setattr(network, "is_reachable", lambda url, timeout: False)
    with pytest.raises(network.OfflineError, match="copy a prepared tensorflow_datasets/mnist"):
        tfds_sets.load_tfds("mnist", "train", data_dir=str(tmp_path))
