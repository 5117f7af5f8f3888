"""imagegen.environment and imagegen.paths: the seed, the printed summary, the cache folder."""

import keras
import numpy as np

from imagegen import environment
from imagegen.paths import cache_dir


def test_set_seed_repeats_numpy_and_backend_draws():
    environment.set_seed(7)
    first = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,)))
    environment.set_seed(7)
    second = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,)))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_describe_names_mode_backend_device_versions(capsys):
    text = environment.describe()
    for word in ("mode:", "backend:", "device:", "keras", "numpy"):
        assert word in text
    assert keras.backend.backend() in text
    environment.print_environment()
    assert capsys.readouterr().out.strip() == text


def test_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_CACHE", str(tmp_path / "elsewhere"))
    path = cache_dir("weights")
    assert path == tmp_path / "elsewhere" / "weights" and path.is_dir()
