"""Course-wide settings: quick or full mode, the accelerator, distribution, seeds, cache, precision.

Every notebook starts by calling ``imagegen.config.print_environment()`` and
then reads ``imagegen.config.mode()``: "quick" (offline, 2 CPU cores, minutes,
small sizes) or "full" (real data, pretrained weights, full sizes on a GPU or
TPU). The same code runs in both; only sizes and data sources change.

Environment variables:
- ``IMAGEGEN_MODE``: quick, full or auto (default). Auto means full only when an
  accelerator *and* the network are both there.
- ``IMAGEGEN_CACHE``: where downloads and weights go (default ~/.cache/imagegen).
- ``IMAGEGEN_OFFLINE=1``: never touch the network (downloads fail at once).
- ``KERAS_BACKEND``: tensorflow (default) or jax.
- ``IMAGEGEN_REHEARSAL=1``: rehearse full mode on a CPU, offline (``imagegen.rehearsal``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pathlib
import platform
import sys

from imagegen import rehearsal

MODES = ("quick", "full", "auto")
# Probed by auto mode: tensorflow-datasets' and our weights' download hosts.
NETWORK_PROBE_URL = "https://storage.googleapis.com"


def requested_mode():
    """The mode asked for in ``IMAGEGEN_MODE`` (quick, full or auto), before auto is resolved."""
    value = os.environ.get("IMAGEGEN_MODE", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"IMAGEGEN_MODE must be one of quick, full, auto; got {value!r}. Example: IMAGEGEN_MODE=quick")
    return value


def resolve_mode(requested=None, accelerator=None, network=None):
    """Turn a requested mode into "quick" or "full".

    requested: "quick", "full", "auto" or None (read ``IMAGEGEN_MODE``).
    accelerator, network: override detection (for tests); by default auto
        mode detects the accelerator first and probes the network only if one
        is present, so a CPU machine never waits on the network.
    """
    requested = requested_mode() if requested is None else requested
    if requested not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {requested!r}")
    if requested != "auto":
        return requested
    has_accelerator = (detect_accelerator().kind != "cpu") if accelerator is None else bool(accelerator)
    if not has_accelerator:
        return "quick"
    has_network = network_available() if network is None else bool(network)
    return "full" if has_network else "quick"


@functools.lru_cache(maxsize=None)
def _cached_mode(requested):
    return resolve_mode(requested)


def mode():
    """The course mode for this process: "quick" or "full" (resolved once, then cached; a rehearsal is full)."""
    rehearsal.record_call()
    return "full" if rehearsal.active() else _cached_mode(requested_mode())


def is_quick():
    """True in quick mode. Notebooks branch on it: ``if config.is_quick(): ... else: ...``."""
    rehearsal.record_call()
    return mode() == "quick"


def pick(quick, full):
    """The quick-mode or full-mode value of a setting, e.g. ``epochs = pick(quick=3, full=50)``.

    A rehearsal of full mode takes full's choices at quick's sizes (``rehearsal.rehearsal_value``).
    """
    rehearsal.record_call()
    if rehearsal.active():
        return rehearsal.rehearsal_value(quick, full)
    return quick if mode() == "quick" else full


def offline_forced():
    """True when ``IMAGEGEN_OFFLINE`` is set to 1/true/yes: no network access is attempted."""
    return os.environ.get("IMAGEGEN_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def network_available(timeout=3.0):
    """Whether the download hosts answer within ``timeout`` seconds (in a rehearsal, the stand-ins answer)."""
    if rehearsal.active():
        return True
    from imagegen.data.download import is_reachable

    return is_reachable(NETWORK_PROBE_URL, timeout=timeout)


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """What the current Keras backend computes on: kind is "tpu", "gpu" or "cpu"."""

    kind: str
    count: int
    name: str


@functools.lru_cache(maxsize=None)
def detect_accelerator():
    """Detect the accelerator visible to the current Keras backend (cached per process)."""
    backend = _backend()
    if backend == "jax":
        import jax

        devices = jax.devices()
        kind = devices[0].platform if devices else "cpu"
        kind = kind if kind in ("gpu", "tpu") else "cpu"
        return Accelerator(kind, len(devices) if kind != "cpu" else 0, str(getattr(devices[0], "device_kind", kind)))
    if backend == "torch":
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


def _backend():
    import keras

    return keras.backend.backend()


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

        with config.distribution_scope():
            model = build_model()
            model.compile(...)
    """
    backend = _backend()
    if backend == "tensorflow":
        return get_strategy(devices).scope()
    if backend == "jax":
        import keras

        all_devices = devices or keras.distribution.list_devices()
        if len(all_devices) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=all_devices))
    return contextlib.nullcontext()


def num_replicas():
    """How many copies of the model train in parallel (scale the global batch size by this)."""
    backend = _backend()
    if backend == "tensorflow":
        return get_strategy().num_replicas_in_sync  # the device count the strategy found
    if backend == "jax":
        import keras

        distribution = keras.distribution.distribution()
        return len(distribution.device_mesh.devices.flatten()) if distribution is not None else 1
    return 1


def set_seed(seed=0):
    """Seed Python, numpy and the backend so that a run repeats."""
    import keras

    keras.utils.set_random_seed(int(seed))


def cache_dir(*parts):
    """The cache folder (``IMAGEGEN_CACHE`` or ~/.cache/imagegen), or a subfolder of it; created if needed."""
    root = pathlib.Path(os.environ.get("IMAGEGEN_CACHE") or pathlib.Path.home() / ".cache" / "imagegen").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def versions():
    """Versions of Python and the libraries the course uses, as {name: version}."""
    import importlib.metadata as metadata

    found = {"python": sys.version.split()[0]}
    for package in ("imagegen", "keras", "tensorflow", "tensorflow-cpu", "jax", "keras-cv", "tensorflow-datasets", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            name = "tensorflow" if package == "tensorflow-cpu" else package
            found.setdefault(name, metadata.version(package))
    return found


def describe():
    """A short multi-line summary: mode, backend, device and versions."""
    accelerator = detect_accelerator()
    count = accelerator.count or "?"
    device = "CPU" if accelerator.kind == "cpu" else f"{count} x {accelerator.kind.upper()} ({accelerator.name})"
    how = " (rehearsal)" if rehearsal.active() else " (auto)" if requested_mode() == "auto" else ""
    lines = [
        f"mode:     {mode()}{how}",
        f"backend:  {_backend()}",
        f"device:   {device}, {os.cpu_count()} CPU cores",
        "versions: " + ", ".join(f"{name} {version}" for name, version in versions().items()),
    ]
    return "\n".join(lines)


def print_environment():
    """Print ``describe()``; the config cell of every notebook calls this."""
    print(describe())


def in_colab():
    """True inside Google Colab."""
    return "google.colab" in sys.modules
