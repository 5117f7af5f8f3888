"""benchmarks/device_check.sh --dry-run: the GPU benchmark's code path on the CPU (tiny config), and its JSON schema.

The script forces the JAX backend itself (this suite's default is TensorFlow) and blocks TensorFlow in its
workers, as on the GPU machine; KerasCV 0.9.0 cannot be imported without TensorFlow, so its rows must say
"unavailable: ..." and no ratio to it may appear. diffusers (PyTorch on the CPU here) must give every row of ours
a ratio. About 1-1.5 minutes on 2 cores; the other tests here take seconds.
"""

import json
import math
import os
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
TOP_KEYS = {"schema", "mode", "settings", "machine", "rows", "diffusers", "keras_cv", "wall_s", "complete"}
MACHINE_KEYS = {"date_utc", "python", "platform", "device_platform", "device_kind", "device_count", "jax", "jaxlib",
                "keras", "keras_backend", "tensorflow_importable", "nvidia_smi"}
ROW_KEYS = {"pipeline", "config", "img_size", "dtype", "scheduler", "steps", "batch", "status", "seconds_per_image",
            "seconds_per_call", "timed_calls_s", "repeats", "warmup_first_s", "warmup_second_s", "compile_s", "build_s",
            "peak_bytes", "peak_gib", "peak_scope", "peak_reason", "host_peak_rss_bytes", "vs_keras_cv", "vs_diffusers"}
DIFFUSERS_KEYS = {"torch", "diffusers", "transformers", "device_platform", "torch_num_threads", "attention_processors"}


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_device_check_dry_run(tmp_path):
    output = tmp_path / "x.json"
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(KERAS_BACKEND="jax", PYTHON=sys.executable)
    command = ["bash", str(BENCHMARKS / "device_check.sh"), "--dry-run", "--output", str(output)]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads(output.read_text())

    assert TOP_KEYS <= set(record)
    assert record["schema"] == "imagegen.device_check/1" and record["mode"] == "dry-run" and record["complete"]
    assert _positive(record["wall_s"])
    assert MACHINE_KEYS <= set(record["machine"])
    machine = record["machine"]
    assert machine["keras_backend"] == "jax" and machine["device_platform"] == "cpu"
    assert machine["tensorflow_importable"] is False  # blocked, as on the GPU machine
    settings = record["settings"]
    assert settings["config"] == "tiny" and settings["img_size"] == 64

    rows = {(row["dtype"], row["scheduler"], row["batch"]): row for row in record["rows"]}
    assert set(rows) == set(product(("float32", "mixed_bfloat16"), ("ddim", "dpm++2m"), (1, 2)))
    assert len(record["rows"]) == len(rows)
    for (dtype, scheduler, batch), row in rows.items():
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["pipeline"] == "ours" and row["status"] == "ok", row
        assert row["steps"] == settings["steps"][scheduler]
        assert _positive(row["seconds_per_image"]) and _positive(row["seconds_per_call"]) and row["repeats"] >= 1
        assert math.isclose(row["seconds_per_call"], row["seconds_per_image"] * batch, rel_tol=1e-3)
        assert all(_positive(t) for t in row["timed_calls_s"]) and len(row["timed_calls_s"]) == row["repeats"]
        assert _positive(row["warmup_first_s"]) and _positive(row["warmup_second_s"]) and _positive(row["build_s"])
        assert math.isfinite(row["compile_s"]) and row["compile_s"] >= 0
        assert row["peak_bytes"] is None and row["peak_reason"].startswith("no GPU")  # a CPU has no device stats
        assert _positive(row["host_peak_rss_bytes"])
        vs = row["vs_diffusers"]  # half precision against diffusers' bfloat16 here (float16 on a GPU)
        assert isinstance(vs, dict), vs
        assert vs["diffusers_dtype"] == ("float32" if dtype == "float32" else "bfloat16")
        assert _positive(vs["ratio_ours_over_diffusers"]) and _positive(vs["diffusers_seconds_per_image"])
        ratio = row["seconds_per_image"] / vs["diffusers_seconds_per_image"]
        assert math.isclose(vs["ratio_ours_over_diffusers"], ratio, rel_tol=1e-3)
        if scheduler == "ddim":  # no made-up ratio: KerasCV cannot run here (no TensorFlow)
            assert isinstance(row["vs_keras_cv"], str) and row["vs_keras_cv"].startswith("unavailable: ")
        else:
            assert row["vs_keras_cv"].startswith("n/a: ")

    keras_cv = record["keras_cv"]
    assert keras_cv["status"].startswith("unavailable: "), keras_cv["status"]
    assert {(row["dtype"], row["batch"]) for row in keras_cv["rows"]} == set(product(("float32", "mixed_bfloat16"),
                                                                                      (1, 2)))
    for row in keras_cv["rows"]:
        assert ROW_KEYS <= set(row) and row["scheduler"] == "ddim" and row["status"] == keras_cv["status"]
        assert row["seconds_per_image"] is None

    diffusers = record["diffusers"]
    assert diffusers["status"] == "ok" and diffusers["complete"], diffusers["status"]
    assert DIFFUSERS_KEYS <= set(diffusers["machine"]) and diffusers["machine"]["device_platform"] == "cpu"
    theirs = {(row["dtype"], row["scheduler"], row["batch"]): row for row in diffusers["rows"]}
    assert set(theirs) == set(product(("bfloat16", "float32"), ("ddim", "dpm++2m"), (1, 2)))
    assert len(diffusers["rows"]) == len(theirs)
    for (dtype, scheduler, batch), row in theirs.items():
        assert ROW_KEYS <= set(row) and row["pipeline"] == "diffusers" and row["status"] == "ok", row
        assert (row["config"], row["img_size"], row["steps"]) == ("tiny", 64, settings["steps"][scheduler])
        assert _positive(row["seconds_per_image"]) and _positive(row["seconds_per_call"]) and row["repeats"] >= 1
        assert all(_positive(t) for t in row["timed_calls_s"]) and _positive(row["build_s"])
        assert row["peak_bytes"] is None and row["peak_reason"].startswith("no GPU")


def _benchmarks_module(name):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return __import__(name)


def test_files_stay_short():  # the project's convention: every code file 300 lines or fewer
    for path in [*BENCHMARKS.glob("device_*.py"), BENCHMARKS / "device_check.sh", Path(__file__)]:
        assert len(path.read_text().splitlines()) <= 300, path


def test_diffusers_scheduler_settings_are_sd15s():
    pytest.importorskip("keras")
    from imagegen.stable_diffusion.diffusers import SD15_SCHEDULER

    assert _benchmarks_module("device_torch").SD15_SCHEDULER == SD15_SCHEDULER


def test_a_machine_without_diffusers_records_unavailable(tmp_path):
    """The worker reports why (no crash), and the parent turns that into each ratio of ours."""
    worker = BENCHMARKS / "device_worker.py"
    code = ("import runpy, sys; sys.modules['diffusers'] = None; "
            f"sys.argv = [{str(worker)!r}, '--pipeline', 'diffusers', '--dtypes', 'float16', '--deadline', '0']; "
            f"runpy.run_path({str(worker)!r}, run_name='__main__')")
    env = dict(os.environ, PYTHONPATH=f"{BENCHMARKS}{os.pathsep}{ROOT / 'src'}")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    messages = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    assert len(messages) == 1 and messages[0].startswith("@@UNAVAILABLE "), result.stdout
    reason = json.loads(messages[0].partition(" ")[2])["reason"]
    assert "diffusers" in reason and "wheels.txt" in reason

    check, record_module = _benchmarks_module("device_check"), _benchmarks_module("device_record")
    record = record_module.new_record(True, check.DRY, {}, check.PROMPT, check.GUIDANCE)
    record["diffusers"]["status"] = "unavailable: " + reason
    for row in record["rows"]:
        row.update(status="ok", seconds_per_image=1.0)
    record_module.finish(record)
    assert all(row["vs_diffusers"] == "unavailable: " + reason for row in record["rows"])
    record["diffusers"]["status"] = "ok"  # available, but one reference row skipped: says so, no number
    for row in record["diffusers"]["rows"]:
        row.update(status="ok", seconds_per_image=0.5)
    record["diffusers"]["rows"][0]["status"] = "skipped: test"
    record_module.finish(record)
    first = record["rows"][0]  # mixed_bfloat16: the bfloat16 reference
    assert first["vs_diffusers"].startswith("unavailable: ours ok, diffusers bfloat16 skipped"), first["vs_diffusers"]
    assert record["rows"][-1]["vs_diffusers"]["ratio_ours_over_diffusers"] == 2.0
