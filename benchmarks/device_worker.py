"""One worker process of device_check.py: one pipeline, its precisions in turn, every batch size and scheduler.

    python benchmarks/device_worker.py --pipeline ours --dtypes mixed_bfloat16 --deadline T [--dry-run] ...

The parent starts it and reads its stdout, one message a line: ``@@FACTS {...}`` (the machine as the pipeline's
framework sees it), ``@@ROW {...}`` (one measured row), ``@@UNAVAILABLE {"reason": ...}`` (the pipeline cannot run
here; the process then ends with status 0), ``@@AVAILABLE {...}`` (the answer to ``--probe``: KerasCV imports).

Ours and KerasCV run here on JAX; diffusers' pipeline comes from device_torch.py. Each builder returns a ``Bench``,
and ``measure`` times it the same way whatever the framework: per batch size (ascending) and scheduler, warm-up
calls, then up to ``repeats`` timed calls, none started that would end after ``--deadline``.

TensorFlow is blocked, as on the GPU machine, which has none: in JAX workers by an import hook (``NoTensorFlow``),
in the PyTorch worker by ``sys.modules["tensorflow"] = None`` (see ``block_tensorflow``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from device_check import DRY, FULL, GUIDANCE, PROMPT
from device_record import JAX_PEAK_SCOPE, KERAS_CV_SCHEDULER, Bench, Unavailable, row_shape

def emit(kind, payload):
    print(f"@@{kind} " + json.dumps(payload), flush=True)


class NoTensorFlow:
    """An import hook: ``import tensorflow`` fails as where it is not installed (the GPU machine).

    Not ``sys.modules["tensorflow"] = None`` here: Keras takes "tensorflow" in sys.modules to mean it is loaded
    (``keras.src.utils.backend_utils.in_tf_graph``) and then fails where the GPU machine would not.
    """

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (device_check blocks TensorFlow: the GPU machine "
                                      "has none; --allow-tensorflow lifts this)", name=name)
        return None


def block_tensorflow(pipeline):
    """The PyTorch worker cannot use the hook: torch._dynamo asks ``importlib.util.find_spec("tensorflow")`` at
    import, which the hook makes raise; a None in sys.modules makes find_spec answer None and the import fail, and
    no Keras runs there to misread it."""
    if pipeline == "diffusers":
        sys.modules["tensorflow"] = None
    else:
        sys.meta_path.insert(0, NoTensorFlow())


def importable(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None  # without importing it
    except (ImportError, ValueError):  # NoTensorFlow; a None in sys.modules
        return False


def jax_facts():
    import jax
    import keras
    import numpy as np

    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    return dict(device_platform=device.platform, device_kind=device.device_kind, device_count=jax.device_count(),
                device_memory_bytes_limit=stats.get("bytes_limit"), jax=jax.__version__,
                jaxlib=getattr(__import__("jaxlib"), "__version__", None), keras=keras.__version__,
                keras_backend=keras.backend.backend(), numpy=np.__version__,
                default_matmul_precision=jax.config.jax_default_matmul_precision,
                tensorflow_importable=importable("tensorflow"))


def jax_peak():
    """(peak bytes, reason when None): JAX's device allocator statistics; a CPU device has none."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None, f"no GPU: jax's {device.platform} device reports no memory_stats()"
    return int(stats["peak_bytes_in_use"]), None


def build_ours(setup, dtype):
    import keras

    from imagegen.diffusion import get_scheduler
    from imagegen.stable_diffusion import from_config_name

    keras.utils.set_random_seed(0)
    size = setup["img_size"]
    pipeline = from_config_name(setup["config"], img_height=size, img_width=size, dtype=dtype, progress=False)
    schedulers = {name: get_scheduler(name) for name in setup["steps"]}

    def caller(scheduler, batch):
        pipeline.scheduler = schedulers[scheduler]  # the compiled UNet call and decoder do not depend on it
        return lambda steps: pipeline.text_to_image(PROMPT, batch_size=batch, num_steps=steps,
                                                    unconditional_guidance_scale=GUIDANCE, seed=0)

    return Bench(caller, list(setup["steps"]), "uint8", jax_peak)


def build_keras_cv(setup, dtype):
    """KerasCV's pipeline with random weights: what its lazy properties build, minus the downloads."""
    import keras
    import keras_cv
    from keras_cv.models.stable_diffusion import Decoder, DiffusionModel, SimpleTokenizer, TextEncoder

    from imagegen.clip.tokenizer import vocabulary_path

    _, size, _ = row_shape(setup, "keras_cv")
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(dtype)  # KerasCV follows the global policy (its VAE too, unlike ours)
    pipeline = keras_cv.models.StableDiffusion(img_height=size, img_width=size, jit_compile=True)
    pipeline._text_encoder = TextEncoder(77, download_weights=False)
    pipeline._diffusion_model = DiffusionModel(size, size, 77, download_weights=False)
    pipeline._decoder = Decoder(size, size, download_weights=False)
    pipeline._tokenizer = SimpleTokenizer(vocabulary_path())  # the same BPE file, no download
    for model in (pipeline._text_encoder, pipeline._diffusion_model, pipeline._decoder):
        model.compile(jit_compile=True)

    def caller(scheduler, batch):
        assert scheduler == KERAS_CV_SCHEDULER
        return lambda steps: pipeline.text_to_image(PROMPT, batch_size=batch, num_steps=steps,
                                                    unconditional_guidance_scale=GUIDANCE, seed=0)

    return Bench(caller, [KERAS_CV_SCHEDULER], "uint8", jax_peak)


def import_keras_cv():
    try:
        import keras_cv
    except Exception as error:  # noqa: BLE001 - the reason is the result
        reason = f"{type(error).__name__}: {error}"
        if getattr(error, "name", None) == "keras_cv":
            reason += (" (not carried to the GPU machine: KerasCV 0.9.0 imports TensorFlow when imported, and "
                       "TensorFlow, over 1 GB installed, is far over the 64 MiB of wheels that may travel; see "
                       "benchmarks/wheels.txt)")
        raise Unavailable(reason) from error
    return keras_cv.__version__


def load(args):
    """(facts, build(setup, dtype) -> Bench) for ``args.pipeline``; raises Unavailable."""
    if args.pipeline == "diffusers":
        import device_torch

        return device_torch.load(dry_run=args.dry_run, allow_cpu=args.allow_cpu)
    version = import_keras_cv() if args.pipeline == "keras_cv" else None
    if args.probe:
        return dict(keras_cv=version), None
    facts = jax_facts()
    if version:
        facts["keras_cv"] = version
    if not args.dry_run and facts["device_platform"] != "gpu" and not args.allow_cpu:
        raise Unavailable(f"no GPU: JAX sees {facts['device_platform']} only (pass --allow-cpu to time SD v1 at "
                          "512x512 on it anyway)", facts)
    return facts, build_ours if args.pipeline == "ours" else build_keras_cv


def timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def measure(bench, setup, pipeline, dtype, deadline, build_s):
    """Emit one @@ROW per (batch, scheduler): warm-ups (compile time), then the timed calls."""
    config, size, _ = row_shape(setup, pipeline)
    for batch in setup["batches"]:
        compile_row = {}
        for scheduler in bench.schedulers:
            steps = setup["steps"][scheduler]
            call = bench.caller(scheduler, batch)
            row = dict(pipeline=pipeline, config=config, img_size=size, dtype=dtype, scheduler=scheduler,
                       steps=steps, batch=batch, build_s=round(build_s, 3))
            bench.reset_peak()
            images, first = timed(call, setup["warmup_steps"])  # compiles (for this batch: the first scheduler)
            second = timed(call, setup["warmup_steps"])[1] if not compile_row else first
            if tuple(images.shape) != (batch, size, size, 3) or str(images.dtype) != bench.image_dtype:
                raise RuntimeError(f"unexpected images {images.shape} {images.dtype}")
            if not compile_row:
                compile_row = dict(warmup_first_s=first, warmup_second_s=second, compile_s=max(first - second, 0.0))
            row.update({key: round(value, 4) for key, value in compile_row.items()})
            # An upper bound of one timed call: the warm-up call's text encoding and decode counted per step.
            estimate = second * steps / setup["warmup_steps"]
            calls = []
            for _ in range(setup["repeats"]):
                if time.time() + estimate > deadline:
                    break
                calls.append(timed(call, steps)[1])
            if calls:
                best = min(calls)
                row.update(status="ok", seconds_per_call=round(best, 5), seconds_per_image=round(best / batch, 5),
                           timed_calls_s=[round(c, 5) for c in calls], repeats=len(calls))
            else:
                row.update(status=f"skipped: one call (~{estimate:.0f} s) would end after the worker's deadline",
                           seconds_per_call=None, seconds_per_image=None, timed_calls_s=[], repeats=0)
            peak, reason = bench.peak()
            row.update(peak_bytes=peak, peak_gib=None if peak is None else round(peak / 2**30, 3), peak_reason=reason,
                       peak_scope=bench.peak_scope,
                       host_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
            emit("ROW", row)


def worker(args):
    if not args.allow_tensorflow:
        block_tensorflow(args.pipeline)
    setup = DRY if args.dry_run else FULL
    try:
        facts, build = load(args)
    except Unavailable as error:
        if error.facts:
            emit("FACTS", error.facts)
        emit("UNAVAILABLE", dict(reason=str(error)))
        return 0
    if args.probe:
        emit("AVAILABLE", facts)
        return 0
    emit("FACTS", facts)
    for dtype in args.dtypes.split(","):
        bench, build_s = timed(build, setup, dtype)
        if bench.facts:
            emit("FACTS", bench.facts)
        measure(bench, setup, args.pipeline, dtype, args.deadline, build_s)
        del bench
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", choices=("ours", "keras_cv", "diffusers"), required=True)
    parser.add_argument("--dtypes", required=True, help="comma-separated, measured in this order")
    parser.add_argument("--deadline", type=float, required=True, help="time.time() after which no call starts")
    for flag in ("--dry-run", "--allow-tensorflow", "--allow-cpu", "--probe"):
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return worker(args)


if __name__ == "__main__":
    sys.exit(main())
