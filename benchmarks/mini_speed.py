"""The mini Stable Diffusion's speed: 4 images of 25 DDIM steps from one prompt (target: 2 s or less on 2 CPU cores).

    python benchmarks/mini_speed.py                 # TensorFlow (default backend)
    KERAS_BACKEND=jax python benchmarks/mini_speed.py

Loads the shipped ``mini`` preset, runs one warm-up call (it compiles the UNet
call and the decoder), then times ``text_to_image(prompt, batch_size=4,
num_steps=25)`` ``--repeats`` times and prints the best and all times, with the
share spent in the UNet calls.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PROMPT = "an astronaut riding a horse"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import keras

    from imagegen.stable_diffusion import from_preset

    start = time.perf_counter()
    sd = from_preset("mini", progress=False)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    sd.text_to_image(PROMPT, batch_size=args.batch, num_steps=args.steps, seed=0)
    warm = time.perf_counter() - start

    unet_seconds = []
    call = sd._unet_call

    def timed(*inputs):  # the UNet call, synchronised so its time is its own
        begin = time.perf_counter()
        out = keras.ops.convert_to_numpy(call(*inputs))
        unet_seconds.append(time.perf_counter() - begin)
        return out

    sd._unet_call = timed
    times = []
    for _ in range(args.repeats):
        unet_seconds.clear()
        start = time.perf_counter()
        images = sd.text_to_image(PROMPT, batch_size=args.batch, num_steps=args.steps, seed=0)
        times.append(time.perf_counter() - start)
        unet_share = sum(unet_seconds) / times[-1]
    assert images.shape == (args.batch, 64, 64, 3)
    print(f"mini Stable Diffusion, {args.batch} images x {args.steps} DDIM steps, 64x64, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPU cores")
    print(f"  best {min(times):.2f} s  (all {[round(t, 2) for t in times]}; load {loaded:.1f} s, first call {warm:.1f} s; "
          f"UNet calls {unet_share:.0%} of the time)")
    print(f"  target 2 s: {'met' if min(times) <= 2.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
