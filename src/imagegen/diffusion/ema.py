"""Exponential moving average (EMA) of a network's weights, updated after every optimizer step.

Why: the weights jitter from batch to batch; an exponential moving average
ema_w <- m * ema_w + (1 - m) * w (m = 0.999) is a smoothed model that samples
better images. Sampling uses the EMA network by default. The momentum warms up
as m_n = min(m, (1 + n) / (10 + n)) over the first optimizer steps n, so a
short run's EMA is not stuck near the random initial weights.

``EMATraining`` is a mixin for a ``keras.Model`` that has ``network``,
``ema_network`` (a clone, not trainable) and ``ema_momentum``: it runs the
backend's usual ``train_step`` and then the update, on TensorFlow, torch and JAX
(where the step is stateless and the update is applied to the returned state).
"""

from __future__ import annotations

import keras
from keras import ops


class EMATraining:
    """Adds ema_w <- m * ema_w + (1 - m) * w after each optimizer step of ``fit``."""

    def train_step(self, *args):
        """The backend's usual step, then the EMA update ema_w <- m * ema_w + (1 - m) * w."""
        if keras.backend.backend() == "jax":
            state, data = args
            logs, state = super().train_step(state, data)
            return logs, self._jax_ema_update(state)
        logs = super().train_step(*args)
        self.update_ema()
        return logs

    def ema_momentum_at(self, step):
        """The warmed-up momentum after ``step`` optimizer steps: min(m, (1 + n) / (10 + n))."""
        step = ops.cast(step, "float32")
        return ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))

    def update_ema(self, momentum=None):
        """Move every EMA weight towards its network weight (TensorFlow, torch, or outside fit)."""
        if momentum is None:
            momentum = self.ema_momentum_at(self.optimizer.iterations) if self.optimizer is not None else self.ema_momentum
        for ema_weight, weight in zip(self.ema_network.weights, self.network.weights):
            ema_weight.assign(momentum * ema_weight + (1.0 - momentum) * weight)

    def _jax_ema_update(self, state):
        """JAX's step is stateless: apply the EMA update to the returned state's variables."""
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        positions = {id(v): ("t", i) for i, v in enumerate(self.trainable_variables)}
        positions.update({id(v): ("n", i) for i, v in enumerate(self.non_trainable_variables)})
        iterations = optimizer_variables[[id(v) for v in self.optimizer.variables].index(id(self.optimizer.iterations))]
        momentum = self.ema_momentum_at(iterations)
        non_trainable = list(non_trainable)
        for ema_weight, weight in zip(self.ema_network.weights, self.network.weights):
            kind, source = positions[id(weight)]
            value = trainable[source] if kind == "t" else non_trainable[source]
            _, target = positions[id(ema_weight)]
            non_trainable[target] = momentum * non_trainable[target] + (1.0 - momentum) * value
        return trainable, non_trainable, optimizer_variables, metrics_variables
