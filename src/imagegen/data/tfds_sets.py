"""Full-mode data: MNIST, Fashion-MNIST shoes and Oxford Flowers 102 as ``tf.data`` pipelines.

These run on Colab (or any machine with the network) through
tensorflow-datasets. Before asking tfds for a data set that is not prepared
yet, we check in seconds that its download host answers: offline, tfds itself
would retry for about 200 s before failing.

Every pipeline yields ``(image, label)`` with images float32 in [0, 1],
shape (size, size, channels): the usual preprocessing of the keras.io VAE and
DDIM examples (scale to [0, 1]; flowers centre-cropped to a square and resized
with antialiasing).
"""

from __future__ import annotations

from imagegen.network import require_reachable

# Where tensorflow-datasets downloads each set from (checked before tfds.load).
DOWNLOAD_HOSTS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "oxford_flowers102": "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
}
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "oxford_flowers102": "Oxford Flowers 102"}

# Fashion-MNIST labels that are shoes, and their names in our 3-class shoe set.
SHOE_LABELS = (5, 7, 9)
SHOE_NAMES = ("sandal", "sneaker", "ankle boot")

# Oxford Flowers 102's official splits are small for training (1,020 images
# each for train and validation); like the keras.io DDIM example we train on
# 80% of all three and validate on the rest.
FLOWERS_SPLITS = {
    "train": "train[:80%]+validation[:80%]+test[:80%]",
    "validation": "train[80%:]+validation[80%:]+test[80%:]",
}


def load_tfds(name, split, data_dir=None, timeout=5.0):
    """``tfds.load(name, split=split, with_info=True)``, failing in seconds when offline.

    Returns (dataset of feature dicts, info). Raises ``OfflineError`` naming the
    data set, the host and the fixes when it is neither prepared nor reachable.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        url = DOWNLOAD_HOSTS.get(name, "https://storage.googleapis.com")
        require_reachable(url, f"{TITLES.get(name, name)} (tensorflow-datasets '{name}') is not prepared in "
                          f"{builder.data_dir} and cannot be downloaded",
                          f"connect to the internet and rerun; or copy a prepared tensorflow_datasets/{name} folder to "
                          f"{builder.data_dir}; or run offline in quick mode with IMAGEGEN_MODE=quick.", timeout=timeout)
    return tfds.load(name, split=split, with_info=True, data_dir=data_dir)


def _finish(dataset, batch_size, shuffle, seed):
    """Cache the preprocessed examples, then shuffle, batch and prefetch."""
    import tensorflow as tf

    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=shuffle)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _grayscale(image_size):
    import tensorflow as tf

    def preprocess(example):
        image = tf.cast(example["image"], tf.float32) / 255.0  # uint8 [0, 255] -> float [0, 1]
        if image_size != 28:
            image = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.clip_by_value(image, 0.0, 1.0), example["label"]

    return preprocess


def mnist_pipeline(split="train", image_size=28, batch_size=None, shuffle=False, seed=0, data_dir=None):
    """MNIST handwritten digits: (image float32 (size, size, 1) in [0, 1], label int64 0..9)."""
    import tensorflow as tf

    dataset, _ = load_tfds("mnist", split, data_dir)
    dataset = dataset.map(_grayscale(image_size), num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset, batch_size, shuffle, seed)


def shoes_pipeline(split="train", image_size=28, batch_size=None, shuffle=False, seed=0, data_dir=None):
    """Fashion-MNIST shoes only: sandal, sneaker, ankle boot, relabelled 0, 1, 2 (``SHOE_NAMES``)."""
    import tensorflow as tf

    dataset, _ = load_tfds("fashion_mnist", split, data_dir)
    shoe_labels = tf.constant(SHOE_LABELS, dtype=tf.int64)
    dataset = dataset.filter(lambda example: tf.reduce_any(tf.equal(example["label"], shoe_labels)))
    preprocess = _grayscale(image_size)

    def relabel(example):
        image, label = preprocess(example)
        return image, tf.argmax(tf.cast(tf.equal(label, shoe_labels), tf.int64))

    dataset = dataset.map(relabel, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset, batch_size, shuffle, seed)


def flowers102_pipeline(split="train", image_size=64, batch_size=None, shuffle=False, seed=0, data_dir=None):
    """Oxford Flowers 102, centre-cropped and resized: (image float32 (size, size, 3) in [0, 1], label 0..101).

    split: "train" or "validation" (our 80/20 split of all images, see
    ``FLOWERS_SPLITS``), or any tfds split string.
    Class names: ``flowers102_class_names()``.
    """
    import tensorflow as tf

    dataset, _ = load_tfds("oxford_flowers102", FLOWERS_SPLITS.get(split, split), data_dir)

    def preprocess(example):
        image = example["image"]
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        side = tf.minimum(height, width)
        # Centre crop to a square, then resize with antialiasing.
        image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
        image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, (image_size, image_size), antialias=True)
        return tf.clip_by_value(image, 0.0, 1.0), example["label"]

    dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset, batch_size, shuffle, seed)


def flowers102_class_names():
    """The 102 flower class names, in label order (from the tfds metadata; no download)."""
    import tensorflow_datasets as tfds

    return list(tfds.builder("oxford_flowers102").info.features["label"].names)


def to_numpy(dataset, limit=None):
    """Materialise an unbatched ``(image, label)`` pipeline as numpy (images, labels)."""
    import numpy as np

    if limit is not None:
        dataset = dataset.take(limit)
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError("the data set is empty; check the split name")
    return np.stack(images).astype("float32"), np.asarray(labels, dtype="int32")
