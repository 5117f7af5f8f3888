"""The toy world: captioned scenes of astronauts, horses, cats, boats and rockets, with the truth of every scene.

Why: the course's title asks "Have you ever seen an astronaut riding a horse?". The
answer is compositional generalisation: a model draws a combination that no training
image had. This set lets a small model show it on a CPU. By default no astronaut ever
rides a horse here (``DEFAULT_EXCLUDE``): astronauts ride rockets, bicycles and cows,
stand or float; horses carry cowboys, people and cats.

A scene is a place (a field, a lake, a beach, the moon) with no object, one object,
or two objects in a relation ("riding", "next to", "above"). Its caption states it
("an astronaut riding a rocket on the moon", "a cat next to a red boat on a lake"),
in one of a few paraphrases. ``ToyWorld.scenes[i]`` holds the truth that judges and
tests read instead of the caption::

    {"objects": [{"name": "cat", "color": None, "box": (x0, y0, x1, y1)}, ...],   # pixels
     "relation": ("cat", "next to", "boat") or None,
     "place": "lake"}

Objects are drawn by ``toy_sprites`` (our own code, no asset) and stood in place by
``toy_layout``: posed by default (in the middle, at one size, facing right), the world the
mini model trains on; anywhere, at several sizes and facing either way with ``varied=True``,
the world the judge trains on. Deterministic per seed; 10,000 scenes at 64x64 take about a
second or two.
"""

from __future__ import annotations

import dataclasses
import numpy as np

from imagegen.data import toy_layout as layout
from imagegen.data.toy_places import PLACES, VARIANTS, background
from imagegen.data.toy_sprites import CAT_FURS, CAT_MARKS, NAMED_COLORS, SHIRTS, SIZES, sprite

OBJECTS = ("astronaut", "person", "cowboy", "cat", "horse", "cow", "rocket", "bicycle", "boat", "tree", "house", "bird")
COLORED = ("boat", "bicycle", "house")  # the captions name their colour: "a red boat"
COLORS = tuple(NAMED_COLORS)
RELATIONS = ("riding", "next to", "above")
RIDERS = ("astronaut", "person", "cowboy", "cat")
MOUNTS = ("horse", "cow", "bicycle", "rocket")
FLYERS = ("bird", "rocket", "astronaut")  # what can be "above" something
GROUNDED = ("astronaut", "person", "cowboy", "cat", "horse", "cow", "rocket", "bicycle", "boat", "tree", "house")
DEFAULT_EXCLUDE = (("astronaut", "riding", "horse"),)
VERSION = 3  # raised whenever the pictures change, so that caches of models trained on an older world are not reused
TITLE_PROMPT = "an astronaut riding a horse"

PLACE_PHRASES = {"field": "in a field", "lake": "on a lake", "beach": "on a beach", "moon": "on the moon"}
PLACE_NOUNS = {"field": "a field", "lake": "a lake", "beach": "a beach", "moon": "the moon"}
# The first template of each is the canonical one that prompts use.
TEMPLATES = {
    None: ("{s} {p}", "a picture of {s} {p}", "{s}, {p}"),
    "riding": ("{s} riding {o} {p}", "{s} rides {o} {p}", "a picture of {s} riding {o} {p}"),
    "next to": ("{s} next to {o} {p}", "{s} beside {o} {p}", "a picture of {s} next to {o} {p}"),
    "above": ("{s} above {o} {p}", "{s} flying over {o} {p}", "a picture of {s} above {o} {p}"),
    "empty": ("{n}", "just {n}", "an empty view of {n}"),
}
SCENE_KINDS = {"empty": 0.05, None: 0.20, "riding": 0.40, "next to": 0.23, "above": 0.12}
_WATER = layout.WATER


@dataclasses.dataclass
class ToyWorld:
    """Captioned toy-world scenes. images: float32 (n, s, s, 3) in [0, 1]; captions: n strings; scenes: n dicts."""

    images: np.ndarray
    captions: list
    scenes: list

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1)
        picked = np.arange(len(self))[index]
        return ToyWorld(self.images[index], [self.captions[i] for i in picked], [self.scenes[i] for i in picked])


def noun(name, color=None):
    """"an astronaut", "a red boat": the phrase captions use for one object."""
    words = f"{color} {name}" if color else name
    return ("an " if words[0] in "aeiou" else "a ") + words


def caption(scene, template=0):
    """The caption of a scene dict, in paraphrase ``template`` (0 is canonical)."""
    relation, place = scene["relation"], scene["place"]
    if not scene["objects"]:
        return TEMPLATES["empty"][template].format(n=PLACE_NOUNS[place])
    by_name = {obj["name"]: obj for obj in scene["objects"]}
    if relation is None:
        obj = scene["objects"][0]
        return TEMPLATES[None][template].format(s=noun(obj["name"], obj["color"]), p=PLACE_PHRASES[place])
    subject, verb, target = relation
    return TEMPLATES[verb][template].format(s=noun(subject, by_name[subject]["color"]),
                                           o=noun(target, by_name[target]["color"]), p=PLACE_PHRASES[place])


def _check_exclude(exclude):
    exclude = {tuple(triple) for triple in exclude}
    for triple in exclude:
        if len(triple) != 3 or triple[0] not in OBJECTS or triple[1] not in RELATIONS or triple[2] not in OBJECTS:
            raise ValueError(f"exclude takes (subject, relation, object) triples such as ('astronaut', 'riding', 'horse'); "
                             f"got {triple!r}. Objects: {OBJECTS}; relations: {RELATIONS}")
    return exclude


def toy_world(num_images, image_size=64, seed=0, exclude=DEFAULT_EXCLUDE, canonical_fraction=0.5, varied=False):
    """Render ``num_images`` captioned scenes; returns a ``ToyWorld``.

    exclude: (subject, relation, object) triples never generated; ``()`` allows every one,
    the title's "astronaut riding horse" included (for judges and tests).
    canonical_fraction: the share of captions in the canonical template; the rest are paraphrases.
    varied: False poses every scene (things centred, at one size, facing right: what the
    generators train on); True puts them anywhere, at several sizes, facing either way (what
    the judge trains on; exactly the first toy world's pictures). See ``toy_layout``.
    """
    if image_size < 32:
        raise ValueError(f"image_size {image_size} is too small to tell a cat from a cow; use 32 or more (64 is the default)")
    exclude = _check_exclude(exclude)
    rng = np.random.default_rng(seed)
    images = np.empty((num_images, image_size, image_size, 3), np.float32)
    captions, scenes = [], []
    kinds, weights = list(SCENE_KINDS), np.array(list(SCENE_KINDS.values()))
    for index in range(num_images):
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        scene = _scene(rng, kind, image_size, exclude, images[index], varied)
        template = 0 if rng.random() < canonical_fraction else int(rng.integers(1, 3))
        scenes.append(scene)
        captions.append(caption(scene, template))
    np.clip(images, 0.0, 1.0, out=images)  # the brightness jitter may push a sky a little past 1
    return ToyWorld(images, captions, scenes)


def one_cat(num_images, fur="black", mark="bib", image_size=64, seed=0, varied=False):
    """Pictures of one particular cat, alone, in every place: a look (``CAT_FURS`` x ``CAT_MARKS``) that no
    caption names, so a model trained on the toy world has no word for it (notebook 07's textual inversion)."""
    if fur not in CAT_FURS or mark not in CAT_MARKS:
        raise ValueError(f"a cat's fur is one of {sorted(CAT_FURS)} and its marking one of {CAT_MARKS}; got {fur!r}, {mark!r}")
    rng = np.random.default_rng(seed)
    images, scenes = np.empty((num_images, image_size, image_size, 3), np.float32), []
    for index in range(num_images):
        place = PLACES[index % len(PLACES)]
        scenery, horizon, shore = background(place, image_size, int(rng.integers(VARIANTS)))
        images[index] = scenery
        scale = layout.scale_of(rng, (1.45, 1.6, 1.75), layout.POSED_SINGLE, image_size, varied)
        cat = sprite("cat", round(float(scale), 2), None, (fur, mark), layout.facing(rng, varied))
        objects = layout.place_grounded(rng, images[index], [("cat", None, cat)], image_size, horizon, shore, place, varied)
        scenes.append({"objects": objects, "relation": None, "place": place})
    return ToyWorld(np.clip(images, 0, 1), [caption(s, 0) for s in scenes], scenes)


def _scene(rng, kind, size, exclude, canvas, varied):
    place = PLACES[rng.integers(len(PLACES))]
    triple = _pick_triple(rng, kind, place, exclude) if kind in RELATIONS else None
    scenery, horizon, shore = background(place, size, int(rng.integers(VARIANTS)))
    canvas[:] = scenery * np.float32(1.0 + rng.normal(0, 0.03))
    ground = dict(size=size, horizon=horizon, shore=shore, place=place, varied=varied)
    objects = []
    if kind == "empty":
        pass
    elif kind is None:
        name = _pick_single(rng, place)
        thing = _thing(rng, name, layout.scale_of(rng, layout.SINGLE_SCALES, layout.POSED_SINGLE, size, varied), varied)
        if name in ("bird",) or (name == "astronaut" and rng.random() < 0.3):
            objects += layout.place_flying(rng, canvas, thing, size, horizon, varied=varied)
        else:
            objects += layout.place_grounded(rng, canvas, [thing], **ground)
    else:
        subject, verb, target = triple
        scale = layout.scale_of(rng, layout.PAIR_SCALES, layout.POSED_PAIR, size, varied)
        if verb == "riding":
            objects += layout.place_riding(rng, canvas, subject, target, scale, color_of=_color_of, look_of=_look_of,
                                           **ground)
        elif verb == "next to":
            things = [_thing(rng, subject, scale, varied), _thing(rng, target, scale, varied)]
            objects += layout.place_grounded(rng, canvas, things, **ground)
        else:  # above: the object on the ground, the subject in the air over it
            below = layout.place_grounded(rng, canvas, [_thing(rng, target, scale, varied)], **ground)
            room = below[0]["box"][1] - 3  # rows free above the object: the flyer must fit in them
            flyer_scale = min(scale * (1.3 if subject == "bird" else 0.9), room / SIZES[subject][1])
            flyer = _thing(rng, subject, flyer_scale, varied)
            objects += layout.place_flying(rng, canvas, flyer, size, horizon, over=below[0]["box"], varied=varied) + below
    return {"objects": objects, "relation": triple, "place": place}


def _pick_single(rng, place):
    names = [n for n in OBJECTS if n != "boat" or place in _WATER]
    return names[rng.integers(len(names))]


def _pick_triple(rng, verb, place, exclude):
    if verb == "riding":
        pairs = [(r, m) for r in RIDERS for m in MOUNTS]
    elif verb == "above":
        pairs = [(f, g) for f in FLYERS for g in GROUNDED if f != g]
    else:
        pairs = [(a, b) for a in GROUNDED for b in GROUNDED if a != b]
    pairs = [(a, b) for a, b in pairs if (a, verb, b) not in exclude and ("boat" not in (a, b) or place in _WATER)
             and not (verb == "next to" and a == "boat" == b)]
    if not pairs:
        raise ValueError(f"exclude leaves no {verb!r} pair to draw")
    subject, target = pairs[rng.integers(len(pairs))]
    return (subject, verb, target)


def _color_of(rng, name):
    return COLORS[rng.integers(len(COLORS))] if name in COLORED else None


def _thing(rng, name, scale, varied):
    """One object to draw: (name, colour, sprite)."""
    color = _color_of(rng, name)
    return name, color, sprite(name, round(float(scale), 2), color, _look_of(rng, name), layout.facing(rng, varied))


def _look_of(rng, name):
    if name == "cat":
        return (list(CAT_FURS)[rng.integers(len(CAT_FURS))], CAT_MARKS[rng.integers(len(CAT_MARKS))])
    if name in ("person", "cowboy"):
        return int(rng.integers(len(SHIRTS)))
    return None
