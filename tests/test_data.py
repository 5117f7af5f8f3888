"""Mode-aware loaders and sample photos, offline."""

import time

import numpy as np
import pytest

from imagegen import data
from imagegen.network import OfflineError


def test_quick_digits_are_real_digits_upsampled():
    train, validation = data.digits(28, "train", mode="quick"), data.digits(28, "validation", mode="quick")
    assert train.images.shape[1:] == (28, 28, 1) and train.images.dtype == np.float32
    assert len(train) + len(validation) == 1797
    assert 0 <= train.images.min() and train.images.max() <= 1
    assert set(train.labels.tolist()) == set(range(10)) and train.class_names == [str(i) for i in range(10)]
    assert "scikit-learn" in train.source
    assert data.digits(8, mode="quick", limit=10).images.shape == (10, 8, 8, 1)


def test_quick_flowers_are_captioned_toy_flowers():
    flowers = data.flowers(32, mode="quick", limit=20)
    assert flowers.images.shape == (20, 32, 32, 3) and len(flowers.captions) == 20
    assert all("flower" in caption or "petals" in caption for caption in flowers.captions)
    validation = data.flowers(32, "validation", mode="quick", limit=20)
    assert not np.allclose(flowers.images, validation.images)


def test_quick_mode_says_once_which_stand_in_it_uses(capsys):
    data.sets._announced.discard("flowers")
    data.flowers(16, mode="quick", limit=2)
    data.flowers(16, mode="quick", limit=2)
    assert capsys.readouterr().out.count("toy flowers stand in") == 1


def test_shoes_explain_that_they_need_full_mode():
    with pytest.raises(RuntimeError, match="IMAGEGEN_MODE=full"):
        data.shoes(mode="quick")


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split"):
        data.digits(split="test", mode="quick")


@pytest.mark.parametrize("loader, name", [(data.digits, "MNIST"), (data.shoes, "Fashion-MNIST"), (data.flowers, "Oxford Flowers 102")])
def test_full_mode_offline_fails_fast_and_clearly(loader, name, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError) as failure:
        loader(mode="full")
    assert time.perf_counter() - start < 15
    message = str(failure.value)
    assert name in message and "IMAGEGEN_MODE=quick" in message and "unreachable" in message


@pytest.mark.parametrize("name", sorted(data.SAMPLE_PHOTOS))
def test_sample_photos_ship_with_the_dependencies(name):
    photo = data.sample_photo(name)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    assert data.sample_photo(name, 64).shape == (64, 64, 3)
    assert data.sample_photo(name, (48, 80)).shape == (48, 80, 3)


def test_unknown_sample_photo_lists_the_names():
    with pytest.raises(ValueError, match="astronaut"):
        data.sample_photo("horse")
