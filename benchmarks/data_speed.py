"""Data-side figures: toy-flower and toy-world rendering speed, and how fast full-mode loaders fail offline.

    python benchmarks/data_speed.py

Prints seconds for toy_flowers(10000, 64) and toy_world(10000, 64) (target: under 10 s on 2 cores;
the toy world's first call also draws its sprites and backgrounds, so both the first and the best are printed),
and seconds until each full-mode tfds loader raises OfflineError on an empty
tfds folder (target: under 15 s; tfds alone retries for about 200 s): first
with the network forced off (IMAGEGEN_OFFLINE=1), then with a real probe of
the download hosts, which is what an offline laptop or CI machine sees.
The first loader's time includes importing TensorFlow.
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def best_of(repeats, function):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    from imagegen import data, network

    seconds = best_of(3, lambda: data.toy_flowers(10_000, 64))
    print(f"toy_flowers(10000, 64): {seconds:.2f} s (best of 3; target < 10 s)")
    start = time.perf_counter()
    data.toy_world(10_000, 64, seed=1)
    first = time.perf_counter() - start
    seconds = best_of(3, lambda: data.toy_world(10_000, 64))
    print(f"toy_world(10000, 64): {first:.2f} s the first time (sprites drawn), {seconds:.2f} s best of 3 (target < 10 s)")

    os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp()  # nothing prepared
    for forced, label in (("1", "IMAGEGEN_OFFLINE=1"), ("", "real probe")):
        os.environ["IMAGEGEN_OFFLINE"] = forced
        for loader in (data.digits, data.shoes, data.flowers):
            start = time.perf_counter()
            try:
                loader(mode="full")
            except network.OfflineError:
                outcome = f"OfflineError after {time.perf_counter() - start:.2f} s (target < 15 s)"
            except Exception as error:  # noqa: BLE001 - report whatever happened
                outcome = f"{type(error).__name__} after {time.perf_counter() - start:.2f} s"
            else:
                outcome = "loaded: the network is up or the data is prepared"
            print(f"{label:>18}  {loader.__name__}(mode='full'): {outcome}")


if __name__ == "__main__":
    main()
