"""One training step on one device and on two, printed as JSON (run by test_distribution.py).

TensorFlow: MirroredStrategy over two logical CPU devices. JAX: DataParallel
over two host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2).
"""

import json
import os

backend = os.environ.get("KERAS_BACKEND", "tensorflow")
devices = None
if backend == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    devices = ["/cpu:0", "/cpu:1"]

import keras  # noqa: E402
import numpy as np  # noqa: E402

from imagegen.devices import distribution_scope, get_strategy, num_replicas  # noqa: E402
from imagegen.environment import set_seed  # noqa: E402

rng = np.random.default_rng(0)
x = rng.normal(size=(16, 4)).astype("float32")
y = rng.normal(size=(16, 1)).astype("float32")


def build(initial_weights=None):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    if initial_weights is not None:
        model.set_weights(initial_weights)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


set_seed(0)
single = build()
initial = [np.array(w) for w in single.get_weights()]
single.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)

with distribution_scope(devices):
    distributed = build(initial)
replicas = num_replicas() if backend == "jax" else get_strategy(devices).num_replicas_in_sync
distributed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)

difference = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), distributed.get_weights()))
moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, single.get_weights()))
print(json.dumps({"backend": backend, "replicas": replicas, "max_difference": difference, "max_update": moved}))
