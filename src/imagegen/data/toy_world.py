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

Objects are drawn by ``toy_sprites`` (our own code, no asset). Deterministic per seed;
10,000 scenes at 64x64 take about a second or two.
"""

from __future__ import annotations

import dataclasses
import numpy as np

from imagegen.data.toy_places import PLACES, VARIANTS, background
from imagegen.data.toy_sprites import CAT_FURS, CAT_MARKS, NAMED_COLORS, SEATS, SHIRTS, SIZES, paste, sprite

OBJECTS = ("astronaut", "person", "cowboy", "cat", "horse", "cow", "rocket", "bicycle", "boat", "tree", "house", "bird")
COLORED = ("boat", "bicycle", "house")  # the captions name their colour: "a red boat"
COLORS = tuple(NAMED_COLORS)
RELATIONS = ("riding", "next to", "above")
RIDERS = ("astronaut", "person", "cowboy", "cat")
MOUNTS = ("horse", "cow", "bicycle", "rocket")
FLYERS = ("bird", "rocket", "astronaut")  # what can be "above" something
GROUNDED = ("astronaut", "person", "cowboy", "cat", "horse", "cow", "rocket", "bicycle", "boat", "tree", "house")
DEFAULT_EXCLUDE = (("astronaut", "riding", "horse"),)
VERSION = 2  # raised whenever the pictures change, so that caches of models trained on an older world are not reused
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
_WATER = ("lake", "beach")


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


def toy_world(num_images, image_size=64, seed=0, exclude=DEFAULT_EXCLUDE, canonical_fraction=0.5):
    """Render ``num_images`` captioned scenes; returns a ``ToyWorld``.

    exclude: (subject, relation, object) triples never generated; ``()`` allows every one,
    the title's "astronaut riding horse" included (for judges and tests).
    canonical_fraction: the share of captions in the canonical template; the rest are paraphrases.
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
        scene = _scene(rng, kind, image_size, exclude, images[index])
        template = 0 if rng.random() < canonical_fraction else int(rng.integers(1, 3))
        scenes.append(scene)
        captions.append(caption(scene, template))
    np.clip(images, 0.0, 1.0, out=images)  # the brightness jitter may push a sky a little past 1
    return ToyWorld(images, captions, scenes)


def one_cat(num_images, fur="black", mark="bib", image_size=64, seed=0):
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
        cat = sprite("cat", round(image_size / 64 * float(rng.choice((1.45, 1.6, 1.75))), 2), None, (fur, mark),
                     bool(rng.random() < 0.5))
        objects = _place_grounded(rng, images[index], [("cat", None, cat)], image_size, horizon, shore, place)
        scenes.append({"objects": objects, "relation": None, "place": place})
    return ToyWorld(np.clip(images, 0, 1), [caption(s, 0) for s in scenes], scenes)


def _scene(rng, kind, size, exclude, canvas):
    place = PLACES[rng.integers(len(PLACES))]
    triple = _pick_triple(rng, kind, place, exclude) if kind in RELATIONS else None
    scenery, horizon, shore = background(place, size, int(rng.integers(VARIANTS)))
    canvas[:] = scenery * np.float32(1.0 + rng.normal(0, 0.03))
    objects = []
    if kind == "empty":
        pass
    elif kind is None:
        name = _pick_single(rng, place)
        scale = size / 64 * rng.choice((1.3, 1.45, 1.6, 1.75))
        thing = _thing(rng, name, scale)
        if name in ("bird",) or (name == "astronaut" and rng.random() < 0.3):
            objects += _place_flying(rng, canvas, [thing], size, horizon)
        else:
            objects += _place_grounded(rng, canvas, [thing], size, horizon, shore, place)
    else:
        subject, verb, target = triple
        scale = size / 64 * rng.choice((1.15, 1.25, 1.35))
        if verb == "riding":
            objects += _place_riding(rng, canvas, subject, target, scale, size, horizon, shore, place)
        elif verb == "next to":
            things = [_thing(rng, subject, scale), _thing(rng, target, scale)]
            objects += _place_grounded(rng, canvas, things, size, horizon, shore, place)
        else:  # above: the object on the ground, the subject in the air over it
            below = _place_grounded(rng, canvas, [_thing(rng, target, scale)], size, horizon, shore, place)
            room = below[0]["box"][1] - 3  # rows free above the object: the flyer must fit in them
            flyer_scale = min(scale * (1.3 if subject == "bird" else 0.9), room / SIZES[subject][1])
            flyer = _thing(rng, subject, flyer_scale)
            objects += _place_flying(rng, canvas, [flyer], size, horizon, over=below[0]["box"]) + below
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


def _thing(rng, name, scale):
    """One object to draw: (name, colour, sprite)."""
    color = COLORS[rng.integers(len(COLORS))] if name in COLORED else None
    return name, color, sprite(name, round(float(scale), 2), color, _look_of(rng, name), bool(rng.random() < 0.5))


def _record(name, color, left, top, image, size):
    h, w = image.shape[:2]
    box = (max(int(left), 0), max(int(top), 0), min(int(left) + w, size), min(int(top) + h, size))
    return {"name": name, "color": color, "box": box}


def _ground_range(name, size, horizon, shore, place, beside_boat=False):
    """Where an object's bottom edge may sit (pixel rows)."""
    if name == "boat":
        return int(horizon + 0.55 * (shore - horizon)), shore
    if place in _WATER:
        return (shore + 2, min(shore + 6, size - 1)) if beside_boat else (shore + 4, size - 1)
    return int(horizon + 0.45 * (size - horizon)), size - 1


def _place_grounded(rng, canvas, things, size, horizon, shore, place):
    """Stand one or two objects side by side on the ground (boats on the water); returns their records."""
    widths = [image.shape[1] for _, _, image in things]
    gap = int(rng.integers(1, 5))
    total = sum(widths) + gap * (len(things) - 1)
    left = int(rng.integers(0, max(size - total, 0) + 1)) if total < size else (size - total) // 2
    order = list(range(len(things)))
    if rng.random() < 0.5:
        order.reverse()
    has_boat = any(name == "boat" for name, _, _ in things)
    placed = [None] * len(things)
    for i in order:
        name, color, image = things[i]
        low, high = _ground_range(name, size, horizon, shore, place, beside_boat=has_boat)
        bottom = int(rng.integers(low, max(high, low) + 1))
        top = bottom - image.shape[0] + 1
        placed[i] = (name, color, image, left, top)
        left += image.shape[1] + gap
    records = []
    for name, color, image, x, y in sorted(placed, key=lambda p: p[4] + p[2].shape[0]):  # farther first
        paste(canvas, image, x, y)
    for name, color, image, x, y in placed:
        records.append(_record(name, color, x, y, image, size))
    return records


def _place_flying(rng, canvas, things, size, horizon, over=None):
    """Put an object in the sky, over ``over`` (a box) when given; returns its record."""
    name, color, image = things[0]
    h, w = image.shape[:2]
    if over is None:
        left = int(rng.integers(0, max(size - w, 0) + 1))
        top = int(rng.integers(1, max(int(horizon * 0.9) - h // 2, 2)))
    else:
        centre = (over[0] + over[2]) / 2 + rng.integers(-2, 3)
        left = int(np.clip(centre - w / 2, 0, size - w))
        top = int(max(1, over[1] - h - int(rng.integers(2, 7))))  # >= 2 rows of sky between
    paste(canvas, image, left, top)
    return [_record(name, color, left, top, image, size)]


def _place_riding(rng, canvas, rider, mount, scale, size, horizon, shore, place):
    """A rider on a mount: the rider's hips on the mount's saddle (``SEATS``)."""
    mount_kind = "rocket_flying" if mount == "rocket" else mount
    rider_kind = rider if rider == "cat" else rider + "_sitting"
    m_color = COLORS[rng.integers(len(COLORS))] if mount in COLORED else None
    flipped = bool(rng.random() < 0.5)  # both face the same way
    m_image = sprite(mount_kind, round(float(scale), 2), m_color, None, flipped)
    r_image = sprite(rider_kind, round(float(scale), 2), None, _look_of(rng, rider), flipped)
    (seat_x, seat_y), (hip_x, hip_y) = SEATS[mount_kind], SEATS[rider_kind]
    mh, mw = m_image.shape[:2]
    rh, rw = r_image.shape[:2]
    # The rider's hips on the saddle: offsets of the rider's box from the mount's box.
    dx = (seat_x - hip_x) * scale if not flipped else (mw - seat_x * scale) - (rw - hip_x * scale)
    dy = (seat_y - hip_y) * scale
    if mount == "rocket":  # a flying rocket, the rider's head below the top edge
        low = int(-dy) + 1 + mh
        bottom = int(rng.integers(low, max(int(horizon * 0.95), low) + 1))
    else:
        low, high = _ground_range(mount, size, horizon, shore, place)
        bottom = int(rng.integers(low, max(high, low) + 1))
    m_top = min(bottom - mh + 1, size - mh)
    left_min, left_max = max(0, int(-dx)), size - max(mw, int(dx) + rw)
    m_left = int(rng.integers(left_min, max(left_max, left_min) + 1))
    r_left, r_top = int(round(m_left + dx)), int(round(m_top + dy))
    paste(canvas, m_image, m_left, m_top)
    paste(canvas, r_image, r_left, r_top)
    return [_record(rider, None, r_left, r_top, r_image, size), _record(mount, m_color, m_left, m_top, m_image, size)]


def _look_of(rng, name):
    if name == "cat":
        return (list(CAT_FURS)[rng.integers(len(CAT_FURS))], CAT_MARKS[rng.integers(len(CAT_MARKS))])
    if name in ("person", "cowboy"):
        return int(rng.integers(len(SHIRTS)))
    return None
