"""How well a toy-world pipeline follows its prompts, read by the toy-world judge; and the title's test.

The title's question, "Have you ever seen an astronaut riding a horse?", is asked of a
model trained on the toy world, where no astronaut ever rides a horse:
- ``title_rate``: the share of its pictures for "an astronaut riding a horse" that the
  judge reads as an astronaut riding a horse, and the share that shows both;
- ``nearest_training_images``: for each picture, the closest training images by pixels,
  with their scenes, so a reader sees the combination is not copied;
- ``seen_rates``: prompts that cover every object, relation and place the model was trained
  on, each drawn ``images_per_prompt`` times: objects named, relation and place right;
- ``pick_guidance``: the guidance scale a model follows its seen prompts best at. It is picked
  on the seen prompts only, so the title's rate, measured after at that scale, is not tuned on.

The judge (``imagegen.toy_judge``) reads ground truth it was trained on, never captions.
This module sits above the pipeline: it takes one; nothing below imports it.
"""

from __future__ import annotations

import numpy as np

from imagegen.data.toy_world import PLACE_PHRASES, TITLE_PROMPT, noun
from imagegen.toy_judge import follows

# Prompts that together name every object, relation and place of the toy world (the title's pair excepted).
SEEN = (
    ("cowboy", "riding", "horse", "field"), ("person", "riding", "horse", "beach"), ("cat", "riding", "horse", "moon"),
    ("astronaut", "riding", "rocket", "moon"), ("astronaut", "riding", "bicycle", "field"),
    ("cowboy", "riding", "cow", "lake"), ("person", "riding", "bicycle", "moon"), ("cat", "riding", "rocket", "beach"),
    ("cat", "next to", "boat", "lake"), ("cow", "next to", "tree", "field"), ("person", "next to", "house", "beach"),
    ("astronaut", "next to", "rocket", "moon"), ("horse", "next to", "house", "lake"),
    ("bird", "above", "house", "field"), ("rocket", "above", "tree", "lake"), ("astronaut", "above", "cow", "moon"),
    ("bird", "above", "boat", "beach"),
    (None, None, "tree", "moon"), (None, None, "boat", "lake"), (None, None, "horse", "field"),
)
# Training captions always name these objects' colours, so the prompts do too.
PROMPT_COLORS = {"boat": "red", "bicycle": "blue", "house": "yellow"}


def seen_prompt(subject, verb, target, place):
    """The canonical caption of a (subject, verb, target, place) from ``SEEN``; a single object when verb is None."""
    def named(name):
        return noun(name, PROMPT_COLORS.get(name))

    if verb is None:
        return f"{named(target)} {PLACE_PHRASES[place]}"
    return f"{named(subject)} {verb} {named(target)} {PLACE_PHRASES[place]}"


def _draw(pipeline, prompt, num_images, num_steps, guidance_scale, seed, batch_size=16):
    images = []
    for start in range(0, num_images, batch_size):
        images.append(pipeline.text_to_image(prompt, batch_size=min(batch_size, num_images - start), num_steps=num_steps,
                                             unconditional_guidance_scale=guidance_scale, seed=seed + start))
    return np.concatenate(images)


def title_rate(pipeline, judge, num_images=64, num_steps=25, guidance_scale=7.5, seed=0):
    """Draw ``TITLE_PROMPT`` and read it: {"riding": share judged an astronaut riding a horse,
    "both": share with an astronaut and a horse, "images": uint8, "read": the judge's scenes}."""
    images = _draw(pipeline, TITLE_PROMPT, num_images, num_steps, guidance_scale, seed)
    read = judge.read(images.astype("float32") / 255.0)
    riding = [follows(r, "astronaut", "riding", "horse") for r in read]
    both = [follows(r, "astronaut", None, "horse") for r in read]
    return {"riding": float(np.mean(riding)), "both": float(np.mean(both)), "num_images": num_images,
            "num_steps": num_steps, "guidance_scale": guidance_scale, "images": images, "read": read}


def seen_rates(pipeline, judge, images_per_prompt=4, num_steps=25, guidance_scale=7.5, seed=0):
    """Draw every prompt of ``SEEN``; {"objects", "relation", "place"}: shares of images that show the named
    objects, the asked relation (single-object prompts: none asked, so not counted) and the place."""
    scores = {"objects": [], "relation": [], "place": []}
    per_prompt = []
    for index, (subject, verb, target, place) in enumerate(SEEN):
        prompt = seen_prompt(subject, verb, target, place)
        images = _draw(pipeline, prompt, images_per_prompt, num_steps, guidance_scale, seed + 1000 * index)
        read = judge.read(images.astype("float32") / 255.0)
        objects = [follows(r, subject, None, target) for r in read]
        places = [r["place"] == place for r in read]
        scores["objects"] += objects
        scores["place"] += places
        if verb is not None:
            scores["relation"] += [follows(r, subject, verb, target) for r in read]
        per_prompt.append({"prompt": prompt, "objects": float(np.mean(objects)), "place": float(np.mean(places))})
    result = {key: float(np.mean(values)) for key, values in scores.items()}
    return {**result, "num_prompts": len(SEEN), "images_per_prompt": images_per_prompt, "per_prompt": per_prompt}


GUIDANCE_SCALES = (1.5, 2.0, 3.0, 4.0, 5.0, 7.5)  # SD's 7.5 among them


def pick_guidance(pipeline, judge, scales=GUIDANCE_SCALES, images_per_prompt=4, num_steps=25, seed=0):
    """The scale of ``scales`` at which the seen prompts are followed best (the mean of the objects' and the
    relation's rates; the first scale wins a tie), and every scale's {"guidance_scale", "objects", "relation",
    "place"}. Small models want less guidance than SD's 7.5: pushed harder, their pictures leave what they learned."""
    table = []
    for scale in scales:
        rates = seen_rates(pipeline, judge, images_per_prompt, num_steps, scale, seed)
        table.append({"guidance_scale": float(scale), **{k: rates[k] for k in ("objects", "relation", "place")}})
    best = max(table, key=lambda row: (row["objects"] + row["relation"]) / 2)
    return best["guidance_scale"], table


def nearest_training_images(samples, world, k=3, chunk=2048):
    """For each sample (uint8 or float (n, s, s, 3)), the ``k`` training images of ``world`` closest in pixels.

    Returns (indices (n, k), distances (n, k): root-mean-square difference in [0, 1] units).
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.max() > 1.5:
        samples = samples / 255.0
    flat = samples.reshape(len(samples), -1)
    best_d = np.full((len(samples), k), np.inf, np.float32)
    best_i = np.zeros((len(samples), k), np.int64)
    for start in range(0, len(world.images), chunk):
        block = world.images[start : start + chunk].reshape(-1, flat.shape[1])
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, one matrix product per chunk
        d = (np.sum(flat**2, 1)[:, None] - 2 * flat @ block.T + np.sum(block**2, 1)[None, :]) / flat.shape[1]
        d = np.sqrt(np.maximum(d, 0))
        both_d = np.concatenate([best_d, d], axis=1)
        both_i = np.concatenate([best_i, np.arange(start, start + len(block))[None, :].repeat(len(samples), 0)], axis=1)
        order = np.argsort(both_d, axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(both_d, order, 1), np.take_along_axis(both_i, order, 1)
    return best_i, best_d
