"""Stand-ins for everything full mode downloads, written locally in the published formats (the rehearsal).

``python -m imagegen.stand_ins ROOT`` (``make rehearsal`` runs it) writes:

| full mode downloads                          | the stand-in, same format, same loading code           |
|----------------------------------------------|--------------------------------------------------------|
| MNIST, Fashion-MNIST (tensorflow-datasets)   | ROOT/tensorflow_datasets/{mnist,fashion_mnist}: scikit-learn's digits, in tfds' own files |
| Oxford Flowers 102 (tensorflow-datasets)     | ROOT/tensorflow_datasets/oxford_flowers102: toy flowers of mixed sizes, in 10 of its classes |
| KerasCV's SD v1.4 h5 files (4 GB)            | ROOT/cache/stable_diffusion/*.h5: the "rehearsal" configuration, random weights |
| Keras' ImageNet InceptionV3 h5 file (84 MB)  | ROOT/cache/keras/...notop.h5: InceptionV3, random weights |
| KerasHub's CLIP ViT-B/32 preset (600 MB)      | ROOT/cache/keras_hub/clip_vit_base_patch32: a narrow CLIPBackbone |

and ROOT/cache/stand-ins.json, the digests ``download`` checks the stand-ins against.
A rehearsal then runs with ``IMAGEGEN_CACHE=ROOT/cache``, ``TFDS_DATA_DIR=ROOT/tensorflow_datasets``
and ``IMAGEGEN_OFFLINE=1``, so that any attempt to reach the network fails at once (``environment(ROOT)``). Stand-in weights are random: pictures are noise, only the code path is real.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

# Examples per split: MNIST and Fashion-MNIST (train, test); Oxford Flowers 102 (train, validation, test).
STAND_IN_SIZES = {"mnist": (256, 128), "oxford_flowers102": (60, 60, 60)}
CLIP_PRESET = "clip_vit_base_patch32"


def environment(root):
    """The environment variables a rehearsal runs with, for stand-ins prepared under ``root``."""
    root = pathlib.Path(root).resolve()
    return {"IMAGEGEN_REHEARSAL": "1", "IMAGEGEN_MODE": "full", "IMAGEGEN_OFFLINE": "1", "IMAGEGEN_CACHE": str(root / "cache"),
            "TFDS_DATA_DIR": str(root / "tensorflow_datasets"), "IMAGEGEN_FIGURES": str(root / "figures")}


def _digit_examples(count, seed, labels_from=None):
    """scikit-learn's 8x8 digits at 28x28, uint8 (the layout of MNIST's examples)."""
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(seed).permutation(len(bunch.images))[:count]
    images = resize(bunch.images[order] / 16.0, (len(order), 28, 28), order=1)
    labels = bunch.target[order] if labels_from is None else labels_from[: len(order)]
    return [(int(i), {"image": (np.clip(image, 0, 1) * 255).astype("uint8")[..., None], "label": int(label)})
            for i, (image, label) in enumerate(zip(images, labels))]


def _flower_examples(count, seed):
    """Toy flowers of several sizes and aspect ratios, uint8, labelled 0..101 (Flowers 102's features)."""
    from imagegen.data.toy_flowers import toy_flowers

    flowers = toy_flowers(count, 96, seed=seed).images
    examples = []
    for i, image in enumerate((flowers * 255).astype("uint8")):
        height = 72 + 8 * (i % 4)  # not square: the pipeline's centre crop has work to do
        examples.append((i, {"file_name": f"image_{seed}_{i:05d}.jpg", "image": image[:height], "label": i % 10}))
    return examples


def write_tfds(data_dir):
    """The three tfds data sets in ``data_dir`` (a fresh folder), as tfds would have prepared them."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    tfds.disable_progress_bar()
    train, test = STAND_IN_SIZES["mnist"]  # Fashion-MNIST's too
    shoe_labels = np.resize([5, 7, 9, 0, 1, 2, 3, 4, 6, 8], train)  # Fashion-MNIST: 3 of 10 classes are shoes
    splits = {
        "mnist": {"train": _digit_examples(train, 0), "test": _digit_examples(test, 1)},
        "fashion_mnist": {"train": _digit_examples(train, 2, shoe_labels), "test": _digit_examples(test, 3, shoe_labels)},
        "oxford_flowers102": {split: _flower_examples(count, seed)
                              for seed, (split, count) in enumerate(zip(("train", "validation", "test"),
                                                                        STAND_IN_SIZES["oxford_flowers102"]))},
    }
    for name, split_examples in splits.items():
        info = tfds.builder(name).info  # the real data set's version and features, from tfds' code
        adhoc_builder.store_as_tfds_dataset(name=name, version=str(info.version), features=info.features,
                                            split_datasets=split_examples, data_dir=data_dir,
                                            description=f"rehearsal stand-in for {name}")


def write_weights(cache):
    """Stand-in SD v1.4 h5 files, InceptionV3's h5 file and a KerasHub CLIP preset; returns the manifest."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from imagegen import metrics, rehearsal
    from imagegen.data.download import sha256_of
    from imagegen.files import atomic_path
    from imagegen.stable_diffusion import presets, weights

    cache, manifest = pathlib.Path(cache), {}
    keras.utils.set_random_seed(0)
    modules = presets.build(rehearsal.SCALED_CONFIGS["sd-v1"])
    for module, part in zip(modules, ("text_encoder", "unet", "decoder", "image_encoder")):
        filename, _ = weights.SD_V1_4_FILES[part]
        with atomic_path(cache / "stable_diffusion" / filename) as path:
            weights.write_in_order(module, path)
        manifest[weights.BASE_URL + filename] = {"algorithm": "sha256", "digest": sha256_of(cache / "stable_diffusion" / filename)}

    inception = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg", input_shape=(75, 75, 3))
    target = cache / "keras" / metrics.INCEPTION_URL.rsplit("/", 1)[1]
    with atomic_path(target) as path:
        import h5py

        with h5py.File(path, "w") as file:
            legacy_h5_format.save_weights_to_hdf5_group(file, inception)
    manifest[metrics.INCEPTION_URL] = {"algorithm": "md5", "digest": sha256_of(target, "md5")}

    import keras_hub

    clip = keras_hub.models.CLIPBackbone(
        vision_encoder=keras_hub.models.CLIPVisionEncoder(patch_size=32, hidden_dim=32, num_layers=1, num_heads=2,
                                                          intermediate_dim=64, image_shape=(224, 224, 3)),
        text_encoder=keras_hub.models.CLIPTextEncoder(vocabulary_size=49408, embedding_dim=32, hidden_dim=32, num_layers=1,
                                                      num_heads=2, intermediate_dim=64, max_sequence_length=77),
        projection_dim=16)
    with atomic_path(cache / "keras_hub" / CLIP_PRESET) as path:
        clip.save_to_preset(str(path))
    manifest[CLIP_PRESET] = {"path": str(cache / "keras_hub" / CLIP_PRESET)}
    return manifest


def prepare(root):
    """Write every stand-in under ``root`` (a fresh rehearsal: earlier runs and checkpoints are removed)."""
    from imagegen import rehearsal
    from imagegen.files import atomic_path

    root = pathlib.Path(root).resolve()
    for folder in ("cache", "tensorflow_datasets", "figures", "notebooks"):
        with atomic_path(root / folder) as path:  # replaces the old folder whole
            path.mkdir()
    write_tfds(root / "tensorflow_datasets")
    manifest = write_weights(root / "cache")
    with atomic_path(root / "cache" / rehearsal.STAND_INS) as path:
        path.write_text(json.dumps(manifest, indent=2) + "\n")
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m imagegen.stand_ins ROOT   (writes the full-mode rehearsal's stand-ins under ROOT)")
    print(f"stand-ins written under {prepare(sys.argv[1])}")
