"""Building modules under a mixed-precision policy, and only those modules.

Keras reads its global dtype policy when a layer is created. SD runs its text
encoder and UNet in half precision on a GPU or TPU, but its VAE must stay
float32 (its decoder overflows float16 and returns black images), so each
loader builds each part inside ``dtype_policy(...)`` and the global policy is
restored afterwards.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def dtype_policy(dtype):
    """Build layers under a Keras dtype policy ("mixed_float16", "mixed_bfloat16"), then restore the old one."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype or previous)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
