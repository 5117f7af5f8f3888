"""What this process computes on, and how to use all of it: accelerator, distribution, mixed precision.

Why: the same notebook runs on a 2-core CPU, one Colab GPU or an 8-core TPU.
This module finds out which (``detect_accelerator``), spreads training over
every device (``distribution_scope``, ``num_replicas``) and picks the dtype
policy that device computes fastest in (``mixed_precision_policy``). It works
with the TensorFlow, JAX and PyTorch backends of Keras 3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pathlib
import platform

from imagegen import rehearsal


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """What the current Keras backend computes on: kind is "tpu", "gpu" or "cpu"."""

    kind: str
    count: int
    name: str


def backend():
    """The current Keras backend's name: "tensorflow", "jax" or "torch"."""
    import keras

    return keras.backend.backend()


@functools.lru_cache(maxsize=None)
def detect_accelerator():
    """Detect the accelerator visible to the current Keras backend (cached per process)."""
    name = backend()
    if name == "jax":
        import jax

        devices = jax.devices()
        kind = devices[0].platform if devices else "cpu"
        kind = kind if kind in ("gpu", "tpu") else "cpu"
        return Accelerator(kind, len(devices) if kind != "cpu" else 0, str(getattr(devices[0], "device_kind", kind)))
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return Accelerator("gpu", torch.cuda.device_count(), torch.cuda.get_device_name(0))
        return Accelerator("cpu", 0, platform.processor() or "cpu")
    import tensorflow as tf

    if _tpu_present():
        cores = tf.config.list_logical_devices("TPU")  # filled in once the TPU system is initialised
        return Accelerator("tpu", len(cores) or None, "TPU")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return Accelerator("gpu", len(gpus), details.get("device_name", "GPU"))
    return Accelerator("cpu", 0, platform.processor() or "cpu")


def _tpu_present():
    """A Cloud/Colab TPU: announced by these variables, by /dev/accel* (TPU VMs), or by libtpu being installed."""
    import importlib.util

    announced = bool(os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")) or pathlib.Path("/dev/accel0").exists()
    return announced or importlib.util.find_spec("libtpu") is not None


def get_strategy(devices=None):
    """The ``tf.distribute`` strategy for training (TensorFlow backend), made once per process.

    TPUStrategy on a TPU, MirroredStrategy on several GPUs (or on the given
    ``devices``, e.g. ["/cpu:0", "/cpu:1"]), the default strategy otherwise.
    Cached: the TPU system is initialised once, and ``num_replicas`` reads the
    strategy whose scope built the model.
    """
    return _strategy(tuple(devices) if devices is not None else None)


@functools.lru_cache(maxsize=None)
def _strategy(devices):
    import tensorflow as tf

    if devices is not None:
        return tf.distribute.MirroredStrategy(list(devices))
    accelerator = detect_accelerator()
    if accelerator.kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if accelerator.kind == "gpu" and accelerator.count > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def distribution_scope(devices=None):
    """A context to build and compile models in so that ``fit()`` uses every accelerator.

    TensorFlow: the scope of ``get_strategy(devices)``. JAX: installs
    ``keras.distribution.DataParallel`` over all devices (when there are
    several) and returns a no-op context. Usage::

        with devices.distribution_scope():
            model = build_model()
            model.compile(...)
    """
    name = backend()
    if name == "tensorflow":
        return get_strategy(devices).scope()
    if name == "jax":
        import keras

        all_devices = devices or keras.distribution.list_devices()
        if len(all_devices) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=all_devices))
    return contextlib.nullcontext()


def num_replicas():
    """How many copies of the model train in parallel (scale the global batch size by this)."""
    name = backend()
    if name == "tensorflow":
        return get_strategy().num_replicas_in_sync  # the device count the strategy found
    if name == "jax":
        import keras

        distribution = keras.distribution.distribution()
        return len(distribution.device_mesh.devices.flatten()) if distribution is not None else 1
    return 1


def mixed_precision_policy(accelerator=None):
    """The Keras dtype policy for Stable Diffusion: mixed_bfloat16 on TPU, mixed_float16 on GPU, float32 on CPU.

    A rehearsal of full mode takes the GPU's, so that its half-precision code runs too (tiny models: the CPU copes).
    """
    if accelerator is None and rehearsal.active():
        return "mixed_float16"
    kind = (accelerator or detect_accelerator()).kind
    return {"tpu": "mixed_bfloat16", "gpu": "mixed_float16"}.get(kind, "float32")


def enable_mixed_precision(accelerator=None):
    """Set the global Keras dtype policy from ``mixed_precision_policy`` and return its name."""
    import keras

    policy = mixed_precision_policy(accelerator)
    keras.config.set_dtype_policy(policy)
    return policy
