"""Stable Diffusion on one GPU: seconds per image, compile time and peak memory, ours against diffusers and KerasCV.

    bash benchmarks/device_check.sh              # the GPU machine: SD v1 at 512x512, at most 450 s on an H200
    bash benchmarks/device_check.sh --dry-run    # any CPU: the tiny config at 64x64, the same code path (the tests)

This module is the parent: options, the plan of worker processes and their deadlines, the one JSON file.
device_worker.py is what runs in a worker (ours and KerasCV on JAX), device_torch.py the diffusers reference.

What is measured. SD v1's architecture with random weights (speed does not depend on their values), the whole
text -> image call: prompt encoding, the guided UNet call at every step (one call on the doubled batch), the
scheduler update, the VAE decode. Per precision, batch size (1, 8) and scheduler (50 DDIM steps, 25
DPM-Solver++(2M) steps) one row: the best of ``repeats`` timed calls / batch = seconds per image. A warm-up call of
``warmup_steps`` steps compiles for that batch; repeated, it gives the compile time (first - second), shared by
the batch's two schedulers (the compiled calls do not depend on the scheduler).

References. diffusers' StableDiffusionPipeline on PyTorch (device_torch.py), random weights in SD v1's
configuration, float16 (PyTorch's usual half precision) and float32, bfloat16 if time is left: each row of ours
gets ``vs_diffusers`` = ours / diffusers seconds per image (mixed_bfloat16 against float16, else bfloat16).
KerasCV's StableDiffusion (DDIM only) would give ``vs_keras_cv`` on the DDIM rows, but KerasCV 0.9.0 imports
TensorFlow when it is imported (keras_cv/src/version_check.py); the GPU machine has no TensorFlow (over 1 GB, far
above the 64 MiB of wheels that may travel) and every worker blocks it as there. A short first process checks
the import: there, and in the dry run, KerasCV's rows and every ``vs_keras_cv`` say "unavailable: <the error>",
never a number. ``--allow-tensorflow`` lets a machine with TensorFlow time it (KerasCV has no small config: its
dry run builds the 1B-parameter model at 128x128, over 10 minutes on 2 CPU cores, and gives no ratio).

Budget (full mode; H200 figures estimated without a GPU, so deadlines guard them). Ours, per precision: ~25 s to
start, import and build 1.07B parameters, 40-60 s to compile each batch size, then the timed calls, ~12 s in
mixed_bfloat16 and ~45 s in float32 (mostly batch 8: a guided step ~13 TFLOP): ~140 s and ~170 s. diffusers
(eager, nothing to compile): ~20 s to start and build on the GPU, then ~25 s of calls in float16, ~40 s in float32
and ~25 s in bfloat16 (float32 and bfloat16 share a process): ~45 + ~85 s. About 440 s in all against a hard limit
of 450 s, uncertain by tens of seconds (XLA's compile times most), so the plan runs in order of importance: tier 1,
ours mixed_bfloat16 then diffusers float16 (the half-precision ratios, batch 1 then 8, DDIM before DPM); tier 2,
ours float32 then diffusers float32; tier 3, diffusers bfloat16 (after float32 in its process) and KerasCV. Each
worker's deadline keeps ``reserve_s`` for every later worker of its tier or a more important one (the float16 and
float32 diffusers workers: 60 s each); no timed call starts that would end after it (fewer repeats, or the row
says "skipped: ..."), a worker with under ``min_s`` left is not started, one still running ``--grace-s`` (30 s)
after its deadline is killed. The JSON file is rewritten after every row, so a run stopped from outside keeps what
it measured. If it does not all fit, expect the cuts in bfloat16's rows, then float32's batch-8 repeats.

Dry run: the tiny config at 64x64, 2 steps, batch 1 and 2, ours in float32 and mixed_bfloat16 on JAX's CPU
(LLVM optimisation level 0: half the compile time), diffusers in bfloat16 and float32 (float16 convolutions on a
CPU take seconds) on one torch thread; peaks are null ("no GPU"), the host's peak RSS is given instead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from device_record import ROW_KEYS, default_output, finish, new_record, row_key, write

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a photograph of an astronaut riding a horse"
GUIDANCE = 7.5


def _entry(pipeline, dtypes, tier, reserve_s=0.0, min_s=0.0):
    return dict(pipeline=pipeline, dtypes=dtypes, tier=tier, reserve_s=reserve_s, min_s=min_s)


FULL = dict(config="sd-v1", img_size=512, steps={"ddim": 50, "dpm++2m": 25}, batches=[1, 8], repeats=2,
            warmup_steps=2, budget_s=450.0, plan=[
                _entry("ours", ["mixed_bfloat16"], 1), _entry("diffusers", ["float16"], 1, 60, 30),
                _entry("ours", ["float32"], 2, 0, 100), _entry("diffusers", ["float32", "bfloat16"], 2, 60, 30),
                _entry("keras_cv", ["mixed_bfloat16"], 3, 0, 180), _entry("keras_cv", ["float32"], 3, 0, 180)])
DRY = dict(config="tiny", img_size=64, steps={"ddim": 2, "dpm++2m": 2}, batches=[1, 2], repeats=1, warmup_steps=2,
           budget_s=600.0, plan=[
               _entry("ours", ["mixed_bfloat16"], 1), _entry("ours", ["float32"], 2, 20),
               _entry("diffusers", ["bfloat16", "float32"], 1, 20), _entry("keras_cv", ["float32"], 3, 0, 20),
               _entry("keras_cv", ["mixed_bfloat16"], 3, 0, 20)])


def _command(command):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def parent_facts():
    env = ("KERAS_BACKEND", "JAX_PLATFORMS", "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE",
           "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_ALLOCATOR", "PYTHONPATH")
    return dict(date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                hostname=socket.gethostname(), python=sys.version.split()[0], platform=platform.platform(),
                cpu_count=os.cpu_count(), env={k: os.environ.get(k) for k in env},
                nvidia_smi=_command(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                     "--format=csv,noheader"]),
                git_commit=_command(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
                git_dirty=bool(_command(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])))


def run_worker(args, pipeline, dtypes, deadline, on_message, probe=False):
    """Run one worker until it ends or ``deadline`` + grace passes; ``on_message(kind, payload)`` gets its messages.

    Returns None on success, else why it failed (exit status and the end of its stderr).
    """
    command = [sys.executable, str(Path(__file__).with_name("device_worker.py")), "--pipeline", pipeline,
               "--dtypes", ",".join(dtypes), "--deadline", repr(deadline)]
    command += [flag for flag, on in (("--dry-run", args.dry_run), ("--allow-tensorflow", args.allow_tensorflow),
                                      ("--allow-cpu", args.allow_cpu), ("--probe", probe)) if on]
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                         daemon=True).start()
        killed = False
        while True:
            try:
                line = lines.get(timeout=max(deadline + args.grace_s - time.time(), 0.1))
            except queue.Empty:
                process.kill()
                killed = True
                break
            if line is None:
                break
            if line.startswith("@@"):
                kind, _, payload = line[2:].partition(" ")
                on_message(kind, json.loads(payload))
            else:
                sys.stderr.write(f"[{pipeline} {','.join(dtypes)}] {line}")
        returncode = process.wait()
        stderr.seek(0)
        tail = stderr.read()[-1500:]
    sys.stderr.write(tail[-600:])
    if killed:
        return f"failed: killed {args.grace_s:.0f} s after its deadline"
    return f"failed: exit {returncode}: {tail.strip()[-600:]}" if returncode else None


def main_parent(args):
    start = time.time()
    setup = dict(DRY if args.dry_run else FULL)
    setup["budget_s"] = args.budget_s or setup["budget_s"]
    output = args.output or default_output(args.dry_run)
    record = new_record(args.dry_run, setup, parent_facts(), PROMPT, GUIDANCE)
    sections = dict(ours=record, diffusers=record["diffusers"], keras_cv=record["keras_cv"])

    def save():
        record["wall_s"] = round(time.time() - start, 2)
        finish(record)
        write(record, output)

    def mark(pipeline, dtypes, status, only_not_run=False):
        for row in sections[pipeline]["rows"]:
            if row["dtype"] in dtypes and (row["status"] == "not run" or not only_not_run):
                row["status"] = status

    save()
    deadline = start + setup["budget_s"]
    keras_cv = record["keras_cv"]

    def probe_message(kind, payload):
        if kind == "AVAILABLE":
            keras_cv.update(status="ok", version=payload["keras_cv"])
        elif kind == "UNAVAILABLE":
            keras_cv["status"] = "unavailable: " + payload["reason"]

    failure = run_worker(args, "keras_cv", ["float32"], deadline, probe_message, probe=True)  # seconds: import only
    if failure or keras_cv["status"] == "not run":
        keras_cv["status"] = "unavailable: " + (failure or "its import check reported nothing")
    if keras_cv["status"] != "ok":
        mark("keras_cv", {row["dtype"] for row in keras_cv["rows"]}, keras_cv["status"])
    save()

    plan = setup["plan"]
    for index, entry in enumerate(plan):
        pipeline, dtypes, section = entry["pipeline"], entry["dtypes"], sections[entry["pipeline"]]
        if pipeline != "ours" and section["status"].startswith("unavailable"):  # not importable: no retry
            mark(pipeline, dtypes, section["status"])
            save()
            continue
        reserve = sum(later["reserve_s"] for later in plan[index + 1:] if later["tier"] <= entry["tier"])
        worker_deadline = deadline - reserve
        needed = max(entry["min_s"], 1.0)
        if worker_deadline - time.time() < needed:
            mark(pipeline, dtypes, f"skipped: {worker_deadline - time.time():.0f} s left (reserves kept for later "
                                   f"workers of tier {entry['tier']} or higher), under the {needed:.0f} s this "
                                   "worker needs")
            save()
            continue
        print(f"device_check: {pipeline} {','.join(dtypes)} (deadline in {worker_deadline - time.time():.0f} s)",
              file=sys.stderr, flush=True)

        def on_message(kind, payload, pipeline=pipeline, dtypes=dtypes, section=section):
            if kind == "FACTS":
                (record["machine"] if pipeline == "ours" else section.setdefault("machine", {})).update(payload)
                if pipeline != "ours":
                    section["status"] = "ok"
            elif kind == "UNAVAILABLE":
                mark(pipeline, dtypes, "unavailable: " + payload["reason"], only_not_run=True)
                if pipeline != "ours":
                    section["status"] = "unavailable: " + payload["reason"]
            elif kind == "ROW":
                for row in (row for row in section["rows"] if row_key(row) == row_key(payload)):
                    row.update(payload)
                print(f"device_check: {pipeline} {json.dumps({k: payload.get(k) for k in ROW_KEYS[3:12]})}",
                      file=sys.stderr, flush=True)
            save()

        failure = run_worker(args, pipeline, dtypes, worker_deadline, on_message)
        if failure:
            mark(pipeline, dtypes, failure, only_not_run=True)
            if pipeline != "ours" and section["status"] == "not run":
                section["status"] = failure
        save()
    record["complete"] = all(row["status"] == "ok" for row in record["rows"])
    record["diffusers"]["complete"] = all(row["status"] == "ok" for row in record["diffusers"]["rows"])
    save()
    print(f"device_check: wrote {output} in {record['wall_s']:.0f} s; diffusers: {record['diffusers']['status'][:200]}"
          f"; KerasCV: {keras_cv['status'][:200]}", file=sys.stderr)
    for row in record["rows"] + record["diffusers"]["rows"]:
        ratio = row["vs_diffusers"].get("ratio_ours_over_diffusers") if isinstance(row["vs_diffusers"], dict) \
            else (row["vs_diffusers"] or "")[:60]
        result = (f"{row['seconds_per_image']} s/image, compile {row['compile_s']} s, peak {row['peak_gib']} GiB"
                  if row["status"] == "ok" else row["status"][:100])
        print(f"  {row['pipeline']:>9} {row['dtype']:>14} {row['scheduler']:>7} x{row['steps']:<3} batch "
              f"{row['batch']}: {result}{f', ours/diffusers {ratio}' if row['pipeline'] == 'ours' else ''}",
              file=sys.stderr)
    return 0 if record["complete"] else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny config at 64x64, 2 steps, batch 1 and 2, CPU")
    parser.add_argument("--output", type=Path, help="the JSON file (default $OUT/device_check.json when OUT is set, "
                        "else benchmarks/results/device_check.json; a dry run: device_check_dry_run.json)")
    parser.add_argument("--budget-s", type=float, help="hard limit for the whole run (default 450; dry run 600)")
    parser.add_argument("--grace-s", type=float, default=30.0, help="a worker is killed this long after its deadline")
    parser.add_argument("--allow-tensorflow", action="store_true",
                        help="let the workers import TensorFlow (KerasCV needs it; the GPU machine has none)")
    parser.add_argument("--allow-cpu", action="store_true", help="full mode without a GPU (slow)")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported anywhere; the workers inherit it
    if args.dry_run:
        os.environ["JAX_PLATFORMS"] = "cpu"
        # LLVM's optimisation level changes XLA:CPU's machine code, not what runs: the tiny model's build (one
        # small program per initializer shape) and compilations take half the time.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
