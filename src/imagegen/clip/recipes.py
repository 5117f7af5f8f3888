"""Recipes that train the course's small CLIP: on toy-flower captions (quick) or Flowers 102 (full).

``train_clip`` is the recipe notebook 04 runs. ``toy_clip`` returns the trained
toy model for later notebooks: it loads the copy notebook 04 saved in the cache,
or trains one the same way (about two minutes on 2 CPU cores) and saves it.
"""

from __future__ import annotations

import pathlib

import keras

from imagegen.clip.image_encoder import build_image_encoder
from imagegen.clip.contrastive import CLIP
from imagegen.clip.text_encoder import TextEncoder
from imagegen.clip.tokenizer import CLIPTokenizer
from imagegen.paths import cache_dir
from imagegen.resumable import EpochLogger, fit_resumable


def train_clip(images, captions, run_dir, text_config="clip-tiny", image_widths=(32, 64, 128), embedding_dims=64,
               epochs=8, batch_size=128, learning_rate=1e-3, seed=0, log_every=1):
    """Train a CLIP on (image, caption) pairs; resumes from ``run_dir`` if interrupted.

    images: float32 (n, s, s, 3) in [0, 1]; captions: n strings.
    text_config: a ``TextEncoder`` config name ("clip-tiny"); its max_length sets the padding.
    Returns (clip, tokenizer, history). The model is saved as ``run_dir/model.keras``.
    """
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    keras.utils.set_random_seed(seed)
    text_encoder = TextEncoder.from_config_name(text_config)
    tokenizer = CLIPTokenizer(max_length=text_encoder.max_length)
    image_encoder = build_image_encoder(images.shape[1], image_widths)
    clip = CLIP(image_encoder, text_encoder, embedding_dims)
    clip.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.1))
    data = {"images": images, "token_ids": tokenizer(captions)}
    history = fit_resumable(clip, data, run_dir, epochs, batch_size=batch_size, shuffle=True,
                            callbacks=[EpochLogger(log_every)], verbose=0)
    return clip, tokenizer, history


TOY_SETS = ("toy_flowers", "toy_world")


def toy_clip_run_dir(image_size=32, num_images=6000, epochs=8, seed=0, dataset="toy_flowers"):
    """Where the toy CLIP of these settings is trained and saved (in the cache)."""
    from imagegen.data.toy_world import VERSION

    # The toy world's version is in the name: a CLIP cached from an older world is not reused.
    prefix = "toy_clip" if dataset == "toy_flowers" else f"{dataset}_v{VERSION}_clip"
    return pathlib.Path(cache_dir("clip", f"{prefix}_{image_size}px_{num_images}_{epochs}ep_seed{seed}"))


def toy_clip(image_size=32, num_images=6000, epochs=8, seed=0, dataset="toy_flowers"):
    """A toy CLIP: (clip, tokenizer), from the cache or trained now.

    dataset: "toy_flowers" (notebook 04's CLIP) or "toy_world" (the captions of the mini model's scenes).
    """
    from imagegen.data import toy_flowers, toy_world

    if dataset not in TOY_SETS:
        raise ValueError(f"dataset must be one of {TOY_SETS}, got {dataset!r}")
    run_dir = toy_clip_run_dir(image_size, num_images, epochs, seed, dataset)
    saved = run_dir / "model.keras"
    if saved.exists():
        clip = keras.saving.load_model(saved)
        return clip, CLIPTokenizer(max_length=clip.text_encoder.max_length)
    print(f"Training the toy CLIP ({epochs} epochs on {num_images} captioned {dataset}); it is cached in {run_dir}.")
    data = (toy_flowers if dataset == "toy_flowers" else toy_world)(num_images, image_size, seed=seed)
    clip, tokenizer, _ = train_clip(data.images, data.captions, run_dir, epochs=epochs, seed=seed, log_every=epochs)
    return clip, tokenizer

