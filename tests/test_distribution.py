"""Data-parallel training gives the same step as one device (each backend in its own process)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("distribution_step.py")


def run_step(backend):
    environment = dict(os.environ, KERAS_BACKEND=backend, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_devices_train_like_one(backend):
    pytest.importorskip(backend)
    report = run_step(backend)
    assert report["replicas"] == 2
    assert report["max_update"] > 1e-3  # the step really changed the weights
    assert report["max_difference"] < 1e-5
