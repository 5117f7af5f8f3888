"""The recipe that trains the course's mini Stable Diffusion: SD's three parts, small, on the captioned toy world.

Same classes as SD v1 (``TextEncoder``, ``UNet``, ``Decoder``, ``Encoder``)
with small configurations, so every application of the pipeline runs offline in
seconds on a CPU. ``train_mini`` (run by ``python -m imagegen.train mini``):

1. a toy CLIP (notebook 04's recipe) trained on toy-world captions; its text tower is the
   text encoder, frozen, as SD uses CLIP's;
2. the autoencoder, 64x64 scenes -> 16x16x4 latents, then its latent scale. It trains on
   32x32 crops centred on objects (it is convolutional, so it works on whole images after,
   and the small things a prompt names get most of its training instead of the empty sky),
   with noise on its latents;
3. the UNet (v-prediction, cross-attention on the text features) on those latents.

``dataset="toy_flowers"`` trains the first mini model's recipe (``TOY_FLOWER_CHANGES``) on toy
flowers instead. Each stage resumes from its checkpoints in the run folder. The result is
written in the shipped format (``mini_asset``); ``mini_eval`` then scores its prompts.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from imagegen.files import atomic_path
from imagegen.stable_diffusion.mini_asset import ASSET_DIR, IMAGE_SIZE, save_mini

# The recipe of the shipped mini model, on the toy world. The autoencoder trains on 32x32 crops centred on objects
# and with noise on its latents; the UNet with the mean squared error, as SD's, with a linear warm-up to its peak
# learning rate (at 2e-3 without one its loss stalls on a plateau: it never learns the last steps).
RECIPE = dict(
    dataset="toy_world", image_size=IMAGE_SIZE, num_images=12000, seed=0, clip_images=6000, clip_epochs=8,
    vae_epochs=5, vae_batch_size=32, vae_crop=32, vae_learning_rate=2e-3, kl_weight=1e-6, latent_noise=0.2,
    unet_epochs=12, unet_batch_size=32, unet_learning_rate=1e-3, unet_warmup_steps=200, weight_decay=1e-4,
    unet_loss="mse", training_power=1.0, condition_dropout=0.15,
)
# What ``dataset="toy_flowers"`` changes: the recipe of the first mini model (toy flowers, whole images).
TOY_FLOWER_CHANGES = dict(dataset="toy_flowers", vae_epochs=2, vae_batch_size=16, vae_crop=0, vae_learning_rate=1e-3,
                          latent_noise=0.0, unet_loss="mae", unet_learning_rate=2e-3, unet_warmup_steps=0)


def recipe_for(**overrides):
    """The full recipe: ``RECIPE``, with ``TOY_FLOWER_CHANGES`` for toy flowers, then ``overrides``."""
    unknown = set(overrides) - set(RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe settings {sorted(unknown)}; the recipe has {sorted(RECIPE)}")
    base = {**RECIPE, **(TOY_FLOWER_CHANGES if overrides.get("dataset") == "toy_flowers" else {})}
    return {**base, **overrides}


def _log(message):
    print(message, flush=True)


def train_mini(run_dir, output=ASSET_DIR, log=_log, **overrides):
    """Run the whole recipe (resumable) and write the weights to ``output``; returns the record it saves."""
    import keras

    from imagegen.clip.recipes import TOY_SETS, toy_clip
    from imagegen.data import toy_flowers, toy_world
    from imagegen.stable_diffusion import autoencoder, unet as unet_module
    from imagegen.stable_diffusion.training import (AutoencoderTrainer, latent_diffusion_model, measure_latent_scale,
                                                    unet_of, with_latent_scale)
    from imagegen.stable_diffusion.unet import UNet
    from imagegen.stable_diffusion.autoencoder import Decoder, Encoder

    recipe = recipe_for(**overrides)
    run_dir = pathlib.Path(run_dir)
    started = time.perf_counter()
    keras.utils.set_random_seed(recipe["seed"])

    dataset = recipe["dataset"]
    if dataset not in TOY_SETS:
        raise ValueError(f"dataset must be one of {TOY_SETS}, got {dataset!r}")
    log(f"1/4 data: {recipe['num_images']} captioned {dataset} at {recipe['image_size']}x{recipe['image_size']}")
    data = (toy_flowers if dataset == "toy_flowers" else toy_world)(recipe["num_images"], recipe["image_size"],
                                                                    seed=recipe["seed"])
    log(f"2/4 text encoder: the text tower of a toy CLIP trained on {dataset} captions (cached, or trained now)")
    clip, tokenizer = toy_clip(num_images=recipe["clip_images"], epochs=recipe["clip_epochs"], dataset=dataset)
    text_encoder = clip.text_encoder

    log(f"3/4 autoencoder: {recipe['vae_epochs']} epochs")
    vae_config = autoencoder.CONFIGS["mini"]
    encoder, decoder = Encoder(**vae_config, latent_scale=1.0), Decoder(**vae_config, latent_scale=1.0)
    trainer = AutoencoderTrainer(encoder, decoder, recipe["kl_weight"], seed=recipe["seed"], latent_noise=recipe["latent_noise"])
    crops = (object_crops(data, recipe["vae_crop"], seed=recipe["seed"], multiple=encoder.downsampling)
             if recipe["vae_crop"] else data.images)
    steps = recipe["vae_epochs"] * (len(crops) // recipe["vae_batch_size"])
    trainer.compile(optimizer=keras.optimizers.AdamW(
        keras.optimizers.schedules.CosineDecay(recipe["vae_learning_rate"], steps, alpha=0.05), weight_decay=1e-4))
    vae_history, vae_resumed = _train_stage(trainer, crops, run_dir / "vae", recipe["vae_epochs"],
                                            recipe["vae_batch_size"], crops[:1])
    scale = measure_latent_scale(encoder, data.images[:2000])
    encoder, decoder = with_latent_scale(encoder, scale), with_latent_scale(decoder, scale)
    log(f"   latent scale {scale:.4f}; reconstruction error {vae_history['reconstruction'][-1]:.4f} (mean |x - x'| in [-1, 1])")

    log(f"4/4 UNet: {recipe['unet_epochs']} epochs on latents")
    latents = np.concatenate([np.asarray(encoder(data.images[i : i + 256] * 2.0 - 1.0)) for i in range(0, len(data.images), 256)])
    ids = tokenizer(list(data.captions))
    contexts = np.concatenate([np.asarray(text_encoder(ids[i : i + 512])) for i in range(0, len(ids), 512)])
    unet = UNet(**{**unet_module.CONFIGS["mini"], "context_dim": text_encoder.width})
    model = latent_diffusion_model(unet, latents.shape[1], text_encoder.max_length, recipe["training_power"],
                                   recipe["condition_dropout"], loss=recipe["unet_loss"], seed=recipe["seed"])
    model.set_null_context(text_encoder(tokenizer([""]))[0])
    steps = recipe["unet_epochs"] * (len(latents) // recipe["unet_batch_size"])
    model.compile(optimizer=keras.optimizers.AdamW(unet_schedule(recipe, steps), weight_decay=recipe["weight_decay"]))
    unet_history, unet_resumed = _train_stage(model, {"images": latents, "context": contexts}, run_dir / "unet",
                                              recipe["unet_epochs"], recipe["unet_batch_size"],
                                              {"images": latents[:1], "context": contexts[:1]})

    # A stage finished by an earlier call counts the seconds it took then.
    earlier = vae_history["seconds"] * vae_resumed + unet_history["seconds"] * unet_resumed
    record = {"recipe": recipe, "train_seconds": round(time.perf_counter() - started + earlier, 1),
              "stage_seconds": {"vae": round(vae_history["seconds"], 1), "unet": round(unet_history["seconds"], 1)},
              "latent_scale": scale, "vae_history": vae_history, "unet_history": unet_history}
    save_mini(output, (text_encoder, unet_of(model), decoder, encoder), record)
    log(f"done in {record['train_seconds'] / 60:.1f} min; weights in {output}")
    return record


def unet_schedule(recipe, steps):
    """The UNet's learning rate over ``steps``: linear from 0 to the peak over ``unet_warmup_steps``, then a
    cosine down to 5% of the peak (without a warm-up, the cosine starts at the peak)."""
    import keras

    peak, warmup = recipe["unet_learning_rate"], recipe["unet_warmup_steps"]
    if not 0 <= warmup < steps:
        raise ValueError(f"unet_warmup_steps must be in [0, {steps}) (the UNet's steps), got {warmup}")
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, steps, alpha=0.05)
    return keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, alpha=0.05, warmup_target=peak, warmup_steps=warmup)


def object_crops(data, size, seed=0, multiple=4, centred=0.8):
    """One ``size`` x ``size`` crop per image of ``data``: around one of its objects (``centred`` of the time,
    when its scenes have them), else anywhere. Corners fall on multiples of ``multiple`` (the autoencoder's
    downsampling), so a crop's latent pixels are the whole image's."""
    images = data.images
    full = images.shape[1]
    if size > full:
        raise ValueError(f"vae_crop {size} is larger than the images ({full}); use {full} or less")
    rng = np.random.default_rng(seed)
    scenes = getattr(data, "scenes", None)
    crops = np.empty((len(images), size, size, 3), np.float32)
    for i in range(len(images)):
        objects = scenes[i]["objects"] if scenes is not None else []
        if objects and rng.random() < centred:
            x0, y0, x1, y1 = objects[rng.integers(len(objects))]["box"]
            cx, cy = (x0 + x1) / 2 + rng.integers(-6, 7), (y0 + y1) / 2 + rng.integers(-6, 7)
        else:
            cx, cy = rng.uniform(0, full), rng.uniform(0, full)
        left, top = (int(np.clip(c - size / 2, 0, full - size)) // multiple * multiple for c in (cx, cy))
        crops[i] = images[i, top : top + size, left : left + size]
    return crops


def _train_stage(model, x, directory, epochs, batch_size, example):
    """``fit_resumable`` once per run folder: a finished stage (done.weights.h5) is loaded, not retrained.

    ``history.json``, then ``done.weights.h5`` (the mark of a finished stage) are written
    atomically, so an interrupted save leaves no file that a later run would trust.
    Returns (history with the stage's "seconds", whether it was finished by an earlier call).
    """
    from imagegen.resumable import EpochLogger, fit_resumable

    done, history_path = directory / "done.weights.h5", directory / "history.json"
    if done.exists():
        model(example)  # build the variables, then fill them
        if getattr(model, "optimizer", None) is not None:
            model.optimizer.build(model.trainable_variables)  # the file holds its state too: nothing is skipped
        model.load_weights(done)
        return json.loads(history_path.read_text()), True
    started = time.perf_counter()
    history = fit_resumable(model, x, directory, epochs, batch_size=batch_size, shuffle=True, callbacks=[EpochLogger()],
                            verbose=0, save=False)
    record = {key: [float(v) for v in values] for key, values in history.history.items()}
    record["seconds"] = time.perf_counter() - started
    with atomic_path(history_path) as temporary:
        temporary.write_text(json.dumps(record))
    with atomic_path(done) as temporary:  # the temporary name ends in .weights.h5, as save_weights wants
        model.save_weights(temporary)
    return record, False
