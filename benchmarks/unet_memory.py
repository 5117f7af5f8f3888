"""Device memory of SD v1's guided UNet call, estimated without a GPU (XLA's buffer assignment on the CPU).

    python benchmarks/unet_memory.py                 # sd-v1: batch 1, 4, 8 in three precisions, ~8 min on 2 cores
    python benchmarks/unet_memory.py --dry-run       # tiny config, well under a minute (the tests run this)

For each configuration the pipeline's guided call (one UNet call on the doubled
batch: latents (2N, 64, 64, 4), timesteps (2N,), context (2N, 77, 768), all
float32 as the pipeline passes them) is compiled as the pipeline compiles it on
JAX: ``jax.jit`` over ``stateless_call`` with the weights as arguments. The
inputs and weights are abstract (``jax.ShapeDtypeStruct``) and the model is
built inside a ``keras.StatelessScope``, so no weight is ever allocated.
``compiled.memory_analysis()`` then gives XLA's buffer sizes:

    peak = arguments (weights + inputs) + outputs + temporaries - aliased

the memory the call needs on the device while it runs. "float16" is the
pipeline's ``dtype="mixed_float16"`` (float32 weights, float16 compute),
"float16-weights" a UNet built in float16 outright, "float32" the default. Each
row is measured with the memory-efficient attention (``QUERY_CHUNK_SIZE``, or
``--chunk``; ``--sweep`` adds chunk sizes at the largest batch) and without it
(Keras's ``dot_product_attention``, as before; in float16, which XLA:CPU cannot
lower that way, the same formula in one chunk). The VAE decoder (float32) is
measured the same way at 512x512, batch N, and each row's "pipeline peak" is the
larger of the two steps with every module's weights on the device.

Limits (also written under the table): XLA:CPU's passes, fusions and schedule
are not the GPU's; cuDNN/cuBLAS workspaces, the CUDA context and the allocator's
fragmentation are not counted; JAX on a GPU preallocates 75% of its memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Closer to XLA:GPU's buffers: no concurrency-first schedule (it runs independent ops side by side, all their
# buffers live) and no YNNPACK fusions (they fuse a dot with the softmax after it; on the GPU the dot's output
# is materialised). LLVM's optimisation level changes the machine code, not the buffers: compile faster.
XLA_CPU_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false --xla_cpu_experimental_ynn_fusion_type= "
                 "--xla_backend_optimization_level=0")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_CPU_FLAGS).strip()

GB = 1e9
RESULTS = Path(__file__).parent / "results"
FULL = dict(config="sd-v1", latent=64, context_length=77, batches=(1, 4, 8),
            dtypes=("float16", "float16-weights", "float32"), chunk=None, sweep=(256, 512, 2048))
DRY = dict(config="tiny", latent=32, context_length=16, batches=(1, 2), dtypes=("float16", "float32"), chunk=128,
           sweep=())
# "float16" is the pipeline's mixed precision; "float16-weights" builds the UNet in float16 outright (not a
# pipeline option: it shows what casting the weights would save).
POLICIES = {"float16": "mixed_float16", "float16-weights": "float16", "float32": "float32"}


def build(config, policy):
    """(UNet, Decoder, other modules) of a configuration, built without allocating their weights."""
    import keras

    from imagegen.clip import TextEncoder
    from imagegen.stable_diffusion import autoencoder, unet as unet_module
    from imagegen.keras_common import dtype_policy_scope
    from imagegen.stable_diffusion.presets import CONFIGS
    from imagegen.stable_diffusion.unet import UNet
    from imagegen.stable_diffusion.autoencoder import Decoder, Encoder

    spec = CONFIGS[config]
    with keras.StatelessScope(), dtype_policy_scope(policy):
        unet = UNet(**{**unet_module.CONFIGS[spec["unet"]], "context_dim": spec["text"]["width"]})
        text_encoder = TextEncoder(**spec["text"])
    with keras.StatelessScope(), dtype_policy_scope("float32"):
        decoder = Decoder(**autoencoder.CONFIGS[spec["vae"]])
        image_encoder = Encoder(**autoencoder.CONFIGS[spec["vae"]])
    return unet, decoder, (text_encoder, image_encoder)


def weight_bytes(*models):
    import numpy as np

    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for model in models for v in model.variables)


def memory(model, *inputs):
    """XLA's memory analysis of ``model(inputs)`` compiled as the pipeline does on JAX (abstract inputs)."""
    import jax

    def abstract(variables):
        return [jax.ShapeDtypeStruct(tuple(v.shape), v.dtype) for v in variables]

    def stateless(trainable, non_trainable, *inputs):
        outputs, _ = model.stateless_call(trainable, non_trainable, list(inputs) if len(inputs) > 1 else inputs[0],
                                          training=False)
        return outputs

    start = time.perf_counter()
    compiled = jax.jit(stateless).lower(abstract(model.trainable_variables), abstract(model.non_trainable_variables),
                                        *inputs).compile()
    analysis = compiled.memory_analysis()
    row = dict(arguments=analysis.argument_size_in_bytes, outputs=analysis.output_size_in_bytes,
               temporaries=analysis.temp_size_in_bytes, aliased=analysis.alias_size_in_bytes)
    row["peak"] = row["arguments"] + row["outputs"] + row["temporaries"] - row["aliased"]
    row["compile_s"] = round(time.perf_counter() - start, 1)
    return row


@contextlib.contextmanager
def attention_switch(chunk):
    """The UNet's attention chunked by ``chunk`` queries, or (0) never chunked.

    Unchunked attention is Keras's ``dot_product_attention`` (the code before the
    chunking) in float32; in float16, XLA:CPU cannot lower it (its float16 x float16
    -> float32 dot is GPU-only), so it runs as one chunk of all the queries: float32
    scores for all n x m, as Keras's attention holds on the GPU.
    """
    import keras

    from imagegen.diffusion import attention as module

    original = module.attention

    def patched(query, key, value, query_chunk_size=None):
        if chunk and query.shape[1] > chunk:
            return original(query, key, value, chunk)
        if keras.backend.standardize_dtype(query.dtype) == "float32":
            return keras.ops.dot_product_attention(query, key, value)
        return module._attend(query, key, value)

    module.attention = patched
    try:
        yield
    finally:
        module.attention = original


def run(setup, decoder_too=True, log=print):
    """UNet rows (each precision x batch x attention) and decoder rows (float32, each batch).

    A UNet row's ``pipeline`` is the larger of its two steps with every module's weights on the
    device: the guided UNet call, and the decoder's call on the batch (if measured).
    """
    import jax

    from imagegen.diffusion import attention

    chunk = setup["chunk"] or attention.QUERY_CHUNK_SIZE
    f32 = "float32"
    rows, decoder_rows = [], []
    for precision in setup["dtypes"]:
        unet, decoder, others = build(setup["config"], POLICIES[precision])
        if decoder_too and not decoder_rows:  # the decoder is float32 whatever the policy: measure it once
            for batch in setup["batches"]:
                row = memory(decoder, jax.ShapeDtypeStruct((batch, setup["latent"], setup["latent"], 4), f32))
                row.update(batch=batch)
                decoder_rows.append(row)
                log(f"decoder batch {batch}: peak {row['peak'] / GB:.2f} GB ({row['compile_s']} s)")
        decoder_peaks = {row["batch"]: row["peak"] for row in decoder_rows}
        all_weights = weight_bytes(unet, decoder, *others)
        for batch in setup["batches"]:
            guided = 2 * batch
            inputs = (jax.ShapeDtypeStruct((guided, setup["latent"], setup["latent"], 4), f32),
                      jax.ShapeDtypeStruct((guided,), f32),
                      jax.ShapeDtypeStruct((guided, setup["context_length"], unet.config["context_dim"]), f32))
            sweep = setup["sweep"] if (batch, precision) == (max(setup["batches"]), setup["dtypes"][0]) else ()
            for size in (*sorted({chunk, *sweep}), 0):
                with attention_switch(size):
                    row = memory(unet, *inputs)
                label = f"chunked {size}" if size else ("full (Keras)" if precision == f32 else "full (one chunk)")
                other_weights = all_weights - weight_bytes(unet)
                decoder_step = decoder_peaks[batch] - weight_bytes(decoder) + all_weights if decoder_peaks else 0
                row.update(precision=precision, batch=batch, unet_batch=guided, attention=label, chunk=size,
                           other_weights=other_weights, with_other_weights=row["peak"] + other_weights,
                           decoder_step=decoder_step, pipeline=max(row["peak"] + other_weights, decoder_step))
                rows.append(row)
                log(_row_line(row))
        del unet, decoder, others
    return rows, decoder_rows


def _row_line(row):
    return (f"{row['precision']} batch {row['batch']} ({row['attention']}): peak {row['peak'] / GB:.2f} GB, "
            f"temp {row['temporaries'] / GB:.2f} GB ({row['compile_s']} s)")


def markdown(setup, rows, decoder_rows, total_s):
    size = setup["latent"] * 8
    lines = [
        f"# {setup['config']} UNet: device memory of one guided call ({setup['latent']}x{setup['latent']} latents, "
        f"{size}x{size} images)",
        "",
        "`python benchmarks/unet_memory.py` (JAX, XLA:CPU, `jax.jit(stateless_call).lower(...).compile()"
        ".memory_analysis()`, abstract weights and inputs). GB = 10^9 bytes. peak = arguments (weights + inputs) "
        "+ outputs + temporaries - aliased. \"+ other weights\" adds the text encoder's and both VAE halves' "
        "weights, which stay on the device during the loop. float16 = the pipeline's `dtype=\"mixed_float16\"` "
        "(float32 weights, float16 compute); float16-weights = the UNet built in float16 outright (not a pipeline "
        "option: what casting its weights would save). batch N images = a UNet batch of 2N (classifier-free "
        "guidance). chunked C = this change (queries in chunks of at most C, one chunk at a time); full (Keras) = "
        "Keras's `dot_product_attention`, the code before it; full (one chunk) = the same formula unchunked, where "
        "XLA:CPU cannot lower Keras's attention in float16 (float32 scores for all queries, as Keras's attention "
        "holds on the GPU).",
        "",
        "| precision | batch (UNet batch) | attention | arguments | temporaries | UNet call peak | + other weights |"
        + (" pipeline peak |" if decoder_rows else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if decoder_rows else ""),
    ]
    for row in rows:
        lines.append(f"| {row['precision']} | {row['batch']} ({row['unet_batch']}) | {row['attention']} | "
                     f"{row['arguments'] / GB:.2f} GB | {row['temporaries'] / GB:.2f} GB | {row['peak'] / GB:.2f} GB | "
                     f"{row['with_other_weights'] / GB:.2f} GB |" + (f" {row['pipeline'] / GB:.2f} GB |" if decoder_rows
                                                                    else ""))
    if decoder_rows:
        lines += ["", "pipeline peak = the larger of the UNet step (\"+ other weights\") and the decoder step: the "
                  f"decoder's call on the batch ({size}x{size}, float32, all at once as the pipeline decodes) plus the "
                  "weights of the UNet (in that row's precision), the text encoder and the image encoder.",
                  "", "VAE decoder alone (float32, its attention unchanged: Keras's), measured the same way:", "",
                  "| batch | arguments | temporaries | decoder call peak |", "|---|---|---|---|"]
        for row in decoder_rows:
            lines.append(f"| {row['batch']} | {row['arguments'] / GB:.2f} GB | {row['temporaries'] / GB:.2f} GB | "
                         f"{row['peak'] / GB:.2f} GB |")
    else:
        lines += ["", "The VAE decoder is not counted here."]
    lines += ["", "Limits: XLA:CPU's passes, fusions and schedule are not the GPU's. The script turns off XLA:CPU's "
              "concurrency-first scheduler and its YNNPACK fusions (which fuse a dot with the softmax after it, so "
              "the full score matrix never shows), to come closer to XLA:GPU, where a dot's output is materialised; "
              "the chunks run in a loop, one after the other, on any backend. Not counted: cuDNN/cuBLAS workspaces, "
              "the CUDA context (about 0.3-0.5 GB), the allocator's fragmentation, and Keras's own attention on the "
              "GPU where it holds more than the one-chunk formula. JAX on a GPU preallocates 75% of the device by "
              "default (`XLA_PYTHON_CLIENT_MEM_FRACTION`): about 11 GB of a 15 GB T4. Treat the numbers as lower "
              "bounds and leave 1-2 GB of headroom.",
              "", f"Compile time on this machine: {total_s / 60:.1f} min in all."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the tiny config: a few seconds, for the tests")
    parser.add_argument("--batches", type=int, nargs="+", help="images per call (default 1 4 8; dry run 1 2)")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(POLICIES), help="default: all three")
    parser.add_argument("--chunk", type=int, help="queries per chunk (default: QUERY_CHUNK_SIZE; dry run 128)")
    parser.add_argument("--sweep", type=int, nargs="*", help="more chunk sizes, measured at the largest batch in the "
                        "first precision (default 256 512 2048; dry run none)")
    parser.add_argument("--no-decoder", action="store_true", help="skip the VAE decoder")
    parser.add_argument("--output", type=Path, help="folder for unet_memory.md/.json (default: benchmarks/results; "
                        "a dry run writes only where told)")
    args = parser.parse_args(argv)
    setup = dict(DRY if args.dry_run else FULL)
    for key in ("batches", "dtypes", "chunk", "sweep"):
        if getattr(args, key) is not None:
            setup[key] = getattr(args, key)
    start = time.perf_counter()
    rows, decoder_rows = run(setup, decoder_too=not args.no_decoder,
                             log=lambda line: print(line, flush=True))
    total = time.perf_counter() - start
    table = markdown(setup, rows, decoder_rows, total)
    print(table)
    output = args.output or (None if args.dry_run else RESULTS)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "unet_memory.md").write_text(table)
        record = dict(setup={k: list(v) if isinstance(v, tuple) else v for k, v in setup.items()},
                      unet=rows, decoder=decoder_rows, total_s=round(total, 1), gb=GB)
        (output / "unet_memory.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
