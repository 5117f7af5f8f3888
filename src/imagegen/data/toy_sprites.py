"""The toy world's objects, drawn by code: an astronaut, a horse, a cat, a boat, a rocket and the rest.

Why drawn here: the toy world (``toy_world``) must ship with the course, run offline
and carry no licence but ours. Each object is a short list of shapes (ellipses,
convex polygons, thick lines, rings) in a design box measured in "units"; ``sprite``
rasterises it at any scale with 3x3 supersampling, adds a dark outline so that white
objects stay visible on sand or moon dust, and caches the result. Scenes then only
paste cached RGBA arrays, which is why 10,000 scenes take seconds.

Coordinates: x to the right, y down, in design units. Every object faces right.
``SEATS`` says where a rider sits on a mount and where a rider's hips are, so that
"riding" puts the one on the other.
"""

from __future__ import annotations

import functools

import numpy as np

# Colours the captions name (boats, houses, bicycles).
NAMED_COLORS = {
    "red": (0.85, 0.12, 0.10), "blue": (0.15, 0.30, 0.90), "yellow": (0.98, 0.82, 0.10), "green": (0.15, 0.65, 0.20),
}
# Looks that no caption names: a cat's fur and markings, a person's shirt. Textual inversion learns one of them.
CAT_FURS = {"orange": (0.93, 0.55, 0.18), "grey": (0.55, 0.56, 0.60), "black": (0.12, 0.12, 0.13),
            "cream": (0.96, 0.90, 0.75)}
CAT_MARKS = ("plain", "stripes", "bib")
SHIRTS = ((0.80, 0.20, 0.20), (0.20, 0.55, 0.25), (0.55, 0.25, 0.70), (0.95, 0.60, 0.15))

_WHITE, _GREY, _DARK = (0.96, 0.96, 0.98), (0.62, 0.63, 0.68), (0.18, 0.16, 0.15)
_SKIN, _BROWN, _HAT = (0.95, 0.75, 0.58), (0.52, 0.31, 0.14), (0.45, 0.27, 0.10)

# Design boxes (width, height) in units.
SIZES = {
    "astronaut": (10, 16), "astronaut_sitting": (10, 14), "person": (8, 16), "person_sitting": (9, 14),
    "cowboy": (10, 17), "cowboy_sitting": (10, 15), "cat": (14, 10), "horse": (22, 18), "cow": (22, 17),
    "rocket": (8, 18), "rocket_flying": (18, 8), "bicycle": (20, 12), "boat": (18, 16), "tree": (12, 20),
    "house": (16, 16), "bird": (9, 5),
}
# Where a mount's saddle is, and where a sitting rider's hips are (units, in each one's box).
SEATS = {"horse": (10.0, 5.0), "cow": (10.0, 4.8), "bicycle": (8.0, 3.2), "rocket_flying": (9.0, 2.6),
         "astronaut_sitting": (4.5, 11.5), "person_sitting": (4.0, 11.5), "cowboy_sitting": (4.5, 12.5),
         "cat": (7.0, 9.5)}


def _person(parts, head_y, sitting, shirt, hat=False, suit=False):
    """A person, a cowboy or an astronaut (``suit``), standing or sitting, facing right."""
    body, limbs = (_WHITE, _WHITE) if suit else (shirt, (0.20, 0.25, 0.45))
    if suit:
        parts.append(("rect", (0.8, head_y + 2.0, 2.8, head_y + 7.5), _GREY))  # backpack
    parts.append(("rect", (2.3, head_y + 2.5, 6.7, head_y + 8.5), body))  # torso
    parts.append(("rect", (1.3, head_y + 3.0, 2.6, head_y + 7.8), body if suit else _SKIN))  # arms
    parts.append(("rect", (6.4, head_y + 3.0, 7.7, head_y + 7.8), body if suit else _SKIN))
    if sitting:  # thighs forward, shins down
        parts.append(("rect", (2.5, head_y + 8.0, 8.6, head_y + 10.0), limbs))
        parts.append(("rect", (6.8, head_y + 8.0, 8.6, head_y + 11.5), limbs))
    else:
        parts.append(("rect", (2.5, head_y + 8.0, 4.3, head_y + 12.5), limbs))
        parts.append(("rect", (4.7, head_y + 8.0, 6.5, head_y + 12.5), limbs))
        parts.append(("rect", (2.3, head_y + 11.6, 6.8, head_y + 12.5), _GREY if suit else _DARK))  # boots
    if suit:
        parts.append(("ellipse", (4.5, head_y, 3.3, 3.2), _WHITE))  # helmet
        parts.append(("ellipse", (5.3, head_y + 0.1, 2.2, 1.7), (0.90, 0.62, 0.15)))  # gold visor
        parts.append(("rect", (3.5, head_y + 4.0, 5.5, head_y + 5.5), (0.20, 0.40, 0.90)))  # chest panel
    else:
        parts.append(("ellipse", (4.5, head_y, 2.2, 2.3), _SKIN))
        if hat:
            parts.append(("rect", (0.5, head_y - 1.6, 8.5, head_y - 0.7), _HAT))  # brim
            parts.append(("rect", (2.5, head_y - 4.0, 6.5, head_y - 1.0), _HAT))  # crown
            parts.append(("rect", (2.8, head_y + 2.3, 6.2, head_y + 3.3), (0.85, 0.15, 0.10)))  # bandana
        else:
            parts.append(("ellipse", (4.2, head_y - 1.2, 2.3, 1.3), (0.30, 0.18, 0.08)))  # hair
    return parts


def _cat(fur, mark):
    fur_rgb = CAT_FURS[fur]
    dark = tuple(0.55 * c for c in fur_rgb) if fur != "black" else (0.30, 0.30, 0.32)
    parts = [("line", (2.5, 5.5, 0.6, 1.0, 1.2), fur_rgb),  # tail
             ("rect", (3.2, 6.0, 4.4, 10.0), fur_rgb), ("rect", (9.2, 6.0, 10.4, 10.0), fur_rgb),  # legs
             ("ellipse", (7.0, 5.8, 4.8, 2.6), fur_rgb),  # body
             ("poly", ((9.6, 2.6), (10.2, -0.2), (11.6, 2.0)), fur_rgb),  # ears
             ("poly", ((11.8, 2.0), (13.3, -0.2), (13.7, 2.8)), fur_rgb),
             ("ellipse", (11.8, 3.4, 2.3, 2.1), fur_rgb)]  # head
    if mark == "stripes":
        parts += [("rect", (x, 3.4, x + 0.8, 7.0), dark) for x in (4.3, 6.3, 8.3)]
    elif mark == "bib":
        parts += [("ellipse", (11.0, 6.0, 1.6, 1.6), (0.98, 0.98, 0.96)),
                  ("rect", (3.2, 9.0, 4.4, 10.0), (0.98, 0.98, 0.96)), ("rect", (9.2, 9.0, 10.4, 10.0), (0.98, 0.98, 0.96))]
    eye = (0.2, 0.8, 0.3) if fur == "black" else (0.05, 0.05, 0.05)
    return parts + [("ellipse", (12.7, 3.1, 0.5, 0.6), eye)]


def _horse():
    mane, hoof = (0.22, 0.13, 0.06), (0.15, 0.12, 0.10)
    parts = [("line", (3.2, 5.5, 0.8, 12.0, 1.6), mane)]  # tail
    parts += [("rect", (x, 9.5, x + 1.5, 18.0), _BROWN) for x in (4.0, 6.2, 13.2, 15.4)]  # legs
    parts += [("rect", (x - 0.1, 17.0, x + 1.6, 18.0), hoof) for x in (4.0, 6.2, 13.2, 15.4)]
    parts += [("ellipse", (10.0, 8.0, 7.3, 3.6), _BROWN),  # body
              ("poly", ((13.5, 6.0), (17.0, 1.0), (19.2, 2.6), (17.3, 9.5)), _BROWN),  # neck
              ("poly", ((17.2, 0.6), (21.8, 3.4), (21.4, 5.2), (17.6, 4.4)), _BROWN),  # head
              ("poly", ((17.4, 1.2), (17.9, -0.8), (18.8, 1.0)), _BROWN),  # ear
              ("line", (13.8, 5.4, 17.3, 0.9, 1.1), mane),  # mane
              ("ellipse", (19.0, 2.4, 0.5, 0.5), _DARK)]
    return parts


def _cow():
    white, black, pink = (0.97, 0.97, 0.95), (0.10, 0.10, 0.10), (0.95, 0.65, 0.70)
    parts = [("line", (2.3, 5.5, 1.0, 11.0, 0.7), black)]
    parts += [("rect", (x, 10.0, x + 1.9, 17.0), white) for x in (3.6, 6.0, 13.0, 15.4)]
    parts += [("ellipse", (8.2, 12.2, 1.7, 1.1), pink),  # udder
              ("rect", (2.2, 4.2, 17.8, 11.5), white),  # a boxy body, unlike the horse's
              ("ellipse", (6.0, 6.5, 2.4, 1.8), black), ("ellipse", (12.5, 8.5, 2.2, 2.0), black),
              ("ellipse", (15.5, 5.5, 1.5, 1.2), black),
              ("ellipse", (19.3, 7.0, 2.5, 2.3), white),  # head, level with the back
              ("ellipse", (20.6, 8.6, 1.5, 1.0), pink),
              ("line", (18.2, 5.0, 17.6, 3.4, 0.6), (0.85, 0.80, 0.65)), ("line", (20.2, 5.0, 21.0, 3.4, 0.6), (0.85, 0.80, 0.65)),
              ("ellipse", (20.0, 6.3, 0.45, 0.45), _DARK)]
    return parts


def _rocket():
    red = (0.85, 0.12, 0.10)
    return [("poly", ((3.2, 14.0), (4.8, 14.0), (5.2, 16.2), (4.0, 18.0), (2.8, 16.2)), (1.0, 0.60, 0.05)),  # flame
            ("poly", ((2.3, 10.0), (2.3, 14.5), (0.2, 15.0)), red), ("poly", ((5.7, 10.0), (5.7, 14.5), (7.8, 15.0)), red),
            ("rect", (2.3, 4.0, 5.7, 14.2), _WHITE),
            ("poly", ((2.3, 4.2), (4.0, 0.0), (5.7, 4.2)), red),
            ("ellipse", (4.0, 7.0, 1.1, 1.1), (0.25, 0.55, 0.95))]


def _bicycle(color):
    dark = (0.12, 0.12, 0.14)
    return [("ring", (4.5, 7.5, 3.8, 0.8), dark), ("ring", (15.5, 7.5, 3.8, 0.8), dark),
            ("line", (4.5, 7.5, 8.0, 3.0, 1.0), color), ("line", (8.0, 3.0, 10.0, 7.5, 1.0), color),
            ("line", (4.5, 7.5, 10.0, 7.5, 1.0), color), ("line", (10.0, 7.5, 14.0, 3.0, 1.0), color),
            ("line", (8.0, 3.0, 14.0, 3.0, 1.0), color), ("line", (14.0, 3.0, 15.5, 7.5, 1.0), color),
            ("line", (13.5, 1.5, 14.2, 3.0, 0.8), dark), ("line", (12.8, 1.3, 15.0, 1.3, 0.8), dark),
            ("rect", (6.8, 2.0, 9.2, 2.8), dark)]


def _boat(color):
    return [("line", (9.0, 0.8, 9.0, 10.5, 0.8), (0.40, 0.25, 0.10)),
            ("poly", ((9.6, 0.8), (9.6, 9.4), (16.5, 9.4)), _WHITE), ("poly", ((8.4, 2.5), (8.4, 9.4), (3.0, 9.4)), _WHITE),
            ("poly", ((0.0, 10.0), (18.0, 10.0), (15.0, 15.5), (3.0, 15.5)), color)]


def _tree():
    return [("rect", (5.0, 11.0, 7.0, 20.0), (0.45, 0.28, 0.12)),
            ("ellipse", (6.0, 7.0, 5.6, 6.6), (0.13, 0.50, 0.15)), ("ellipse", (4.6, 5.6, 2.6, 2.6), (0.22, 0.62, 0.22))]


def _house(color):
    return [("rect", (1.5, 7.0, 14.5, 16.0), color),
            ("poly", ((0.0, 7.6), (8.0, 0.8), (16.0, 7.6)), (0.40, 0.20, 0.15)),
            ("rect", (6.5, 10.5, 9.5, 16.0), (0.40, 0.25, 0.10)),
            ("rect", (2.6, 9.0, 5.4, 12.0), (0.70, 0.85, 1.00)), ("rect", (10.6, 9.0, 13.4, 12.0), (0.70, 0.85, 1.00))]


def _bird():
    dark = (0.96, 0.96, 0.96)  # a white gull: its dark outline shows on a blue sky and a black one
    return [("line", (0.3, 0.8, 4.5, 3.2, 1.0), dark), ("line", (4.5, 3.2, 8.7, 0.8, 1.0), dark),
            ("ellipse", (4.5, 3.3, 1.2, 0.9), dark)]


def design(kind, color=None, look=None):
    """The shapes of one object: a list of (shape, parameters, rgb); see ``_mask`` for the shapes."""
    if kind in ("astronaut", "astronaut_sitting"):
        return _person([], 3.2, kind.endswith("sitting"), None, suit=True)
    if kind in ("person", "person_sitting"):
        return _person([], 2.5, kind.endswith("sitting"), SHIRTS[look or 0])
    if kind in ("cowboy", "cowboy_sitting"):
        return _person([], 4.0, kind.endswith("sitting"), SHIRTS[look or 0], hat=True)
    if kind == "cat":
        fur, mark = look or ("orange", "plain")
        return _cat(fur, mark)
    simple = {"horse": _horse, "cow": _cow, "rocket": _rocket, "tree": _tree, "bird": _bird}
    if kind in simple:
        return simple[kind]()
    coloured = {"bicycle": _bicycle, "boat": _boat, "house": _house}
    if kind in coloured:
        return coloured[kind](NAMED_COLORS[color])
    raise ValueError(f"no drawing for {kind!r}; the toy world draws {sorted(SIZES)}")


def _mask(shape, params, x, y):
    """Which supersampled pixels (design units x, y) a shape covers."""
    if shape == "rect":
        x0, y0, x1, y1 = params
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    if shape == "ellipse":
        cx, cy, rx, ry = params
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    if shape == "ring":
        cx, cy, radius, width = params
        return np.abs(np.hypot(x - cx, y - cy) - radius) <= width / 2
    if shape == "line":  # a segment of the given width: distance to it <= width / 2
        x0, y0, x1, y1, width = params
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        return np.hypot(x - x0 - t * dx, y - y0 - t * dy) <= width / 2
    if shape == "poly":  # convex, either winding: inside when on the same side of every edge
        points = np.asarray(params, dtype=np.float32)
        sides = [(x - ax) * (by - ay) - (y - ay) * (bx - ax)
                 for (ax, ay), (bx, by) in zip(points, np.roll(points, -1, axis=0))]
        return np.all([s >= 0 for s in sides], axis=0) | np.all([s <= 0 for s in sides], axis=0)
    raise ValueError(f"unknown shape {shape!r}")


@functools.lru_cache(maxsize=4096)
def sprite(kind, scale, color=None, look=None, flip=False, supersample=3):
    """One object as float32 RGBA (h, w, 4), colours premultiplied by alpha, at ``scale`` pixels per unit.

    Cached: a scene set draws each (kind, scale, colour, look, flip) once.
    """
    if kind == "rocket_flying":  # the upright rocket turned a quarter clockwise: nose to the right
        out = np.ascontiguousarray(np.rot90(sprite("rocket", scale, supersample=supersample), k=-1))
        out = out[:, ::-1] if flip else out
        out.setflags(write=False)
        return out
    width, height = SIZES[kind]
    pixel_w, pixel_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    step = 1.0 / (scale * supersample)
    y, x = np.mgrid[0 : pixel_h * supersample, 0 : pixel_w * supersample].astype(np.float32)
    x, y = (x + 0.5) * step, (y + 0.5) * step
    rgb = np.zeros(x.shape + (3,), np.float32)
    alpha = np.zeros(x.shape, np.float32)
    for shape, params, colour in design(kind, color, look):
        inside = _mask(shape, params, x, y)
        rgb[inside], alpha[inside] = colour, 1.0
    # A dark outline, about 0.6 pixel wide, under everything: alpha dilated by a few supersamples.
    grow = max(1, int(round(0.6 * supersample)))
    padded = np.pad(alpha, grow)
    dilated = np.max([padded[grow + dy : grow + dy + alpha.shape[0], grow + dx : grow + dx + alpha.shape[1]]
                      for dy in range(-grow, grow + 1) for dx in range(-grow, grow + 1)], axis=0)
    outline = (dilated > 0) & (alpha == 0)
    rgb[outline], alpha[outline] = (0.15, 0.15, 0.17), 1.0
    # Average the supersamples (premultiplied, so edges blend with whatever lies below).
    premultiplied = np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=-1)
    out = premultiplied.reshape(pixel_h, supersample, pixel_w, supersample, 4).mean(axis=(1, 3))
    out = out[:, ::-1] if flip else out
    out.setflags(write=False)
    return out


def paste(canvas, rgba, left, top):
    """Alpha-composite a premultiplied sprite onto ``canvas`` (h, w, 3) in place; parts outside are cut."""
    height, width = canvas.shape[:2]
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, width), min(top + h, height)
    if x0 >= x1 or y0 >= y1:
        return
    patch = rgba[y0 - top : y1 - top, x0 - left : x1 - left]
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - patch[..., 3:]
    region += patch[..., :3]
