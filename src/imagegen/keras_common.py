"""Keras patterns the course's model packages share, kept below them all so none imports another for them.

- ``LossTrackerMetrics``: models that compute their loss themselves (``compute_loss``) report their
  own running means, and only those, in ``fit``'s logs and history;
- ``dtype_policy_scope`` and ``build_with_policy``: build a module's layers under one dtype policy,
  so that a module saved under mixed precision (``get_config`` carries its ``dtype``) is rebuilt
  with it. Keras reads the global policy when a layer is created, and a module that creates its
  layers in ``__init__`` would otherwise rebuild them under whatever policy is global at load time.
"""

from __future__ import annotations

import contextlib

import keras


class LossTrackerMetrics:
    """Mix into a ``keras.Model`` whose ``compute_loss`` updates its own ``keras.metrics.Mean`` trackers.

    The model lists those trackers in its ``metrics`` property; ``fit``, ``evaluate`` and the
    history then report exactly them (Keras's default would also run compiled metrics on
    ``y_pred``, which here is not a prediction but whatever ``call`` returns for the loss).
    Put it first: ``class VAE(LossTrackerMetrics, keras.Model)``.
    """

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {metric.name: metric.result() for metric in self.metrics}


@contextlib.contextmanager
def dtype_policy_scope(dtype):
    """Create layers under the dtype policy ``dtype`` (a name, a ``DTypePolicy`` or its config; None: the
    global one), then restore the global policy, also when building fails."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(previous if dtype is None else keras.dtype_policies.get(dtype))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_with_policy(layer):
    """``dtype_policy_scope`` of an already initialised layer's own policy: its sublayers follow it.

    ``super().__init__(**kwargs)`` first (it reads ``dtype``), then create the sublayers inside.
    """
    return dtype_policy_scope(layer.dtype_policy)
