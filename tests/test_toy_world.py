"""The toy world: deterministic scenes whose truth, captions and pictures agree, and the title never drawn by default."""

import numpy as np
import pytest

from imagegen.data.toy_sprites import SIZES, sprite
from imagegen.data.toy_world import (
    COLORED, DEFAULT_EXCLUDE, OBJECTS, PLACES, RELATIONS, TITLE_PROMPT, caption, noun, toy_world,
)


@pytest.fixture(scope="module", params=[False, True], ids=["posed", "varied"])
def world(request):
    return toy_world(1500, 64, seed=5, varied=request.param)


def test_same_seed_same_world_other_seed_other_world():
    first, again, other = toy_world(40, 64, seed=3), toy_world(40, 64, seed=3), toy_world(40, 64, seed=4)
    np.testing.assert_array_equal(first.images, again.images)
    assert first.captions == again.captions and first.scenes == again.scenes
    assert first.captions != other.captions


def test_images_and_scenes_are_well_formed(world):
    assert world.images.shape == (1500, 64, 64, 3) and world.images.dtype == np.float32
    assert world.images.min() >= 0.0 and world.images.max() <= 1.0
    for scene in world.scenes:
        assert set(scene) == {"objects", "relation", "place"} and scene["place"] in PLACES
        for obj in scene["objects"]:
            assert obj["name"] in OBJECTS
            assert (obj["color"] is not None) == (obj["name"] in COLORED)
            x0, y0, x1, y1 = obj["box"]
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64, obj
        if scene["relation"] is not None:
            subject, verb, target = scene["relation"]
            assert verb in RELATIONS and {subject, target} <= {o["name"] for o in scene["objects"]}
            assert len(scene["objects"]) == 2


def test_every_object_relation_and_place_appears(world):
    names = {obj["name"] for scene in world.scenes for obj in scene["objects"]}
    verbs = {scene["relation"][1] for scene in world.scenes if scene["relation"]}
    assert names == set(OBJECTS) and verbs == set(RELATIONS)
    assert {scene["place"] for scene in world.scenes} == set(PLACES)
    assert any(not scene["objects"] for scene in world.scenes)  # empty landscapes, for inpainting


def test_by_default_no_astronaut_rides_a_horse_and_with_exclude_empty_some_do(world):
    assert DEFAULT_EXCLUDE == (("astronaut", "riding", "horse"),)
    assert not any(scene["relation"] == ("astronaut", "riding", "horse") for scene in world.scenes)
    assert not any(TITLE_PROMPT in c for c in world.captions)
    assert any(s["relation"][:1] == ("astronaut",) and s["relation"][1] == "riding" for s in world.scenes if s["relation"])
    assert any(s["relation"] and s["relation"][1:] == ("riding", "horse") for s in world.scenes)
    everything = toy_world(3000, 64, seed=5, exclude=())
    assert any(scene["relation"] == ("astronaut", "riding", "horse") for scene in everything.scenes)


def test_exclude_is_checked_and_obeyed():
    with pytest.raises(ValueError, match="triples"):
        toy_world(4, exclude=(("astronaut", "rides", "horse"),))
    no_cats = toy_world(600, seed=1, exclude=[(r, "riding", "cat") for r in OBJECTS] + [("cat", "riding", m) for m in OBJECTS])
    assert not any(s["relation"] and s["relation"][1] == "riding" and "cat" in s["relation"] for s in no_cats.scenes)


def test_captions_state_the_scene(world):
    for text, scene in zip(world.captions, world.scenes):
        for obj in scene["objects"]:
            assert noun(obj["name"], obj["color"]) in text, (text, scene)
        if scene["relation"]:
            assert any(word in text for word in {"riding": ("riding", "rides"), "next to": ("next to", "beside"),
                                                 "above": ("above", "flying over")}[scene["relation"][1]])
    assert caption({"objects": [{"name": "astronaut", "color": None, "box": (0, 0, 1, 1)},
                                {"name": "horse", "color": None, "box": (0, 0, 1, 1)}],
                    "relation": ("astronaut", "riding", "horse"), "place": "moon"}) == TITLE_PROMPT + " on the moon"
    assert noun("astronaut") == "an astronaut" and noun("boat", "red") == "a red boat"


def test_geometry_matches_the_relation(world):
    for scene in world.scenes:
        if not scene["relation"]:
            continue
        subject, verb, target = scene["relation"]
        boxes = {obj["name"]: obj["box"] for obj in scene["objects"]}
        top = lambda b: b[1]
        if verb in ("riding", "above"):  # the rider sits, the flyer flies, higher than the other
            assert top(boxes[subject]) < top(boxes[target]), scene
        if verb == "above":
            assert boxes[subject][3] <= boxes[target][1], scene
        if verb == "riding":  # overlapping: the rider is on the mount, not beside it
            a, b = boxes[subject], boxes[target]
            assert a[0] < b[2] and b[0] < a[2] and a[3] > b[1], scene


@pytest.mark.parametrize("varied", [False, True])
def test_objects_are_drawn_where_their_boxes_say(varied):
    world = toy_world(200, 64, seed=9, varied=varied)
    for image, scene in zip(world.images, world.scenes):
        if len(scene["objects"]) != 1:
            continue
        x0, y0, x1, y1 = scene["objects"][0]["box"]
        inside = image[y0:y1, x0:x1]
        assert inside.std() > 0.05, scene  # something with edges is there


def _singles(world):
    """(name, box) of every scene with one grounded object (a flying bird or astronaut sits higher)."""
    return [(s["objects"][0]["name"], s["objects"][0]["box"]) for s in world.scenes
            if s["relation"] is None and s["objects"] and s["objects"][0]["name"] not in ("bird", "astronaut")]


def test_posed_things_stand_in_the_middle_at_one_size_and_varied_ones_anywhere():
    posed, varied = toy_world(600, 64, seed=21), toy_world(600, 64, seed=21, varied=True)
    centres = {False: [], True: []}
    for flag, world in ((False, posed), (True, varied)):
        sizes = {}
        for name, (x0, y0, x1, y1) in _singles(world):
            centres[flag].append((x0 + x1) / 2)
            sizes.setdefault(name, set()).add((x1 - x0, y1 - y0))
        if not flag:  # one size per kind, centred (a sprite of odd width sits half a pixel off)
            assert all(len(s) == 1 for s in sizes.values()), sizes
    assert max(abs(c - 32) for c in centres[False]) <= 1.0
    assert np.ptp(centres[True]) > 30  # the judge's world: anywhere along the ground
    # riders sit centred over the middle of the picture, and every pair faces right: the same rider on a
    # horse and on a cow sits in nearly the same place
    for scene in posed.scenes:
        if scene["relation"] and scene["relation"][1] in ("riding", "next to"):
            x0 = min(o["box"][0] for o in scene["objects"])
            x1 = max(o["box"][2] for o in scene["objects"])
            assert abs((x0 + x1) / 2 - 32) <= 1.5, scene


# Recorded from toy_world version 2 (commit 7a78a46, before the posed layout): toy_world(3, 64, seed=2_000_000,
# exclude=()), the start of the shipped judge's training set.
V2_RELATIONS = [("person", "riding", "cow"), None, ("bicycle", "next to", "person")]
V2_FIRST_BOXES = [(38, 23, 49, 41), (30, 31, 58, 52)]


def test_the_varied_layout_is_the_first_toy_world():
    """The shipped judge trained on version 2's pictures: varied=True must still draw exactly them."""
    world = toy_world(3, 64, seed=2_000_000, exclude=(), varied=True)
    assert [s["relation"] for s in world.scenes] == V2_RELATIONS
    assert [o["box"] for o in world.scenes[0]["objects"]] == V2_FIRST_BOXES


def test_every_sprite_draws_at_several_scales():
    for kind in SIZES:
        for scale in (0.6, 1.0, 1.7):
            color = "red" if kind in ("boat", "bicycle", "house") else None
            rgba = sprite(kind, scale, color)
            assert rgba.ndim == 3 and rgba.shape[-1] == 4 and rgba[..., 3].max() == pytest.approx(1.0), kind
            assert rgba[..., :3].max() <= rgba[..., 3].max() + 1e-6  # premultiplied


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="32 or more"):
        toy_world(2, image_size=16)
