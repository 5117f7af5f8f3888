"""The toy-world judge: a small CNN that reads a scene's objects, colours, relation and place.

Why: to *measure* whether a generated toy-world image follows its prompt, without
trusting the caption. It is trained on ``toy_world`` ground truth (``ToyWorld.scenes``),
on every combination, the title's "astronaut riding a horse" included, and on a seed no
generator trains on. Its heads:

- ``objects``: which of the 12 objects are present (independent yes/no, sigmoid);
- ``colors``: the named colour of each colourable object (boat, bicycle, house), or "none";
- ``relation``: none, riding, next to or above;
- ``subject`` / ``target``: who rides (or flies over) whom. "next to" has no order in a
  picture, so its pair is read in ``OBJECTS`` order;
- ``place``: field, lake, beach or moon.

``ToyJudge.read(images)`` returns scene dicts in ``toy_world``'s format (without boxes);
``ToyJudge.accuracy(images, scenes)`` scores them against the truth.

The course ships a trained judge (``load_judge()``, from ``assets/toy_judge``), so that a
notebook can score pictures in seconds; ``python -m imagegen.train judge`` retrains it
(about ten minutes on 2 CPU cores) and records its held-out accuracy beside the weights.
"""

from __future__ import annotations

import json
import pathlib
import time

import keras
import numpy as np
from keras import layers

from imagegen.data.toy_world import COLORED, COLORS, OBJECTS, PLACES, RELATIONS, toy_world

from imagegen.files import atomic_path

JUDGE_DIR = pathlib.Path(__file__).resolve().parent / "assets" / "toy_judge"
WEIGHTS, META = "toy_judge.npz", "toy_judge.json"
NONE = "none"
SLOTS = OBJECTS + (NONE,)  # subject/target classes
VERBS = (NONE,) + RELATIONS


@keras.saving.register_keras_serializable("imagegen")
class RandomBlur(layers.Layer):
    """Training only: each image is mixed with its Gaussian blur (sigma ``sigma`` px) by a random share in [0, 1].

    Why: a judge trained on crisp sprites alone reads their outlines, and then fails on a picture
    a person reads at a glance but that is slightly soft, as every picture a small autoencoder
    decodes is (before this layer: 17% of objects right at a blur of 0.8 px).
    """

    def __init__(self, sigma=1.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.sigma, self.seed = sigma, seed
        radius = int(np.ceil(2.5 * sigma))
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        kernel = np.outer(taps, taps) / np.sum(taps) ** 2  # separable Gaussian, sums to 1
        self.kernel = np.tile(kernel[:, :, None, None], (1, 1, 3, 1)).astype("float32")  # (k, k, 3 channels, 1)
        self.radius = radius
        self.generator = keras.random.SeedGenerator(seed)

    def blur(self, images):
        """Every image blurred (mirrored at the borders, so the edges do not darken)."""
        r = self.radius
        padded = keras.ops.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
        return keras.ops.depthwise_conv(padded, self.kernel, padding="valid")

    def call(self, images, training=False):
        if not training:
            return images
        blurred = self.blur(images)
        share = keras.random.uniform((keras.ops.shape(images)[0], 1, 1, 1), seed=self.generator)
        return images + share * (blurred - images)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "seed": self.seed}


def blur(images, sigma):
    """Images (n, s, s, 3) in [0, 1], each blurred by a Gaussian of ``sigma`` px: how soft pictures test the judge."""
    layer = RandomBlur(sigma)
    return np.concatenate([keras.ops.convert_to_numpy(layer.blur(keras.ops.convert_to_tensor(images[i : i + 256], "float32")))
                           for i in range(0, len(images), 256)])


def build_judge(image_size=64, widths=(16, 32, 64, 128), dense=256, blur=1.5):
    """images (b, s, s, 3) in [0, 1] -> dict of head probabilities (see the module docstring).

    blur: the largest Gaussian blur (px) of the training-time augmentation (``RandomBlur``); 0 for none.
    """
    images = keras.Input((image_size, image_size, 3), name="images")
    x = RandomBlur(blur, name="random_blur")(images) if blur else images
    for width in widths:
        for _ in range(2):  # batch norm: it trains in a few epochs instead of dozens
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.Activation("relu")(layers.BatchNormalization()(x))
        x = layers.MaxPooling2D()(x)
    # Flatten, not pool: who is above whom is a question of where.
    x = layers.Dropout(0.2)(layers.Flatten()(x))
    features = layers.Dense(dense, activation="relu", name="features")(x)
    outputs = {"objects": layers.Dense(len(OBJECTS), activation="sigmoid", name="objects")(features)}
    for name in COLORED:
        outputs[f"{name}_color"] = layers.Dense(len(COLORS) + 1, activation="softmax", name=f"{name}_color")(features)
    outputs["relation"] = layers.Dense(len(VERBS), activation="softmax", name="relation")(features)
    outputs["subject"] = layers.Dense(len(SLOTS), activation="softmax", name="subject")(features)
    outputs["target"] = layers.Dense(len(SLOTS), activation="softmax", name="target")(features)
    outputs["place"] = layers.Dense(len(PLACES), activation="softmax", name="place")(features)
    return keras.Model(images, outputs, name="toy_judge")


def _pair(relation):
    """The (subject, verb, target) a picture can show: "next to" in ``OBJECTS`` order."""
    subject, verb, target = relation
    if verb == "next to" and OBJECTS.index(subject) > OBJECTS.index(target):
        subject, target = target, subject
    return subject, verb, target


def scene_labels(scenes):
    """Targets for every head, from scene dicts."""
    n = len(scenes)
    labels = {"objects": np.zeros((n, len(OBJECTS)), np.float32)}
    for name in COLORED:
        labels[f"{name}_color"] = np.full(n, len(COLORS), np.int32)  # "none" by default
    for key in ("relation", "subject", "target", "place"):
        labels[key] = np.zeros(n, np.int32)
    for i, scene in enumerate(scenes):
        for obj in scene["objects"]:
            labels["objects"][i, OBJECTS.index(obj["name"])] = 1.0
            if obj["name"] in COLORED:
                labels[f"{obj['name']}_color"][i] = COLORS.index(obj["color"])
        subject, verb, target = _pair(scene["relation"]) if scene["relation"] else (NONE, NONE, NONE)
        labels["relation"][i] = VERBS.index(verb)
        labels["subject"][i], labels["target"][i] = SLOTS.index(subject), SLOTS.index(target)
        labels["place"][i] = PLACES.index(scene["place"])
    return labels


class ToyJudge:
    """Reads toy-world images (float in [0, 1]); ``fit`` trains it on fresh scenes with every combination."""

    def __init__(self, image_size=64, seed=0, **config):
        self.image_size, self.seed, self.config = image_size, seed, config
        self.model = build_judge(image_size, **config)
        self.record = {}

    def save(self, folder=JUDGE_DIR):
        """Write the weights (float16, ``toy_judge.npz``) and sizes + record (``toy_judge.json``) to ``folder``."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i:03d}": np.asarray(w, dtype=np.float16) for i, w in enumerate(self.model.get_weights())}
        with atomic_path(folder / WEIGHTS) as temporary:
            with open(temporary, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        meta = {"image_size": self.image_size, "seed": self.seed, "config": self.config, "record": self.record}
        with atomic_path(folder / META) as temporary:
            temporary.write_text(json.dumps(meta, indent=1))
        return folder

    def fit(self, num_images=20000, epochs=8, batch_size=64, verbose=0, held_out=2000, run_dir=None):
        """Train on ``num_images`` scenes (seed 2,000,000 + seed, ``exclude=()``); returns held-out accuracies.

        run_dir: where to keep a checkpoint each epoch, so that an interrupted run resumes there.
        """
        started = time.perf_counter()
        keras.utils.set_random_seed(self.seed)
        world = toy_world(num_images + held_out, self.image_size, seed=2_000_000 + self.seed, exclude=(), varied=True)
        train, test = world[:num_images], world[num_images:]
        losses = {key: "sparse_categorical_crossentropy" for key in self.model.output_names if key != "objects"}
        losses["objects"] = "binary_crossentropy"
        steps = epochs * (num_images // batch_size)
        self.model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
                           loss=losses)
        if run_dir is None:
            self.model.fit(train.images, scene_labels(train.scenes), epochs=epochs, batch_size=batch_size, verbose=verbose)
        else:
            from imagegen.resumable import fit_resumable

            fit_resumable(self.model, train.images, run_dir, epochs, batch_size=batch_size, y=scene_labels(train.scenes),
                          verbose=verbose, save=False)
        scores = self.accuracy(test.images, test.scenes)
        self.record = {"num_images": num_images, "epochs": epochs, "held_out": held_out, "held_out_accuracy": scores,
                       "held_out_accuracy_blurred_1px": self.accuracy(blur(test.images, 1.0), test.scenes),
                       "train_seconds": round(time.perf_counter() - started, 1)}
        return scores

    def read(self, images):
        """Scene dicts ({"objects": [{"name", "color"}], "relation", "place"}) for images float (n, s, s, 3) in [0, 1]."""
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"the judge reads images (n, {self.image_size}, {self.image_size}, 3) in [0, 1]; got "
                             f"{images.shape}. Resize them, or train a judge at this size: ToyJudge(image_size=...)")
        return decode(self.model.predict(images, batch_size=256, verbose=0))

    def accuracy(self, images, scenes):
        """Fractions of images whose objects (names and colours), relation and place match ``scenes``, and all three."""
        read = self.read(images)
        scores = {key: [] for key in ("objects", "relation", "place", "all")}
        for got, truth in zip(read, scenes):
            checks = {"objects": _objects(got) == _objects(truth),
                      "relation": _relation(got) == _relation(truth),
                      "place": got["place"] == truth["place"]}
            for key, value in checks.items():
                scores[key].append(value)
            scores["all"].append(all(checks.values()))
        return {key: float(np.mean(values)) for key, values in scores.items()}


def load_judge(folder=JUDGE_DIR):
    """The trained judge shipped with the course (or saved in ``folder``); its ``record`` says how well it reads."""
    folder = pathlib.Path(folder)
    if not (folder / WEIGHTS).exists():
        raise FileNotFoundError(f"no toy-world judge in {folder}; train one with: python -m imagegen.train judge")
    meta = json.loads((folder / META).read_text())
    judge = ToyJudge(meta["image_size"], meta["seed"], **meta["config"])
    with np.load(folder / WEIGHTS) as arrays:
        judge.model.set_weights([arrays[f"w{i:03d}"].astype(np.float32) for i in range(len(arrays.files))])
    judge.record = meta["record"]
    return judge


def decode(outputs):
    """Scene dicts from head outputs (probabilities, or the one-hot targets of ``scene_labels``)."""
    out = {key: np.asarray(value) for key, value in outputs.items()}
    scenes = []
    for i in range(len(out["objects"])):
        objects = []
        for j in np.flatnonzero(out["objects"][i] > 0.5):
            name = OBJECTS[j]
            # A colourable object that is present has some colour: the best of the named ones.
            color = COLORS[int(np.argmax(out[f"{name}_color"][i, : len(COLORS)]))] if name in COLORED else None
            objects.append({"name": name, "color": color})
        verb = VERBS[int(np.argmax(out["relation"][i]))]
        relation = None
        if verb != NONE:
            relation = (OBJECTS[int(np.argmax(out["subject"][i, :-1]))], verb, OBJECTS[int(np.argmax(out["target"][i, :-1]))])
        scenes.append({"objects": objects, "relation": relation, "place": PLACES[int(np.argmax(out["place"][i]))]})
    return scenes


def _objects(scene):
    return sorted((obj["name"], obj["color"]) for obj in scene["objects"])


def _relation(scene):
    return _pair(scene["relation"]) if scene["relation"] else None


def follows(read, subject=None, verb=None, target=None, place=None):
    """Whether a judged scene shows what a prompt asked: each given part must match ("next to" in either order)."""
    names = {obj["name"] for obj in read["objects"]}
    if subject and subject not in names or target and target not in names:
        return False
    if verb and _relation(read) != _pair((subject, verb, target)):
        return False
    return place is None or read["place"] == place
