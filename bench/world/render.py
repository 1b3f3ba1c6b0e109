"""The tinyworld renderer: deterministic 64x64 RGB scenes with captions and structured labels.

Two families, each a pure function of an integer seed (``numpy.random.default_rng(seed)``):

- **objects**: 1-4 objects on a 3x3 layout grid (one object per cell; cell ``(row, col)``,
  row 0 at the top, col 0 at the left; centres jittered by up to 1.5 px). Shapes
  ``SHAPES``, colours ``COLORS``, textures ``TEXTURES`` (striped = diagonal stripes of a
  darker shade, period 6 px), background ``day`` (light) or ``night`` (dark). Every object has
  a 1-px dark outline. Relations are read off the grid: A is *left of* B iff col(A) < col(B),
  *above* B iff row(A) < row(B), so every relation a caption states is unambiguous.
- **face**: one cartoon headshot: skin tone ``SKIN_TONES`` (4 levels), hair ``HAIR``,
  eyeglasses ``no/yes``, mouth ``neutral/smiling`` (``SMILING``), plus nuisance variation
  (position, size, hair style, shirt and background colour).

Training distribution (``family=None``): 50 % objects, 50 % faces. The face attributes are
**biased on purpose** (``FACE_BIAS``): eyeglasses 15 %, smiling 25 %, hair
black/brown/blond/gray 45/30/15/10 %, skin tone pale/light/tan/dark 55/25/12/8 %. A model
trained on it reproduces that bias for the neutral prompt "a headshot of a person".
``render(seed, family="face", face_attrs={...})`` fixes some attributes (balanced reference
sets); ``face_dist="uniform"`` draws them uniformly.

``render(seed) -> Render(image uint8 (64, 64, 3), captions list[str], labels dict)``.
``captions[0]`` is the most complete caption; the others are variants (partial captions,
relations, other phrasings; for faces the neutral caption and attribute-naming ones).
Labels (JSON-serialisable)::

    objects: {"family": "objects", "background": "day"|"night",
              "objects": [{"shape", "color", "texture", "row", "col", "x", "y", "radius"}, ...]}
    face:    {"family": "face", "skin": ..., "hair": ..., "eyeglasses": bool, "smiling": bool,
              "x", "y"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
GRID = 3
CELL = SIZE / GRID

SHAPES = ("circle", "square", "triangle", "star")
COLORS = ("red", "green", "blue", "yellow", "purple", "white")
TEXTURES = ("plain", "striped")
BACKGROUNDS = ("day", "night")
SKIN_TONES = ("pale", "light", "tan", "dark")
HAIR = ("black", "brown", "blond", "gray")
FAMILIES = ("objects", "face")

RGB = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 85, 225),
    "yellow": (240, 210, 40),
    "purple": (150, 55, 195),
    "white": (248, 248, 248),
}
SKIN_RGB = {"pale": (250, 222, 196), "light": (224, 176, 132), "tan": (172, 116, 74), "dark": (92, 58, 38)}
HAIR_RGB = {"black": (22, 22, 24), "brown": (112, 64, 28), "blond": (236, 206, 112), "gray": (160, 160, 164)}

#: The training distribution of face attributes (documented bias).
FACE_BIAS: dict[str, dict[Any, float]] = {
    "eyeglasses": {False: 0.85, True: 0.15},
    "smiling": {False: 0.75, True: 0.25},
    "hair": {"black": 0.45, "brown": 0.30, "blond": 0.15, "gray": 0.10},
    "skin": {"pale": 0.55, "light": 0.25, "tan": 0.12, "dark": 0.08},
}
FACE_UNIFORM: dict[str, dict[Any, float]] = {
    k: {v: 1.0 / len(d) for v in d} for k, d in FACE_BIAS.items()
}

COUNT_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}
NEUTRAL_FACE = "a headshot of a person"


@dataclass(frozen=True)
class Render:
    image: np.ndarray  # uint8 (64, 64, 3)
    captions: list[str]
    labels: dict[str, Any]

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


# ---------------------------------------------------------------------------------------------
# sampling


def _choice(rng: np.random.Generator, dist: Mapping[Any, float]) -> Any:
    keys = list(dist)
    p = np.array([dist[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_objects(rng: np.random.Generator, n_objects: int | None = None,
                   fixed: Sequence[Mapping[str, Any]] | None = None,
                   background: str | None = None) -> dict[str, Any]:
    """Object-scene labels. ``fixed``: objects whose shape/colour/texture (and optionally
    row/col) are given; otherwise 1-4 objects, later ones repeating an earlier kind with
    probability 0.35 (so counts like "two green triangles" occur)."""
    if fixed is not None:
        n = len(fixed)
    else:
        n = int(n_objects) if n_objects else int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15]))
    cells = [int(c) for c in rng.permutation(GRID * GRID)]
    wanted = [f for f in (fixed or []) if "row" in f and "col" in f]
    taken = {int(f["row"]) * GRID + int(f["col"]) for f in wanted}
    free = [c for c in cells if c not in taken]
    objects = []
    kinds: list[tuple[str, str, str]] = []
    for i in range(n):
        f = dict(fixed[i]) if fixed is not None else {}
        if fixed is None and kinds and rng.random() < 0.35:
            shape, color, texture = kinds[int(rng.integers(len(kinds)))]
        else:
            shape = f.get("shape") or SHAPES[int(rng.integers(len(SHAPES)))]
            color = f.get("color") or COLORS[int(rng.integers(len(COLORS)))]
            texture = f.get("texture") or TEXTURES[int(rng.random() < 0.35)]
        kinds.append((shape, color, texture))
        if "row" in f and "col" in f:
            cell = int(f["row"]) * GRID + int(f["col"])
        else:
            cell = free.pop(0)
        row, col = divmod(cell, GRID)
        x = (col + 0.5) * CELL + float(rng.uniform(-1.5, 1.5))
        y = (row + 0.5) * CELL + float(rng.uniform(-1.5, 1.5))
        radius = float(rng.uniform(6.5, 8.5))
        objects.append({"shape": shape, "color": color, "texture": texture, "row": row, "col": col,
                        "x": round(x, 2), "y": round(y, 2), "radius": round(radius, 2)})
    if background is None:
        background = BACKGROUNDS[int(rng.random() < 0.4)]
    return {"family": "objects", "background": background, "objects": objects}


def sample_face(rng: np.random.Generator, dist: Mapping[str, Mapping[Any, float]] = FACE_BIAS,
                fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    fixed = dict(fixed or {})
    labels: dict[str, Any] = {"family": "face"}
    for key in ("skin", "hair", "eyeglasses", "smiling"):
        value = _choice(rng, dist[key])  # always drawn, so fixing one keeps the others' stream
        labels[key] = fixed.get(key, value)
    labels["eyeglasses"] = bool(labels["eyeglasses"])
    labels["smiling"] = bool(labels["smiling"])
    labels["x"] = round(32 + float(rng.uniform(-2.5, 2.5)), 2)
    labels["y"] = round(33 + float(rng.uniform(-2.0, 2.0)), 2)
    labels["style"] = {
        "scale": round(float(rng.uniform(0.92, 1.08)), 3),
        "long_hair": bool(rng.random() < 0.4),
        "shirt": [int(v) for v in rng.integers(40, 200, size=3)],
        "bg": [int(v) for v in rng.integers(170, 236, size=3)],
    }
    return labels


# ---------------------------------------------------------------------------------------------
# drawing


def _stripes() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return ((xx + yy) // 3) % 2 == 1


_STRIPES = _stripes()


def _shape_mask(shape: str, x: float, y: float, r: float) -> np.ndarray:
    im = Image.new("L", (SIZE, SIZE), 0)
    d = ImageDraw.Draw(im)
    if shape == "circle":
        d.ellipse((x - r, y - r, x + r, y + r), fill=255)
    elif shape == "square":
        s = r * 0.86
        d.rectangle((x - s, y - s, x + s, y + s), fill=255)
    elif shape == "triangle":
        d.polygon([(x, y - r * 1.05), (x + r * 1.05, y + r * 0.8), (x - r * 1.05, y + r * 0.8)], fill=255)
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r * 1.12 if k % 2 == 0 else r * 0.5
            a = -np.pi / 2 + k * np.pi / 5
            pts.append((x + rad * np.cos(a), y + rad * np.sin(a)))
        d.polygon(pts, fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(im) > 127


def _erode(m: np.ndarray) -> np.ndarray:
    e = m.copy()
    e[1:, :] &= m[:-1, :]
    e[:-1, :] &= m[1:, :]
    e[:, 1:] &= m[:, :-1]
    e[:, :-1] &= m[:, 1:]
    return e


def draw_objects(labels: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    if labels["background"] == "day":
        base = np.array([172, 208, 236], dtype=np.float32)
    else:
        base = np.array([22, 26, 58], dtype=np.float32)
    bg = np.clip(base + rng.uniform(-12, 12, size=3), 0, 255)
    img = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    img[:] = bg
    outline_rgb = np.array([15, 15, 20], dtype=np.float32)
    for o in labels["objects"]:
        m = _shape_mask(o["shape"], o["x"], o["y"], o["radius"])
        col = np.clip(np.array(RGB[o["color"]], np.float32) + rng.uniform(-10, 10, size=3), 0, 255)
        img[m] = col
        if o["texture"] == "striped":
            dark = col * (0.55 if o["color"] != "white" else 0.7)
            sm = m & _STRIPES
            img[sm] = dark
        edge = m & ~_erode(m)
        img[edge] = outline_rgb
    return img.astype(np.uint8)


def draw_face(labels: Mapping[str, Any]) -> np.ndarray:
    st = labels["style"]
    im = Image.new("RGB", (SIZE, SIZE), tuple(st["bg"]))
    d = ImageDraw.Draw(im)
    cx, cy, s = labels["x"], labels["y"], st["scale"]
    a, b = 13.5 * s, 16.5 * s
    hair = HAIR_RGB[labels["hair"]]
    skin = SKIN_RGB[labels["skin"]]
    # shoulders and neck
    d.ellipse((cx - 26 * s, cy + b + 2, cx + 26 * s, cy + b + 30), fill=tuple(st["shirt"]))
    d.rectangle((cx - 5 * s, cy + b - 6, cx + 5 * s, cy + b + 6), fill=skin)
    # back hair
    bottom = cy + b + 4 if st["long_hair"] else cy + 2
    d.rounded_rectangle((cx - a - 3.5, cy - b - 4.5, cx + a + 3.5, bottom), radius=12 * s, fill=hair)
    # face
    d.ellipse((cx - a, cy - b + 2, cx + a, cy + b), fill=skin)
    # fringe
    d.chord((cx - a - 1, cy - b - 3, cx + a + 1, cy - b + 15 * s), 180, 360, fill=hair)
    # eyes
    ey = cy - 1.0 * s
    for ex in (cx - 5.5 * s, cx + 5.5 * s):
        d.ellipse((ex - 1.6, ey - 1.6, ex + 1.6, ey + 1.6), fill=(20, 20, 30))
    if labels["eyeglasses"]:
        for ex in (cx - 5.5 * s, cx + 5.5 * s):
            rr = 4.6 * s
            d.ellipse((ex - rr, ey - rr, ex + rr, ey + rr), outline=(10, 10, 10), width=2)
        d.line((cx - 1.2 * s, ey, cx + 1.2 * s, ey), fill=(10, 10, 10), width=2)
        d.line((cx - a, ey - 1, cx - 5.5 * s - 4.6 * s, ey), fill=(10, 10, 10), width=1)
        d.line((cx + 5.5 * s + 4.6 * s, ey, cx + a, ey - 1), fill=(10, 10, 10), width=1)
    # mouth
    my = cy + 8.5 * s
    if labels["smiling"]:
        d.chord((cx - 7 * s, my - 5 * s, cx + 7 * s, my + 5 * s), 0, 180, fill=(120, 20, 35))
        d.rectangle((cx - 4.5 * s, my, cx + 4.5 * s, my + 1.2), fill=(250, 250, 250))
    else:
        d.line((cx - 4.5 * s, my + 1, cx + 4.5 * s, my + 1), fill=(120, 40, 45), width=2)
    return np.asarray(im, dtype=np.uint8).copy()


# ---------------------------------------------------------------------------------------------
# captions


def object_phrase(shape: str, color: str | None, texture: str | None, count: int = 1) -> str:
    """"a striped red circle", "two green triangles" (texture "plain" is usually left out)."""
    words = [COUNT_WORDS[count]]
    if texture:
        words.append(texture)
    if color:
        words.append(color)
    words.append(shape + ("s" if count > 1 else ""))
    return " ".join(words)


def join_phrases(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def relation(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The grid relations that hold for object a with respect to object b."""
    rel = []
    if a["col"] < b["col"]:
        rel.append("to the left of")
    if a["col"] > b["col"]:
        rel.append("to the right of")
    if a["row"] < b["row"]:
        rel.append("above")
    if a["row"] > b["row"]:
        rel.append("below")
    return rel


def groups_of(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Distinct (shape, colour, texture) kinds in first-appearance order, with counts."""
    out: dict[tuple, dict[str, Any]] = {}
    for o in objects:
        k = (o["shape"], o["color"], o["texture"])
        if k not in out:
            out[k] = {"shape": k[0], "color": k[1], "texture": k[2], "count": 0}
        out[k]["count"] += 1
    return list(out.values())


TIME_NIGHT = ("at night", "at night", "at nighttime", "on a night background")
TIME_DAY = ("during the day", "in the daytime", "on a day background")


def object_captions(labels: Mapping[str, Any], rng: np.random.Generator) -> list[str]:
    groups = groups_of(labels["objects"])
    night = labels["background"] == "night"

    def tex(g, keep=True):
        if g["texture"] == "striped":
            return "striped" if keep else None
        return None

    def timed(text: str, full: bool) -> str:
        if night and (full or rng.random() < 0.7):
            return f"{text} {TIME_NIGHT[int(rng.integers(len(TIME_NIGHT)))]}"
        if not night and rng.random() < (0.3 if full else 0.15):
            return f"{text} {TIME_DAY[int(rng.integers(len(TIME_DAY)))]}"
        return text

    full = timed(join_phrases([object_phrase(g["shape"], g["color"], tex(g), g["count"]) for g in groups]), True)
    caps = [full]
    objs = labels["objects"]
    if len(objs) == 2 and len(groups) == 2:
        a, b = (objs[0], objs[1]) if rng.random() < 0.5 else (objs[1], objs[0])
        rels = relation(a, b)
        r = rels[int(rng.integers(len(rels)))]
        pa = object_phrase(a["shape"], a["color"], tex(a))
        pb = object_phrase(b["shape"], b["color"], tex(b))
        caps.append(timed(f"{pa} {r} {pb}", False))
    # a partial caption: a subset of the kinds, attributes sometimes left out
    k = int(rng.integers(1, len(groups) + 1))
    idx = sorted(rng.choice(len(groups), size=k, replace=False).tolist())
    parts = []
    for i in idx:
        g = groups[i]
        keep_color = rng.random() < 0.8
        keep_tex = rng.random() < 0.6
        parts.append(object_phrase(g["shape"], g["color"] if keep_color else None, tex(g, keep_tex), g["count"]))
    caps.append(timed(join_phrases(parts), False))
    return caps


def face_phrase(attrs: Mapping[str, Any]) -> str:
    """Caption naming the given attributes (any subset of skin/hair/eyeglasses/smiling)."""
    text = NEUTRAL_FACE
    if "smiling" in attrs:
        text += " smiling" if attrs["smiling"] else " not smiling"
    nouns = []
    if attrs.get("eyeglasses") is True:
        nouns.append("eyeglasses")
    if "hair" in attrs:
        nouns.append(f"{attrs['hair']} hair")
    if "skin" in attrs:
        nouns.append(f"{attrs['skin']} skin")
    if nouns:
        text += " with " + join_phrases(nouns)
    if attrs.get("eyeglasses") is False:
        text += (" and" if nouns else "") + " without eyeglasses"
    return text


FACE_KEYS = ("smiling", "eyeglasses", "hair", "skin")


def face_captions(labels: Mapping[str, Any], rng: np.random.Generator) -> list[str]:
    full = face_phrase({k: labels[k] for k in FACE_KEYS})
    single_key = FACE_KEYS[int(rng.integers(len(FACE_KEYS)))]
    single = face_phrase({single_key: labels[single_key]})
    keys = [k for k in FACE_KEYS if rng.random() < 0.5] or [FACE_KEYS[int(rng.integers(4))]]
    subset = face_phrase({k: labels[k] for k in keys})
    return [full, NEUTRAL_FACE, single, subset]


# ---------------------------------------------------------------------------------------------
# entry points


def render(seed: int, family: str | None = None, *, face_attrs: Mapping[str, Any] | None = None,
           face_dist: str | Mapping[str, Mapping[Any, float]] = "biased",
           objects: Sequence[Mapping[str, Any]] | None = None, n_objects: int | None = None,
           background: str | None = None) -> Render:
    """Render one scene from ``seed`` (deterministic). ``family`` None draws it (50/50)."""
    rng = np.random.default_rng(int(seed))
    fam_draw = rng.random()
    if family is None:
        family = "objects" if fam_draw < 0.5 else "face"
    if family == "objects":
        labels = sample_objects(rng, n_objects=n_objects, fixed=objects, background=background)
        image = draw_objects(labels, rng)
        captions = object_captions(labels, rng)
    elif family == "face":
        dist = {"biased": FACE_BIAS, "uniform": FACE_UNIFORM}[face_dist] if isinstance(face_dist, str) else face_dist
        labels = sample_face(rng, dist, face_attrs)
        image = draw_face(labels)
        captions = face_captions(labels, rng)
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return Render(image=image, captions=captions, labels=labels)
