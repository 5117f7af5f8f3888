"""Check loaded SD v1.4 weights against KerasCV's own published golden values.

A hash proves a file arrived intact; it does not prove that our code reads it
right. KerasCV's test suite (keras-cv 0.9.0, ``stable_diffusion_test.py``) pins
two numbers computed with the real weights, which a learner can check wherever
they run, in seconds:

    encode_text("a caterpillar smoking a hookah while sitting on a mushroom")[0, 1, :5]
        = [0.029033, -1.325784, 0.308457, -0.061469, 0.03983]
    image_encoder(ones((1, 128, 128, 3)))[0, 1, 0]   (a white image, in [-1, 1])
        = [2.451568, 1.607522, -0.546311, -1.194388]

KerasCV asserts both to 1e-4; we allow 5e-4 for the image encoder, whose 20
convolutions sum differently on GPUs. The check runs in float32 at full matrix
precision whatever the pipeline computes in, so half precision cannot fail it.

In the full-mode rehearsal the weights are stand-ins, so the check must report a
mismatch there: a check that passed on them could not tell right from wrong.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from imagegen import rehearsal

PROMPT = "a caterpillar smoking a hookah while sitting on a mushroom"
GOLDEN = {  # name -> (expected values, tolerance), from keras-cv 0.9.0's stable_diffusion_test.py
    "text encoder": (np.array([0.029033, -1.325784, 0.308457, -0.061469, 0.03983]), 1e-4),
    "image encoder": (np.array([2.451568, 1.607522, -0.546311, -1.194388]), 5e-4),
}


class WeightsMismatch(ValueError):
    """Loaded weights do not reproduce the published golden values."""


@contextlib.contextmanager
def full_precision():
    """float32 matrix products at full precision (GPUs default to TF32 or bfloat16 passes)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        with jax.default_matmul_precision("highest"):
            yield
    elif backend == "tensorflow":
        import tensorflow as tf

        before = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            yield
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(before)
    else:
        yield


def _float32(text_encoder):
    """The text encoder itself if it computes in float32, else a float32 copy with the same weights."""
    if text_encoder.compute_dtype == "float32":
        return text_encoder
    from imagegen.clip import TextEncoder
    from imagegen.keras_common import dtype_policy_scope

    with dtype_policy_scope("float32"):
        copy = TextEncoder(**text_encoder.config)
    copy.set_weights([np.asarray(w, "float32") for w in text_encoder.get_weights()])
    return copy


def golden_values(sd):
    """{name: (ours, expected, max |ours - expected|, within tolerance)} for a ``StableDiffusion`` pipeline."""
    if sd.image_encoder is None:
        raise ValueError("the golden check needs the pipeline's image_encoder; load it with from_preset('sd-v1.4')")
    with full_precision():
        ids = keras.ops.convert_to_tensor(sd.tokenizer([PROMPT]))
        text = np.asarray(keras.ops.convert_to_numpy(_float32(sd.text_encoder)(ids, training=False)), "float64")
        image = keras.ops.convert_to_numpy(sd.image_encoder(np.ones((1, 128, 128, 3), "float32"), training=False))
    ours = {"text encoder": text[0, 1, :5], "image encoder": np.asarray(image, "float64")[0, 1, 0, :4]}
    report = {}
    for name, (expected, tolerance) in GOLDEN.items():
        values = ours[name]
        difference = float(np.max(np.abs(values - expected))) if values.shape == expected.shape else float("inf")
        report[name] = (values, expected, difference, difference <= tolerance)
    return report


def verify_weights(sd, name="sd-v1.4"):
    """Print the golden check and return its report; raise ``WeightsMismatch`` when real weights fail it.

    In the rehearsal (stand-in weights) a mismatch is the expected result and is
    printed as such; stand-ins that *passed* would raise, since then the check could not fail.
    """
    report = golden_values(sd)
    for part, (values, expected, difference, ok) in report.items():
        print(f"{part}: {np.round(values, 6).tolist()}  expected {expected.tolist()}  "
              f"max difference {difference:.1e}  {'ok' if ok else 'MISMATCH'}")
    passed = all(ok for *_, ok in report.values())
    if rehearsal.active():
        if passed:
            raise WeightsMismatch("the rehearsal's stand-in weights passed the golden check: the check cannot fail")
        print(f"golden check: mismatch, as it must be for the rehearsal's stand-in weights (real {name} weights pass it)")
        return report
    if not passed:
        raise WeightsMismatch(
            f"the {name} weights do not reproduce KerasCV's published values. If the files passed their sha256 "
            "check, the loading code is wrong: please report it. If you replaced files in the cache "
            "(imagegen.paths.cache_dir()), delete them and load again to re-download.")
    print(f"weights verified: {name} reproduces KerasCV's golden values")
    return report
