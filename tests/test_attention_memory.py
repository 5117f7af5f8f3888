"""Memory-efficient attention: queries in chunks give Keras's attention's results, eagerly and compiled.

The suite runs on TensorFlow and again with KERAS_BACKEND=jax (on the CPU, both take the chunked path).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from imagegen.diffusion import attention as attention_module
from imagegen.diffusion.attention import CrossAttention, attention

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def chunk_calls(monkeypatch):
    """Shapes of the query chunks that went through ``_attend`` (traced or eager)."""
    calls, original = [], attention_module._attend

    def spy(query, key, value):
        calls.append(tuple(query.shape))
        return original(query, key, value)

    monkeypatch.setattr(attention_module, "_attend", spy)
    return calls


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float32")


def _random(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


@pytest.mark.parametrize("length, chunk", [(300, 64), (256, 64), (97, 32)])  # 5 chunks of 60; 4 of 64; 4 of 25 (pad 3)
@pytest.mark.parametrize("context_length", [None, 7])  # self-attention, cross-attention to 7 tokens
def test_chunked_attention_equals_keras_attention(length, chunk, context_length, chunk_calls):
    # Head size 10: 1/sqrt(10) is not a power of two, so where the scale is applied shows in round-off.
    # Queries scaled by 3: peaked softmaxes, where a wrong row or column would show.
    query = _random((2, length, 3, 10), 0, scale=3.0)
    key = _random((2, context_length or length, 3, 10), 1)
    value = _random((2, context_length or length, 3, 10), 2)
    expected = _numpy(ops.dot_product_attention(query, key, value))
    got = _numpy(attention(query, key, value, query_chunk_size=chunk))
    assert chunk_calls and max(shape[1] for shape in chunk_calls) <= chunk  # the chunked path ran
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5, np.abs(got - expected).max()


@pytest.mark.parametrize("cross", [False, True])
def test_cross_attention_layer_chunked_equals_unchunked(cross, chunk_calls):
    x = _random((2, 300, 24), 3)
    context = _random((2, 7, 16), 4) if cross else None
    chunked = CrossAttention(3, 10, query_chunk_size=64)
    full = CrossAttention(3, 10, query_chunk_size=0)
    chunked(x, context), full(x, context)  # build
    full.set_weights(chunked.get_weights())
    chunk_calls.clear()
    got, expected = _numpy(chunked(x, context)), _numpy(full(x, context))
    assert chunk_calls
    assert np.abs(expected).max() > 0.1  # not trivially small
    assert np.abs(got - expected).max() < 1e-5, np.abs(got - expected).max()


def test_short_sequences_keep_keras_attention(chunk_calls):
    """Up to the chunk size nothing changes: the small models run exactly as before."""
    query = _random((2, 64, 2, 8), 5)
    got = _numpy(attention(query, query, query, query_chunk_size=64))
    np.testing.assert_array_equal(got, _numpy(ops.dot_product_attention(query, query, query)))
    assert not chunk_calls
    assert attention_module.QUERY_CHUNK_SIZE >= 1024  # SD at 256x256 (32x32 latents) is not chunked


def test_half_precision_chunks_stay_close_and_half():
    query, key, value = _random((1, 200, 2, 10), 6), _random((1, 200, 2, 10), 7), _random((1, 200, 2, 10), 8)
    expected = _numpy(ops.dot_product_attention(query, key, value))
    half = attention(*(ops.cast(t, "float16") for t in (query, key, value)), query_chunk_size=64)
    assert keras.backend.standardize_dtype(half.dtype) == "float16"
    assert np.abs(_numpy(half) - expected).max() < 1e-2


def test_config_and_weight_names_unchanged():
    layer = CrossAttention(2, 8, query_chunk_size=256, name="attn1")
    layer(_random((1, 4, 16), 9))
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "to_q/kernel", "to_k/kernel", "to_v/kernel", "out_proj/kernel", "out_proj/bias"]
    config = layer.get_config()
    assert {"num_heads", "head_size", "query_chunk_size", "name"} <= set(config)
    assert CrossAttention.from_config(config).query_chunk_size == 256
    old = {k: v for k, v in config.items() if k != "query_chunk_size"}  # a config saved before this option
    assert CrossAttention.from_config(old).query_chunk_size is None


def test_compiled_unet_chunked_equals_unchunked(monkeypatch, chunk_calls):
    """The pipeline's compiled UNet call (XLA on TensorFlow, jax.jit on JAX), tiny config at 32x32 latents."""
    from imagegen.stable_diffusion.compiled import compile_function
    from imagegen.stable_diffusion.unet import UNet

    keras.utils.set_random_seed(0)
    unet = UNet.from_config_name("tiny")
    inputs = (_random((2, 32, 32, 4), 10), np.array([10.0, 500.0], "float32"), _random((2, 5, 32), 11))
    outputs = {}
    for chunk in (0, 256):  # read when compile_function's function is traced, at its first call
        monkeypatch.setattr(attention_module, "QUERY_CHUNK_SIZE", chunk)
        chunk_calls.clear()
        outputs[chunk] = _numpy(compile_function(unet, jit_compile=True)(*inputs))
        assert bool(chunk_calls) == bool(chunk)  # 32 * 32 = 1024 queries: chunked only at 256
    assert np.abs(outputs[0]).max() > 0.1
    assert np.abs(outputs[256] - outputs[0]).max() < 1e-4, np.abs(outputs[256] - outputs[0]).max()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a dynamic batch is TensorFlow's retracing")
def test_tensorflow_dynamic_batch_still_chunks(chunk_calls):
    """tf.function(reduce_retracing=True) can relax the batch to None: n stays static, so chunking still applies."""
    import tensorflow as tf

    layer, full = CrossAttention(3, 10, query_chunk_size=64), CrossAttention(3, 10, query_chunk_size=0)
    x = _random((2, 300, 24), 12)
    layer(x), full(x)
    full.set_weights(layer.get_weights())
    expected = _numpy(full(x))
    compiled = tf.function(layer, input_signature=[tf.TensorSpec((None, 300, 24), "float32")], jit_compile=True)
    chunk_calls.clear()
    got = _numpy(compiled(x))
    assert chunk_calls and all(shape[1] == 60 for shape in chunk_calls)
    assert np.abs(got - expected).max() < 1e-5


def test_unet_memory_benchmark_dry_run(tmp_path):
    """benchmarks/unet_memory.py on the tiny config: chunking lowers XLA's temporaries for every row."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "unet_memory.py"), "--dry-run", "--batches", "2",
                             "--output", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "unet_memory.json").read_text())
    rows = {(row["precision"], row["batch"], row["chunk"]): row for row in record["unet"]}
    assert {key[0] for key in rows} == {"float16", "float32"}
    for (precision, batch, chunk), row in rows.items():
        assert row["peak"] == row["arguments"] + row["outputs"] + row["temporaries"] - row["aliased"]
        if chunk:
            full = rows[(precision, batch, 0)]
            assert row["temporaries"] < full["temporaries"], (precision, batch)
    assert record["decoder"] and "| chunked 128 |" in (tmp_path / "unet_memory.md").read_text()
    assert math.isclose(record["gb"], 1e9)
