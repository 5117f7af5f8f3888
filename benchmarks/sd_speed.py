"""Stable Diffusion speed: our pipeline against KerasCV's, same sizes, steps and architecture.

    python benchmarks/sd_speed.py                          # CPU: 256x256, 5 steps
    KERAS_BACKEND=jax python benchmarks/sd_speed.py --size 512 --steps 50   # GPU

Each pipeline runs in its own process (so each peak memory is its own), with
random weights of the full SD v1 architecture (860M-parameter UNet); speed
does not depend on the weights' values, and the parity tests show both compute
the same images. After one warm-up call (compilation), it times
``text_to_image(prompt, batch_size=1, num_steps)`` ``--repeats`` times and
prints the best, the peak memory (process RSS on CPU, device peak on GPU) and
the ratio KerasCV / ours. KerasCV runs as it ships: ``jit_compile=True``, two
UNet calls per step, the text encoder run for both prompts on every call.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PROMPT = "a photograph of an astronaut riding a horse"


def build(which, size):
    import keras

    keras.utils.set_random_seed(0)
    if which == "ours":
        from imagegen.stable_diffusion import from_config_name

        return from_config_name("sd-v1", img_height=size, img_width=size)
    import keras_cv
    from keras_cv.models.stable_diffusion import Decoder, DiffusionModel, TextEncoder

    pipeline = keras_cv.models.StableDiffusion(img_height=size, img_width=size, jit_compile=True)
    # What its properties do, minus the download: build, then compile with XLA.
    pipeline._text_encoder = TextEncoder(77, download_weights=False)
    pipeline._diffusion_model = DiffusionModel(size, size, 77, download_weights=False)
    pipeline._decoder = Decoder(size, size, download_weights=False)
    from imagegen.clip.tokenizer import vocabulary_path

    pipeline._tokenizer = keras_cv.models.stable_diffusion.SimpleTokenizer(vocabulary_path())  # same file, no download
    for model in (pipeline._text_encoder, pipeline._diffusion_model, pipeline._decoder):
        model.compile(jit_compile=True)
    return pipeline


def peak_memory_mb():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            return device.memory_stats()["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(which, size, steps, repeats):
    import keras

    start = time.perf_counter()
    pipeline = build(which, size)
    built = time.perf_counter() - start
    start = time.perf_counter()
    pipeline.text_to_image(PROMPT, num_steps=steps, seed=0)  # warm-up: compiles
    warm = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        images = pipeline.text_to_image(PROMPT, num_steps=steps, seed=0)
        times.append(time.perf_counter() - start)
    assert images.shape == (1, size, size, 3) and images.dtype.name == "uint8"
    return {"which": which, "seconds": min(times), "all": times, "build_s": built, "first_call_s": warm,
            "peak_mb": peak_memory_mb(), "backend": keras.backend.backend()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("ours", "keras_cv"), help="run one pipeline here and print JSON (internal)")
    args = parser.parse_args()
    if args.only:
        print("RESULT " + json.dumps(run_one(args.only, args.size, args.steps, args.repeats)), flush=True)
        return

    results = {}
    for which in ("keras_cv", "ours"):
        command = [sys.executable, __file__, "--only", which, "--size", str(args.size), "--steps", str(args.steps),
                   "--repeats", str(args.repeats)]
        output = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode or not lines:
            print(output.stdout[-3000:], output.stderr[-3000:], sep="\n")
            raise SystemExit(f"{which} failed (exit {output.returncode})")
        results[which] = json.loads(lines[-1][len("RESULT "):])
    backend = results["ours"]["backend"]
    print(f"Stable Diffusion v1 architecture, random weights, {args.size}x{args.size}, {args.steps} DDIM steps, "
          f"batch 1, backend {backend}, best of {args.repeats}")
    for which in ("keras_cv", "ours"):
        r = results[which]
        print(f"  {which:>8}: {r['seconds']:6.2f} s/image   peak memory {r['peak_mb']:7.0f} MB   "
              f"(build {r['build_s']:.0f} s, first call {r['first_call_s']:.0f} s, all {[round(t, 2) for t in r['all']]})")
    print(f"  speed-up (KerasCV time / ours): {results['keras_cv']['seconds'] / results['ours']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
