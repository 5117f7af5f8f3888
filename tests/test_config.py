"""imagegen.config: mode resolution, accelerator, precision, seeds, cache."""

import keras
import numpy as np
import pytest

from imagegen import config


def test_requested_mode_reads_the_environment(monkeypatch):
    for value in ("quick", "full", "auto", " Quick "):
        monkeypatch.setenv("IMAGEGEN_MODE", value)
        assert config.requested_mode() == value.strip().lower()
    monkeypatch.delenv("IMAGEGEN_MODE")
    assert config.requested_mode() == "auto"


def test_unknown_mode_names_the_choices(monkeypatch):
    monkeypatch.setenv("IMAGEGEN_MODE", "fast")
    with pytest.raises(ValueError, match="quick, full, auto"):
        config.requested_mode()


def test_explicit_modes_pass_through():
    assert config.resolve_mode("quick", accelerator=True, network=True) == "quick"
    assert config.resolve_mode("full", accelerator=False, network=False) == "full"


def test_auto_is_full_only_with_accelerator_and_network():
    assert config.resolve_mode("auto", accelerator=True, network=True) == "full"
    assert config.resolve_mode("auto", accelerator=True, network=False) == "quick"
    assert config.resolve_mode("auto", accelerator=False, network=True) == "quick"


def test_auto_on_cpu_never_probes_the_network(monkeypatch):
    def no_network():
        raise AssertionError("the network was probed on a CPU machine")

    monkeypatch.setattr(config, "network_available", no_network)
    assert config.resolve_mode("auto", accelerator=False) == "quick"


def test_mode_is_quick_under_tests():
    assert config.mode() == "quick"
    assert config.pick(quick=1, full=2) == 1


def test_accelerator_detection_sees_this_cpu():
    accelerator = config.detect_accelerator()
    assert accelerator.kind in ("cpu", "gpu", "tpu")
    assert (accelerator.count == 0) == (accelerator.kind == "cpu")


@pytest.mark.parametrize("kind, policy", [("tpu", "mixed_bfloat16"), ("gpu", "mixed_float16"), ("cpu", "float32")])
def test_mixed_precision_policy(kind, policy):
    assert config.mixed_precision_policy(config.Accelerator(kind, 1, kind)) == policy


def test_enable_mixed_precision_sets_the_global_policy():
    before = keras.config.dtype_policy().name
    try:
        assert config.enable_mixed_precision(config.Accelerator("gpu", 1, "test")) == "mixed_float16"
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy(before)


def test_set_seed_repeats_numpy_and_backend_draws():
    config.set_seed(7)
    first = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,)))
    config.set_seed(7)
    second = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,)))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_CACHE", str(tmp_path / "elsewhere"))
    path = config.cache_dir("weights")
    assert path == tmp_path / "elsewhere" / "weights" and path.is_dir()


def test_offline_forced(monkeypatch):
    monkeypatch.setenv("IMAGEGEN_OFFLINE", "1")
    assert config.offline_forced() and not config.network_available()


def test_describe_names_mode_backend_device_versions():
    text = config.describe()
    for word in ("mode:", "backend:", "device:", "keras", "numpy"):
        assert word in text
    assert keras.backend.backend() in text


def test_distribution_scope_is_a_context():
    with config.distribution_scope():
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
    assert config.num_replicas() == 1
