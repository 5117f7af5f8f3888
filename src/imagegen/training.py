"""Training that survives interruptions: ``fit`` with checkpoints it resumes from.

Why: a Colab session can disconnect, and a long run should not start over.
``fit_resumable`` wraps ``model.fit`` with
- ``keras.callbacks.BackupAndRestore``: the weights, optimizer state and epoch
  are backed up each epoch into ``run_dir/backup``; calling ``fit_resumable``
  again after a crash continues from the last finished epoch;
- the finished model saved as ``run_dir/model.keras`` (written to a temporary
  name, then renamed, so a crash never leaves a half-written file).
"""

from __future__ import annotations

import os
import pathlib

import keras


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
    history = model.fit(
        x, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
        callbacks=[backup, *callbacks], verbose=verbose, **fit_kwargs,
    )
    if save:
        save_atomic(model, run_dir / "model.keras")
    return history


def _first_batch(x):
    """A batch of one example from numpy inputs (an array or a dict of arrays), or a dataset's first batch."""
    if hasattr(x, "shape"):
        return x[:1]
    if isinstance(x, dict):
        return {key: value[:1] for key, value in x.items()}
    first = next(iter(x))
    return first[0] if isinstance(first, (tuple, list)) else first


def save_atomic(model, path):
    """``model.save(path)`` through a temporary file and a rename."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    model.save(temporary)
    os.replace(temporary, path)
    return path


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
