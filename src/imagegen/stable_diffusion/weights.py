"""Pretrained weights into our modules: KerasCV's h5 files, live KerasCV models.

KerasCV published SD v1.4 as four Keras-2 weight files (one per sub-model).
Such a file lists its layers in order, and each layer's weights in order; a
model reads it by position (KerasCV's Keras 3 code does the same). Our modules
record, in ``keras_cv_order``, which of their layers sits at each position, so
the same flat list of arrays fills either model (``imagegen.weight_order``, the
one place that order is read; its names are importable from here too). Every
array is checked for shape before anything is assigned, so a wrong file fails
loudly, not silently.
"""

from __future__ import annotations

from imagegen.data.download import download
from imagegen.network import OfflineError
from imagegen.weight_order import assign_in_order, keras_cv_arrays, layer_weights, ordered_variables, to_numpy

__all__ = ["BASE_URL", "SD_V1_4_FILES", "assign_in_order", "keras_cv_arrays", "load_keras_h5", "ordered_variables",
           "sd_v1_4_paths", "write_in_order", "write_keras_h5"]

BASE_URL = "https://huggingface.co/fchollet/stable-diffusion/resolve/main/"

# KerasCV's published SD v1.4 files and the sha256 pins KerasCV's own source uses.
SD_V1_4_FILES = {
    "text_encoder": ("kcv_encoder.h5", "4789e63e07c0e54d6a34a29b45ce81ece27060c499a709d556c7755b42bb0dc4"),
    "unet": ("kcv_diffusion_model.h5", "8799ff9763de13d7f30a683d653018e114ed24a6a819667da4f5ee10f9e805fe"),
    "decoder": ("kcv_decoder.h5", "ad350a65cc8bc4a80c8103367e039a3329b4231c2469a1093869a345f55b1962"),
    "image_encoder": ("vae_encoder.h5", "c60fb220a40d090e0f86a6ab4c312d113e115c87c40ff75d11ffcf380aab7ebb"),
}


def load_keras_h5(model, path):
    """Fill ``model`` from a Keras-2-style weight file (``save_weights`` to .h5), read in file order.

    Layout: the root (or its "model_weights" group) has a ``layer_names``
    attribute; each layer's group has a ``weight_names`` attribute naming its
    datasets in order. Layers without weights are skipped.
    """
    import h5py

    with h5py.File(path, "r") as file:
        group = file["model_weights"] if "layer_names" not in file.attrs and "model_weights" in file else file
        if "layer_names" not in group.attrs:
            raise ValueError(f"{path} is not a Keras weight file (no layer_names attribute)")
        datasets = []
        for layer_name in group.attrs["layer_names"]:
            layer = group[_text(layer_name)]
            datasets += [layer[_text(weight_name)] for weight_name in layer.attrs.get("weight_names", [])]
        return assign_in_order(model, datasets, source=str(path))


def write_keras_h5(keras_cv_model, path):
    """Write a model's weights as a Keras-2-style h5 file, the format of KerasCV's published files (tests)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, keras_cv_model)


def write_in_order(model, path):
    """Write one of our modules as a KerasCV-style h5 file: ``load_keras_h5`` reads it back by position.

    The layout is the published files': a ``layer_names`` attribute, then one group per layer with a
    ``weight_names`` attribute. The full-mode rehearsal writes its stand-in SD weights this way.
    """
    import h5py

    layers = [(name, layer_weights(model.get_layer(name))) for name in model.keras_cv_order]
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [name.encode("utf8") for name, _ in layers]
        for name, variables in layers:
            group = file.create_group(name)
            weight_names = [f"{name}/{i}_{v.name}" for i, v in enumerate(variables)]
            group.attrs["weight_names"] = [w.encode("utf8") for w in weight_names]
            for weight_name, variable in zip(weight_names, variables):
                group.create_dataset(weight_name, data=to_numpy(variable))


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def sd_v1_4_paths(parts=("text_encoder", "unet", "decoder", "image_encoder"), timeout=5.0):
    """Download (once, verified) KerasCV's SD v1.4 files; return {part: path}.

    Offline, raises ``OfflineError`` at once, naming every missing file, its URL,
    and the cache folder where a user can place the files by hand.
    """
    from imagegen.paths import cache_dir

    folder = cache_dir("stable_diffusion")
    paths, missing = {}, []
    for part in parts:
        filename, sha256 = SD_V1_4_FILES[part]
        try:
            paths[part] = download(BASE_URL + filename, sha256, subdir="stable_diffusion", timeout=timeout)
        except OfflineError:
            missing.append(f"  {filename} (sha256 {sha256})\n    from {BASE_URL + filename}")
    if missing:
        raise OfflineError(
            "Stable Diffusion v1.4 weights are not in the cache and huggingface.co is unreachable. Missing:\n"
            + "\n".join(missing) + f"\nFix: connect to the internet, or download these files elsewhere and put them in {folder}"
        )
    return paths
