"""How well a mini pipeline follows its prompts, scored after training and stored with its weights.

A toy-world mini (the shipped one) is read by the toy-world judge (``world_eval``): the
title's rate ("an astronaut riding a horse", never in training) and the seen prompts'.
A toy-flower mini (``--dataset toy_flowers``, the first recipe) is read by a toy-flower classifier:

The 48 canonical prompts "a {colour} flower with {n} petals" are drawn, and
``imagegen.classifier.ToyFlowerClassifier`` reads back each image's colour and petal count.
That classifier is a model of its own, trained on real toy flowers before it can score
anything (``prompt_classifier``: about a minute on a CPU); its held-out accuracy on real
flowers is the ceiling of what it can read, reported with the scores.
``evaluate_and_record`` scores the mini weights and stores the result in their ``mini.json``.
This module sits above the pipeline: it builds one; nothing below imports it.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from imagegen.stable_diffusion.mini_asset import ASSET_DIR, IMAGE_SIZE, load_mini, mini_record, update_record
from imagegen.stable_diffusion.pipeline import StableDiffusion


def prompt_classifier(image_size, num_images=6000, epochs=6, log=print):
    """(a ``ToyFlowerClassifier`` trained now on fresh toy flowers, its held-out {"color", "petals"} accuracies)."""
    from imagegen.classifier import ToyFlowerClassifier

    log(f"training the toy-flower classifier that reads the images ({num_images} flowers, {epochs} epochs)")
    classifier = ToyFlowerClassifier(image_size)
    return classifier, classifier.fit(num_images=num_images, epochs=epochs)


def evaluate_prompts(pipeline, classifier, images_per_prompt=4, num_steps=25, guidance_scale=7.5, seed=0, held_out=None):
    """Score the canonical prompts "a {colour} flower with {n} petals" (48 of them) with ``classifier``.

    classifier: a trained ``ToyFlowerClassifier`` (``prompt_classifier`` trains one);
    held_out: its accuracy on real toy flowers, passed through to the result.
    Returns {"color", "petals"} accuracies, plus "images" (uint8) and the prompts' attributes, and
    "classifier_held_out".
    """
    from imagegen.data.toy_flowers import canonical_prompts

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
    """Load the mini weights in ``folder``, score its prompts, store the scores in ``mini.json``."""
    folder = pathlib.Path(folder)
    pipeline = StableDiffusion(*load_mini(folder), img_height=IMAGE_SIZE, img_width=IMAGE_SIZE, progress=False)
    if mini_record(folder).get("recipe", {}).get("dataset", "toy_flowers") == "toy_world":
        return _evaluate_world(folder, pipeline)
    started = time.perf_counter()
    classifier, held_out = prompt_classifier(pipeline.img_height)
    result = evaluate_prompts(pipeline, classifier, held_out=held_out)
    scores = {k: result[k] for k in ("color", "petals", "num_images", "num_steps", "guidance_scale", "classifier_held_out")}
    scores["seconds"] = round(time.perf_counter() - started, 1)  # the classifier's training included, as before
    update_record(folder, prompt_accuracy=scores)
    print(f"canonical prompts ({scores['num_images']} images, {scores['num_steps']} steps, guidance "
          f"{scores['guidance_scale']}): colour {scores['color']:.1%}, petals {scores['petals']:.1%}; classifier on real "
          f"toy flowers: colour {held_out['color']:.1%}, petals {held_out['petals']:.1%}")
    return scores


def _evaluate_world(folder, pipeline, num_steps=25):
    """The guidance picked on the seen prompts (``world_eval.pick_guidance``), then at that scale the judge's
    reading of the title prompt (64 images) and of every seen prompt (4 images each)."""
    from imagegen.stable_diffusion import world_eval
    from imagegen.toy_judge import load_judge

    started = time.perf_counter()
    judge = load_judge()
    guidance_scale, sweep = world_eval.pick_guidance(pipeline, judge, num_steps=num_steps)
    title = world_eval.title_rate(pipeline, judge, num_images=64, num_steps=num_steps, guidance_scale=guidance_scale)
    seen = next(row for row in sweep if row["guidance_scale"] == guidance_scale)
    scores = {"title": {k: title[k] for k in ("riding", "both", "num_images")},
              "seen": {**{k: seen[k] for k in ("objects", "relation", "place")}, "num_prompts": len(world_eval.SEEN),
                       "images_per_prompt": 4},
              "num_steps": num_steps, "guidance_scale": guidance_scale, "guidance_sweep": sweep,
              "judge_held_out": judge.record.get("held_out_accuracy"), "seconds": round(time.perf_counter() - started, 1)}
    update_record(folder, prompt_accuracy=scores, guidance_scale=guidance_scale)
    for row in sweep:
        print(f"guidance {row['guidance_scale']:4}: seen prompts' objects {row['objects']:.0%}, relation "
              f"{row['relation']:.0%}, place {row['place']:.0%}")
    print(f"{world_eval.TITLE_PROMPT!r} at guidance {guidance_scale} ({title['num_images']} images, never in training): "
          f"judged riding {title['riding']:.0%}, both shown {title['both']:.0%}")
    return scores
