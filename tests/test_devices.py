"""imagegen.devices: accelerator detection, the mixed-precision policy, and the distribution scope."""

import keras
import pytest

from imagegen import devices


def test_accelerator_detection_sees_this_cpu():
    accelerator = devices.detect_accelerator()
    assert accelerator.kind in ("cpu", "gpu", "tpu")
    assert (accelerator.count == 0) == (accelerator.kind == "cpu")
    assert devices.backend() == keras.backend.backend()


@pytest.mark.parametrize("kind, policy", [("tpu", "mixed_bfloat16"), ("gpu", "mixed_float16"), ("cpu", "float32")])
def test_mixed_precision_policy(kind, policy):
    assert devices.mixed_precision_policy(devices.Accelerator(kind, 1, kind)) == policy


def test_enable_mixed_precision_sets_the_global_policy():
    before = keras.config.dtype_policy().name
    try:
        assert devices.enable_mixed_precision(devices.Accelerator("gpu", 1, "test")) == "mixed_float16"
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy(before)


def test_distribution_scope_is_a_context():
    with devices.distribution_scope():
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
    assert devices.num_replicas() == 1
