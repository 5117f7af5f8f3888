"""The course's mini Stable Diffusion: SD's three parts, small, trained here on captioned toy flowers.

Same classes as SD v1 (``TextEncoder``, ``UNet``, ``Decoder``, ``ImageEncoder``)
with small configurations, so every application of the pipeline runs offline in
seconds on a CPU. The recipe (``train_mini``, run by ``python -m imagegen.train mini``):

1. the toy CLIP of notebook 04 (its text tower is the text encoder, frozen);
2. the autoencoder on 64x64 toy flowers -> 16x16x4 latents, then its latent scale;
3. the UNet (v-prediction, cross-attention on the text features) on those latents.

Each stage resumes from its checkpoints in the run folder. The weights ship as
package data (``imagegen/assets/mini``): ``mini.safetensors`` (float16, each
module's weights in its fixed order) and ``mini.json`` (the configurations and
what the recipe measured).
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np

ASSET_DIR = pathlib.Path(__file__).resolve().parent.parent / "assets" / "mini"
PARTS = ("text_encoder", "unet", "decoder", "image_encoder")
IMAGE_SIZE = 64
RECIPE = dict(
    image_size=IMAGE_SIZE, num_images=12000, seed=0,
    vae_epochs=2, vae_batch_size=16, vae_learning_rate=1e-3, kl_weight=1e-6,
    unet_epochs=12, unet_batch_size=32, unet_learning_rate=2e-3, weight_decay=1e-4,
    training_power=1.0, condition_dropout=0.15,
)


def _log(message):
    print(message, flush=True)


def train_mini(run_dir, output=ASSET_DIR, log=_log, **overrides):
    """Run the whole recipe (resumable) and write the weights to ``output``; returns the record it saves."""
    import keras

    from imagegen.clip.recipes import toy_clip
    from imagegen.data.toy_flowers import toy_flowers
    from imagegen.stable_diffusion import unet as unet_module, vae as vae_module
    from imagegen.stable_diffusion.training import (AutoencoderTrainer, latent_diffusion_model, measure_latent_scale,
                                                    unet_of, with_latent_scale)
    from imagegen.stable_diffusion.unet import UNet
    from imagegen.stable_diffusion.vae import Decoder, ImageEncoder

    unknown = set(overrides) - set(RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe settings {sorted(unknown)}; the recipe has {sorted(RECIPE)}")
    recipe = {**RECIPE, **overrides}
    run_dir = pathlib.Path(run_dir)
    started = time.perf_counter()
    keras.utils.set_random_seed(recipe["seed"])

    log(f"1/4 data: {recipe['num_images']} captioned toy flowers at {recipe['image_size']}x{recipe['image_size']}")
    data = toy_flowers(recipe["num_images"], recipe["image_size"], seed=recipe["seed"])
    log("2/4 text encoder: the toy CLIP of notebook 04 (cached, or trained now)")
    clip, tokenizer = toy_clip()
    text_encoder = clip.text_encoder

    log(f"3/4 autoencoder: {recipe['vae_epochs']} epochs")
    vae_config = vae_module.CONFIGS["mini"]
    encoder, decoder = ImageEncoder(**vae_config, latent_scale=1.0), Decoder(**vae_config, latent_scale=1.0)
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

    Returns (history with the stage's "seconds", whether it was finished by an earlier call).
    """
    from imagegen.training import EpochLogger, fit_resumable

    done = directory / "done.weights.h5"
    if done.exists():
        model(example)  # build the variables, then fill them
        model.load_weights(done)
        return json.loads((directory / "history.json").read_text()), True
    started = time.perf_counter()
    history = fit_resumable(model, x, directory, epochs, batch_size=batch_size, shuffle=True, callbacks=[EpochLogger()],
                            verbose=0, save=False)
    record = {key: [float(v) for v in values] for key, values in history.history.items()}
    record["seconds"] = time.perf_counter() - started
    _write_atomic(directory / "history.json", json.dumps(record))
    _save_weights_atomic(model, done)
    return record, False


def _write_atomic(path, text):
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text)
    os.replace(temporary, path)


def _save_weights_atomic(model, path):
    temporary = path.with_name(f".partial.{path.name}")
    model.save_weights(temporary)
    os.replace(temporary, path)


# -- the shipped weights -------------------------------------------------------------------------
def save_mini(folder, modules, record=None, dtype="float16"):
    """Write (text_encoder, unet, decoder, image_encoder) as ``mini.safetensors`` + ``mini.json`` in ``folder``."""
    from safetensors.numpy import save_file

    from imagegen.stable_diffusion.weights import ordered_variables

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, configs = {}, {}
    for part, module in zip(PARTS, modules):
        variables = ordered_variables(module)
        if len(variables) != len(module.weights):
            raise ValueError(f"{part}: the fixed order lists {len(variables)} of its {len(module.weights)} weights")
        for index, variable in enumerate(variables):
            tensors[f"{part}/{index:04d}"] = np.asarray(variable.numpy(), dtype=dtype)
        configs[part] = {k: v for k, v in module.get_config().items() if k not in ("name", "trainable")}
    weights, meta = folder / "mini.safetensors", folder / "mini.json"
    save_file(tensors, str(weights.with_name(".partial.mini.safetensors")))
    os.replace(weights.with_name(".partial.mini.safetensors"), weights)
    _write_atomic(meta, json.dumps({"configs": configs, "record": record or {}}, indent=1, default=_jsonable))
    return weights


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in mini.json")


def mini_record(folder=ASSET_DIR):
    """What the recipe measured when the shipped weights were trained (``mini.json``'s record)."""
    return json.loads((pathlib.Path(folder) / "mini.json").read_text())["record"]


def load_mini(folder=ASSET_DIR, dtype=None):
    """(text_encoder, unet, decoder, image_encoder) with the mini model's weights (float32 unless ``dtype``)."""
    from safetensors.numpy import load_file

    from imagegen.clip import TextEncoder
    from imagegen.stable_diffusion.precision import dtype_policy
    from imagegen.stable_diffusion.unet import UNet
    from imagegen.stable_diffusion.vae import Decoder, ImageEncoder
    from imagegen.stable_diffusion.weights import assign_in_order

    folder = pathlib.Path(folder)
    weights, meta = folder / "mini.safetensors", folder / "mini.json"
    if not weights.exists() or not meta.exists():
        raise FileNotFoundError(f"the mini model's weights are missing from {folder}; train them with "
                                "`python -m imagegen.train mini` (about 45 minutes on 2 CPU cores)")
    configs = json.loads(meta.read_text())["configs"]
    tensors = load_file(str(weights))
    with dtype_policy(dtype):
        text_encoder, unet = TextEncoder(**configs["text_encoder"]), UNet(**configs["unet"])
    with dtype_policy("float32"):
        decoder, image_encoder = Decoder(**configs["decoder"]), ImageEncoder(**configs["image_encoder"])
    modules = (text_encoder, unet, decoder, image_encoder)
    for part, module in zip(PARTS, modules):
        arrays = [tensors[key] for key in sorted(k for k in tensors if k.startswith(part + "/"))]
        assign_in_order(module, arrays, source=f"{weights.name} ({part})")
    return modules


# -- how well it follows prompts -----------------------------------------------------------------
def evaluate_prompts(pipeline, classifier=None, images_per_prompt=4, num_steps=25, guidance_scale=7.5, seed=0):
    """Score the canonical prompts "a {colour} flower with {n} petals" (48 of them) with the toy-flower classifier.

    Returns {"color", "petals"} accuracies, plus "images" (uint8) and the prompts' attributes, and
    "classifier" (its held-out accuracy on real toy flowers: the ceiling of what it can read).
    """
    from imagegen.classifier import ToyFlowerClassifier
    from imagegen.data.toy_flowers import canonical_prompts

    if classifier is None:
        classifier = ToyFlowerClassifier(pipeline.img_height)
        held_out = classifier.fit(num_images=6000, epochs=6)
    else:
        held_out = None
    triples = canonical_prompts()
    images = []
    for index, (prompt, _, _) in enumerate(triples):
        images.append(pipeline.text_to_image(prompt, batch_size=images_per_prompt, num_steps=num_steps,
                                             unconditional_guidance_scale=guidance_scale, seed=seed + index))
    images = np.concatenate(images)
    colors = [c for _, c, _ in triples for _ in range(images_per_prompt)]
    petals = [n for _, _, n in triples for _ in range(images_per_prompt)]
    scores = classifier.accuracy(images.astype("float32") / 255.0, colors, petals)
    return {**scores, "num_images": len(images), "num_steps": num_steps, "guidance_scale": guidance_scale,
            "classifier_held_out": held_out, "images": images, "colors": colors, "petals_asked": petals}


def evaluate_and_record(folder=ASSET_DIR):
    """Load the mini weights in ``folder``, score its prompts, and store the scores in ``mini.json``."""
    from imagegen.stable_diffusion.pipeline import StableDiffusion

    folder = pathlib.Path(folder)
    pipeline = StableDiffusion(*load_mini(folder), img_height=IMAGE_SIZE, img_width=IMAGE_SIZE, progress=False)
    started = time.perf_counter()
    result = evaluate_prompts(pipeline)
    scores = {k: result[k] for k in ("color", "petals", "num_images", "num_steps", "guidance_scale", "classifier_held_out")}
    scores["seconds"] = round(time.perf_counter() - started, 1)
    meta = json.loads((folder / "mini.json").read_text())
    meta["record"]["prompt_accuracy"] = scores
    _write_atomic(folder / "mini.json", json.dumps(meta, indent=1, default=_jsonable))
    print(f"canonical prompts ({scores['num_images']} images, {scores['num_steps']} steps, guidance "
          f"{scores['guidance_scale']}): colour {scores['color']:.1%}, petals {scores['petals']:.1%}; classifier on real "
          f"toy flowers: colour {scores['classifier_held_out']['color']:.1%}, petals {scores['classifier_held_out']['petals']:.1%}")
    return scores
