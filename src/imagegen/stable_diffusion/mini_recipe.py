"""The recipe that trains the course's mini Stable Diffusion: SD's three parts, small, on captioned toy flowers.

Same classes as SD v1 (``TextEncoder``, ``UNet``, ``Decoder``, ``Encoder``)
with small configurations, so every application of the pipeline runs offline in
seconds on a CPU. ``train_mini`` (run by ``python -m imagegen.train mini``):

1. the toy CLIP of notebook 04 (its text tower is the text encoder, frozen);
2. the autoencoder on 64x64 toy flowers -> 16x16x4 latents, then its latent scale;
3. the UNet (v-prediction, cross-attention on the text features) on those latents.

``dataset="toy_world"`` trains the same recipe on the toy world's scenes, with a toy CLIP
trained on toy-world captions (``toy_clip(dataset="toy_world")``) as its text encoder.
Each stage resumes from its checkpoints in the run folder. The result is written
in the shipped format (``mini_asset``); ``mini_eval`` then scores its prompts.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from imagegen.files import atomic_path
from imagegen.stable_diffusion.mini_asset import ASSET_DIR, IMAGE_SIZE, save_mini

RECIPE = dict(
    dataset="toy_flowers", image_size=IMAGE_SIZE, num_images=12000, seed=0, clip_images=6000, clip_epochs=8,
    vae_epochs=2, vae_batch_size=16, vae_learning_rate=1e-3, kl_weight=1e-6,
    unet_epochs=12, unet_batch_size=32, unet_learning_rate=2e-3, weight_decay=1e-4,
    training_power=1.0, condition_dropout=0.15,
)


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

    unknown = set(overrides) - set(RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe settings {sorted(unknown)}; the recipe has {sorted(RECIPE)}")
    recipe = {**RECIPE, **overrides}
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
    trainer = AutoencoderTrainer(encoder, decoder, recipe["kl_weight"], seed=recipe["seed"])
    steps = recipe["vae_epochs"] * (len(data.images) // recipe["vae_batch_size"])
    trainer.compile(optimizer=keras.optimizers.AdamW(
        keras.optimizers.schedules.CosineDecay(recipe["vae_learning_rate"], steps, alpha=0.05), weight_decay=1e-4))
    vae_history, vae_resumed = _train_stage(trainer, data.images, run_dir / "vae", recipe["vae_epochs"],
                                            recipe["vae_batch_size"], data.images[:1])
    scale = measure_latent_scale(encoder, data.images[:2000])
    encoder, decoder = with_latent_scale(encoder, scale), with_latent_scale(decoder, scale)
    log(f"   latent scale {scale:.4f}; reconstruction error {vae_history['reconstruction'][-1]:.4f} (mean |x - x'| in [-1, 1])")

    log(f"4/4 UNet: {recipe['unet_epochs']} epochs on latents")
    latents = np.concatenate([np.asarray(encoder(data.images[i : i + 256] * 2.0 - 1.0)) for i in range(0, len(data.images), 256)])
    ids = tokenizer(list(data.captions))
    contexts = np.concatenate([np.asarray(text_encoder(ids[i : i + 512])) for i in range(0, len(ids), 512)])
    unet = UNet(**{**unet_module.CONFIGS["mini"], "context_dim": text_encoder.width})
    model = latent_diffusion_model(unet, latents.shape[1], text_encoder.max_length, recipe["training_power"],
                                   recipe["condition_dropout"], seed=recipe["seed"])
    model.set_null_context(text_encoder(tokenizer([""]))[0])
    steps = recipe["unet_epochs"] * (len(latents) // recipe["unet_batch_size"])
    model.compile(optimizer=keras.optimizers.AdamW(
        keras.optimizers.schedules.CosineDecay(recipe["unet_learning_rate"], steps, alpha=0.05),
        weight_decay=recipe["weight_decay"]))
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
