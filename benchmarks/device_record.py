"""device_check.py's JSON record: its rows, the ratios of ours to the references, writing it.

The record holds our rows (``rows``), the references' (``diffusers.rows``, ``keras_cv.rows``), each with its
``status``, and is rewritten whole (through a ``.part`` file) after every message from a worker, so that a run
stopped from outside leaves a valid file. ``finish`` derives every ratio from the rows, never from anything else:
a ratio is a number only where both rows are "ok" and of the same config and image size, else a string that says
why not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "imagegen.device_check/1"
KERAS_CV_MIN_SIZE = 128  # KerasCV rounds the image size to a multiple of 128 (64 -> 0)
KERAS_CV_SCHEDULER = "ddim"  # KerasCV's StableDiffusion samples with DDIM only
ROW_KEYS = ("pipeline", "config", "img_size", "dtype", "scheduler", "steps", "batch", "status", "seconds_per_image",
            "seconds_per_call", "timed_calls_s", "repeats", "warmup_first_s", "warmup_second_s", "compile_s",
            "build_s", "peak_bytes", "peak_gib", "peak_scope", "peak_reason", "host_peak_rss_bytes", "vs_keras_cv",
            "vs_diffusers")
HALF = ("float16", "bfloat16")  # diffusers' half precisions, in the order a ratio prefers them


JAX_PEAK_SCOPE = ("the process's peak so far (jax peak_bytes_in_use only grows): one process per pipeline and "
                  "precision, batch sizes in ascending order, so this batch's own peak; the schedulers of a batch "
                  "share its compiled calls and buffers")


class Unavailable(Exception):
    """The pipeline cannot run here; the message says why (it goes into the rows' status), ``facts`` what is here."""

    def __init__(self, reason, facts=None):
        super().__init__(reason)
        self.facts = facts


@dataclass
class Bench:
    """A built pipeline: ``caller(scheduler, batch)`` gives ``call(steps) -> images`` (batch, size, size, 3)."""

    caller: Callable
    schedulers: list
    image_dtype: str  # what a call returns: "uint8" (ours, KerasCV) or "float32" (diffusers, output_type="np")
    peak: Callable  # () -> (peak bytes or None, why None)
    reset_peak: Callable = lambda: None  # called before each row's first call
    peak_scope: str = JAX_PEAK_SCOPE
    facts: dict = None  # more facts, known once built


def row_shape(setup, pipeline):
    """(config, image size, schedulers) a pipeline's rows have."""
    if pipeline == "keras_cv":
        return "sd-v1", max(setup["img_size"], KERAS_CV_MIN_SIZE), [KERAS_CV_SCHEDULER]
    return setup["config"], setup["img_size"], list(setup["steps"])


def expected_rows(setup, pipeline):
    config, size, schedulers = row_shape(setup, pipeline)
    dtypes = [d for entry in setup["plan"] if entry["pipeline"] == pipeline for d in entry["dtypes"]]
    return [dict(pipeline=pipeline, config=config, img_size=size, dtype=dtype, scheduler=scheduler,
                 steps=setup["steps"][scheduler], batch=batch, status="not run")
            for dtype in dtypes for batch in setup["batches"] for scheduler in schedulers]


def row_key(row):
    return (row["dtype"], row["scheduler"], row["batch"])


def _compare(row, reference, theirs, label):
    """Our row against the reference's rows ``theirs`` (dtype -> row): a dict with the ratio, or why there is none."""
    if not reference["status"].startswith("ok"):
        return reference["status"]
    other = next(iter(theirs.values()), None)
    if other is not None and (other["config"], other["img_size"]) != (row["config"], row["img_size"]):
        return (f"n/a: {label} ran {other['config']} at {other['img_size']}x{other['img_size']}, "
                f"ours {row['config']} at {row['img_size']}x{row['img_size']}")
    done = {dtype: r for dtype, r in theirs.items() if r.get("status") == "ok"}
    if not done or row.get("status") != "ok":
        statuses = ", ".join(f"{d} {r.get('status')}" for d, r in theirs.items()) or "no row"
        return f"unavailable: ours {row.get('status')}, {label} {statuses}"
    ratios = {dtype: round(row["seconds_per_image"] / r["seconds_per_image"], 4) for dtype, r in done.items()}
    dtype = next(iter(done))
    return {f"ratio_ours_over_{label}": ratios[dtype], f"{label}_dtype": dtype,
            f"{label}_seconds_per_image": done[dtype]["seconds_per_image"], "ratios_by_dtype": ratios}


def finish(record):
    """Attach the references' ratios to our rows and fill every row's missing keys with None."""
    keras_cv, diffusers = record["keras_cv"], record["diffusers"]
    for row in record["rows"]:
        half = row["dtype"].startswith("mixed_") or row["dtype"] in HALF
        pairs = {d: r for d in (HALF if half else (row["dtype"],)) for r in diffusers["rows"]
                 if row_key(r) == (d, row["scheduler"], row["batch"])}
        row["vs_diffusers"] = _compare(row, diffusers, pairs, "diffusers")
        if row["scheduler"] != KERAS_CV_SCHEDULER:
            row["vs_keras_cv"] = "n/a: KerasCV samples with DDIM only"
            continue
        pairs = {r["dtype"]: r for r in keras_cv["rows"] if row_key(r) == row_key(row)}
        row["vs_keras_cv"] = _compare(row, keras_cv, pairs, "keras_cv")
    for row in record["rows"] + keras_cv["rows"] + diffusers["rows"]:
        for key in ROW_KEYS:
            row.setdefault(key, None)


def write(record, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(path)


def default_output(dry_run):
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "device_check.json"
    return ROOT / "benchmarks" / "results" / ("device_check_dry_run.json" if dry_run else "device_check.json")


def new_record(dry_run, setup, machine, prompt, guidance):
    settings = dict(setup, prompt=prompt, guidance_scale=guidance,
                    seconds="best of the timed calls (seconds_per_call) / batch",
                    whole_call="prompt encoding, guided UNet call per step, scheduler update, VAE decode",
                    ratio="vs_diffusers.ratio_ours_over_diffusers, vs_keras_cv.ratio_ours_over_keras_cv: ours / "
                          "theirs seconds per image (below 1: ours is faster)")
    return dict(schema=SCHEMA, mode="dry-run" if dry_run else "full", settings=settings,
                machine=machine, rows=expected_rows(setup, "ours"),
                diffusers=dict(status="not run", rows=expected_rows(setup, "diffusers"), machine={},
                               note="StableDiffusionPipeline on PyTorch, random weights, whole pipeline in the "
                                    "row's dtype (ours mixed_bfloat16 keeps the VAE float32); device_torch.py"),
                keras_cv=dict(status="not run", rows=expected_rows(setup, "keras_cv"),
                              note="DDIM only; random weights; follows the global dtype policy, VAE included"),
                wall_s=None, complete=False)
