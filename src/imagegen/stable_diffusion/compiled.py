"""One compiled inference call per model: XLA with TensorFlow, ``jax.jit`` with JAX.

The pipeline calls its UNet 50 times per image; compiled, each call runs as one
fused program instead of hundreds of small operations.
"""

from __future__ import annotations

import keras


def compile_function(model, jit_compile=True):
    """``fn(*inputs) -> model(list(inputs))``, compiled for the backend where it can be.

    TensorFlow: ``tf.function(jit_compile=True)`` (XLA). JAX: ``jax.jit`` over
    ``stateless_call`` so the weights are arguments, not baked-in constants.
    Other backends (or jit_compile=False): the plain call.
    """
    backend = keras.backend.backend()
    single = len(model.inputs) == 1

    def structure(inputs):  # a one-input model takes its tensor, not a list
        return inputs[0] if single else list(inputs)

    if jit_compile and backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda *inputs: model(structure(inputs), training=False), jit_compile=True, reduce_retracing=True)
    if jit_compile and backend == "jax":
        import jax

        @jax.jit
        def stateless(trainable, non_trainable, *inputs):
            outputs, _ = model.stateless_call(trainable, non_trainable, structure(inputs), training=False)
            return outputs

        def call(*inputs):
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return stateless(trainable, non_trainable, *inputs)

        return call
    return lambda *inputs: model(structure(inputs), training=False)
