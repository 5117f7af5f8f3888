"""KerasCV's weight order: one flat list of arrays fills our modules and KerasCV's alike.

KerasCV stores a model's weights by position: its layers in order, each layer's
weights in order (its published h5 files, and ``keras_cv_arrays`` on a live
model). Every module of ours that takes such weights (the CLIP ``TextEncoder``,
SD's ``UNet``, ``Decoder`` and ``Encoder``) records, in ``keras_cv_order``, the
names of its layers in KerasCV's order; a layer whose own weights are ordered
differently from KerasCV's lists them in ``keras_cv_weights`` (the text
encoder's embedding: KerasCV's token table comes before its positions). That is
the only mechanism: ``ordered_variables`` reads it, ``assign_in_order`` fills a
module by it (SD's h5 files, the shipped mini weights, live KerasCV models).

It lives here, below ``imagegen.clip`` and ``imagegen.stable_diffusion``, so that
both can use it and neither imports the other for it.
"""

from __future__ import annotations

import numpy as np


def layer_weights(layer):
    """One layer's weights in KerasCV's order: its ``keras_cv_weights`` if it has them, else ``weights``."""
    return list(getattr(layer, "keras_cv_weights", None) or layer.weights)


def ordered_variables(model):
    """A module's variables in KerasCV's order: its layers by ``keras_cv_order``, each by ``layer_weights``."""
    order = getattr(model, "keras_cv_order", None)
    if order is None:
        raise TypeError(f"{type(model).__name__} {model.name!r} has no keras_cv_order: it does not take weights by position")
    return [w for name in order for w in layer_weights(model.get_layer(name))]


def assign_in_order(model, values, source="the weights"):
    """Assign a flat list of arrays in KerasCV's order, after checking every shape; returns ``model``.

    values: numpy arrays, Keras variables or h5py datasets; each is read only when
    assigned, so an 860M-parameter UNet never sits in memory twice.
    """
    variables = ordered_variables(model)
    if len(values) != len(variables):
        raise ValueError(f"{source} hold {len(values)} arrays but {model.name} has {len(variables)} weights: "
                         "they come from a different architecture or configuration")
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(f"{source}: {variable.path} expects shape {tuple(variable.shape)}, got {tuple(value.shape)}")
    for variable, value in zip(variables, values):
        variable.assign(np.asarray(to_numpy(value), dtype=variable.dtype))
    return model


def to_numpy(value):
    """A numpy array from an array, a Keras variable (it has ``assign``) or an h5py dataset (read now)."""
    import keras

    return keras.ops.convert_to_numpy(value) if hasattr(value, "assign") else np.asarray(value)


def keras_cv_arrays(keras_cv_model):
    """A KerasCV model's weight variables in the order its h5 files store them (layer by layer, trainable first)."""
    return [w for layer in keras_cv_model.layers for w in layer.trainable_weights + layer.non_trainable_weights]
