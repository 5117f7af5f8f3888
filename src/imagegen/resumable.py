"""Training that survives interruptions: ``fit`` with checkpoints it resumes from, and its compact log.

Why: a Colab session can disconnect, and a long run should not start over.
``fit_resumable`` wraps ``model.fit`` with
- ``keras.callbacks.BackupAndRestore``: the weights, optimizer state and epoch
  are backed up each epoch into ``run_dir/backup``; calling ``fit_resumable``
  again after a crash continues from the last finished epoch;
- the finished model saved as ``run_dir/model.keras`` (written to a temporary
  name, then renamed by ``imagegen.files.atomic_path``, so a crash never leaves
  a half-written file).

With TensorFlow, in-memory arrays are fed as one endless ``tf.data`` stream that
runs on across epochs (see ``_tf_stream``): Keras would otherwise start a new
dataset iterator each epoch, and here that often cost 14 idle seconds an epoch.
``EpochLogger`` prints one line every few epochs instead of a progress bar per step.
"""

from __future__ import annotations

import math
import pathlib

import keras
import numpy as np

from imagegen.files import atomic_path


def fit_resumable(model, x, run_dir, epochs, batch_size=None, validation_data=None, callbacks=(), verbose="auto", save=True,
                  **fit_kwargs):
    """``model.fit(x, ...)`` that resumes from ``run_dir`` after an interruption.

    model: a compiled Keras model.
    run_dir: folder for this run's backup and final model (created if needed).
    epochs: total epochs of the run (a resumed run only does those left).
    save: also save the finished model as ``run_dir/model.keras``.
    Returns the Keras ``History`` of the epochs this call ran.
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not model.built:  # BackupAndRestore restores into existing variables
        model(_first_batch(x))
    backup = keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=True)
    if _streamable(x, fit_kwargs):
        x, steps = _tf_stream(x, batch_size or 32, fit_kwargs.pop("shuffle", True))
        fit_kwargs.update(steps_per_epoch=steps, shuffle=False)  # the stream is batched and shuffled already
        batch_size = None
    history = model.fit(
        x, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
        callbacks=[backup, *callbacks], verbose=verbose, **fit_kwargs,
    )
    if save:
        with atomic_path(run_dir / "model.keras") as temporary:  # ends in .keras, as model.save wants
            model.save(temporary)
    return history


def _streamable(x, fit_kwargs):
    """True for numpy inputs (an array or a dict of arrays, no targets) under the TensorFlow backend."""
    arrays = x.values() if isinstance(x, dict) else [x]
    return (keras.backend.backend() == "tensorflow" and set(fit_kwargs) <= {"shuffle"}
            and all(isinstance(array, np.ndarray) for array in arrays))


def _tf_stream(x, batch_size, shuffle=True):
    """numpy inputs -> (endless tf.data stream of batches, batches per epoch), one iterator for the whole run.

    Why: for numpy inputs Keras's TensorFlow trainer starts a new dataset iterator
    each epoch, and with TensorFlow 2.21 the first step of a later epoch often sat
    *idle* for about 14 s (notebook 05's training on 2 CPU cores: 10 of 17 later
    epochs; the process used 0.3 s of CPU in that time). With one stream it happened
    in none of 5. Each pass is reshuffled; its last batch may be partial, as in Keras.
    """
    import tensorflow as tf

    tensors = tf.nest.map_structure(tf.convert_to_tensor, x)
    count = len(next(iter(x.values())) if isinstance(x, dict) else x)
    order = tf.data.Dataset.range(count)
    if shuffle:
        order = order.shuffle(count, reshuffle_each_iteration=True)

    def gather(indices):  # one batch: the rows at these indices, as Keras packs it: (x,)
        return (tf.nest.map_structure(lambda tensor: tf.gather(tensor, indices), tensors),)

    stream = order.batch(batch_size).repeat().map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return stream.prefetch(tf.data.AUTOTUNE), math.ceil(count / batch_size)


def _first_batch(x):
    """A batch of one example from numpy inputs (an array or a dict of arrays), or a dataset's first batch."""
    if hasattr(x, "shape"):
        return x[:1]
    if isinstance(x, dict):
        return {key: value[:1] for key, value in x.items()}
    first = next(iter(x))
    return first[0] if isinstance(first, (tuple, list)) else first


class EpochLogger(keras.callbacks.Callback):
    """A compact log line every few epochs instead of a progress bar per step (keeps notebooks short).

    Use as ``callbacks=[EpochLogger(every=5)]`` with ``verbose=0``.
    """

    def __init__(self, every=1):
        super().__init__()
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        total = self.params.get("epochs")
        if (epoch + 1) % self.every == 0 or epoch + 1 == total:
            text = "  ".join(f"{name} {value:.4g}" for name, value in (logs or {}).items())
            print(f"epoch {epoch + 1:>3}/{total}  {text}", flush=True)
