#!/usr/bin/env bash
# Stable Diffusion on one NVIDIA GPU (JAX backend, no TensorFlow, no network): seconds per image, compile time and
# peak memory, ours against diffusers on PyTorch (and KerasCV where TensorFlow exists), written to ONE JSON file.
# benchmarks/device_check.py says what and how (device_worker.py, device_torch.py, device_record.py: the parts).
#
#   bash benchmarks/device_check.sh [--dry-run] [--output FILE] [--budget-s S]
#
# --dry-run: the same code path on the CPU (tiny config, 64x64, 2 steps, batch 1 and 2); the tests run it.
# Default output: $OUT/device_check.json when OUT is set, else benchmarks/results/device_check.json
# (a dry run: benchmarks/results/device_check_dry_run.json).
#
# On the GPU machine (tool `device`, kind nvidia-h200: Python 3.12, jax 0.11.2 with the CUDA 13 plugin, torch
# 2.11, transformers 5.17, huggingface_hub 1.33, numpy, h5py, regex, safetensors, pillow, ... but no Keras,
# KerasCV, diffusers or TensorFlow): Keras, the two packages it needs that the machine lacks, and diffusers travel
# as wheels (benchmarks/wheels.txt, 9.3 MB of the 64 MiB that may travel); our package travels as source in src/.
# Once, here, in the repo root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r benchmarks/wheels.txt
#
# then one call of the tool `run`, which this script fits (budget 450 s, see device_check.py; install ~10 s; a
# worker may overrun its deadline by at most 30 s before it is killed):
#
#   run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=510)
#
# and read device_check.json from the reply's files_at. The wheels are installed (into /tmp/site, never into a
# virtual environment) only where the chosen Python cannot import Keras or diffusers (the GPU machine).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export KERAS_BACKEND=jax  # whatever the caller's backend (the tests default to TensorFlow)
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONUNBUFFERED=1

python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi

has_all='import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("keras", "diffusers")))'
if compgen -G ".whl/*.whl" >/dev/null && ! "$python" -c "$has_all"; then
    echo "device_check.sh: installing the carried wheels into /tmp/site: $(cd .whl && echo *.whl)" >&2
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$root/src"
else
    export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
fi

exec "$python" benchmarks/device_check.py "$@"
