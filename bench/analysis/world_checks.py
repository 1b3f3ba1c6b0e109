"""Ground-truth checks of the analyses on tinyworld renders (boxes from the renderer's labels).

``object_word_box_shares``: for two-object renders (distinct shapes and colours), the prompt
"a <colour1> <shape1> and a <colour2> <shape2>" is read by the denoiser on the noised render
(:func:`t2ibench.analysis.maps.capture_maps_on_image`); for every colour and shape word, the
share of its attention mass inside its own object's box, the share inside the *other*
object's box, and the chance level (box area / image area). A map that localises puts clearly
more than chance inside its own box and more than inside the other's; ``share_objects`` (both
boxes) against ``chance_objects`` tells a map that finds objects but not *its* object (attribute
leakage between the two) from one that does not find objects at all.

Object box: ``(x − r, y − r, x + r, y + r)`` from the label's centre and radius, in pixels of
the 64×64 render, clipped to the image.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .maps import capture_maps_on_image
from .stats import box_area_share, box_mass_share


def object_box(obj: dict, size: int = 64) -> tuple[float, float, float, float]:
    x, y, r = float(obj["x"]), float(obj["y"]), float(obj["radius"])
    return (max(0.0, x - r), max(0.0, y - r), min(float(size), x + r), min(float(size), y + r))


def two_object_renders(seeds: Iterable[int], n: int) -> list[Any]:
    """The first ``n`` two-object renders (distinct shapes and colours) from ``seeds``."""
    from t2ibench.world.render import render

    out = []
    for s in seeds:
        r = render(int(s), "objects", n_objects=2)
        a, b = r.labels["objects"]
        if a["shape"] != b["shape"] and a["color"] != b["color"]:
            out.append((int(s), r))
        if len(out) >= n:
            break
    return out


def object_word_box_shares(
    pipe: Any, n_images: int = 8, *, seed0: int = 10_000, fractions: Sequence[float] = (0.3, 0.5, 0.7),
    layers: Any = "cross",
) -> list[dict[str, Any]]:
    """Rows per (render, word): ``share_own``, ``share_other``, ``chance_own``, ``lift``,
    ``share_objects``, ``chance_objects``. ``fractions``: noise levels t/T the render is read at;
    ``layers``: the cross-attention layers summed (a ``LayerSelector`` spec or a list of names)."""
    rows = []
    for seed, r in two_object_renders(range(seed0, seed0 + 50 * n_images), n_images):
        a, b = r.labels["objects"]
        prompt = f"a {a['color']} {a['shape']} and a {b['color']} {b['shape']}"
        tm = capture_maps_on_image(pipe, r.pil(), prompt, fractions=fractions, seed=seed, layers=layers)
        size = r.image.shape[:2]
        for own, other in ((a, b), (b, a)):
            for kind in ("shape", "color"):
                word = own[kind]
                m = tm.word_map(word).numpy()
                box_own, box_other = object_box(own, size[1]), object_box(other, size[1])
                share = box_mass_share(m, box_own, size)
                share_other = box_mass_share(m, box_other, size)
                chance = box_area_share(box_own, m.shape, size)
                rows.append({
                    "seed": seed, "prompt": prompt, "word": word, "kind": kind,
                    "share_own": share, "share_other": share_other,
                    "chance_own": chance, "lift": share / chance if chance else float("nan"),
                    # the two boxes lie in different cells of the layout grid, so they are disjoint
                    "share_objects": share + share_other,
                    "chance_objects": chance + box_area_share(box_other, m.shape, size),
                })
    return rows


def cell_box(row: int, col: int, size: int = 64, grid: int = 3) -> tuple[float, float, float, float]:
    """Pixel box of a cell of the renderer's layout grid (row 0 top, col 0 left)."""
    c = size / grid
    return (col * c, row * c, (col + 1) * c, (row + 1) * c)


def two_object_prompts(n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """``n`` pairs of (colour, shape) objects with distinct shapes and colours, deterministic."""
    import numpy as np

    from t2ibench.world.render import COLORS, SHAPES

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        s = rng.choice(len(SHAPES), 2, replace=False)
        c = rng.choice(len(COLORS), 2, replace=False)
        out.append(({"shape": SHAPES[s[0]], "color": COLORS[c[0]]}, {"shape": SHAPES[s[1]], "color": COLORS[c[1]]}))
    return out


def generated_word_box_shares(
    pipe: Any, evaluator: Any, n_images: int = 8, *, seed0: int = 0, steps: int = 25, guidance: float = 5.0,
    step_range: Sequence[int] | None = None, layers: Any = "cross",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Maps of *generated* two-object images, boxes from the tinyworld evaluator.

    For each prompt "a <c1> <s1> and a <c2> <s2>" one image is generated (seed ``seed0 + i``) with
    map capture; the evaluator reads back the occupied layout cells. For every named object the
    evaluator finds (shape and colour both right, exactly one such cell), the share of its shape
    word's and colour word's attention mass in that cell (``share_own``) and in the other named
    object's cell when found (``share_other``); chance is one cell = 1/9 of the image.
    Returns (rows, counts) with counts of images, objects named, objects found.
    """
    from .maps import capture_maps

    rows: list[dict[str, Any]] = []
    counts = {"images": 0, "objects_named": 0, "objects_found": 0}
    for i, (a, b) in enumerate(two_object_prompts(n_images, seed0)):
        prompt = f"a {a['color']} {a['shape']} and a {b['color']} {b['shape']}"
        h = w = 64
        tm = capture_maps(pipe, prompt, seed0 + i, steps=steps, guidance=guidance, height=h, width=w, layers=layers)
        objs = evaluator.unbatch(evaluator.predict([tm.image]))[0]["objects"]
        counts["images"] += 1
        cells = {}
        for o in (a, b):
            counts["objects_named"] += 1
            hits = [p for p in objs if p["shape"] == o["shape"] and p["color"] == o["color"]]
            if len(hits) == 1:
                counts["objects_found"] += 1
                cells[o["shape"]] = hits[0]
        for own, other in ((a, b), (b, a)):
            if own["shape"] not in cells:
                continue
            c = cells[own["shape"]]
            box = cell_box(c["row"], c["col"], w)
            oc = cells.get(other["shape"])
            for kind in ("shape", "color"):
                m = tm.word_map(own[kind], step_range).numpy()
                share = box_mass_share(m, box, (h, w))
                chance = box_area_share(box, m.shape, (h, w))
                rows.append({
                    "seed": seed0 + i, "prompt": prompt, "word": own[kind], "kind": kind,
                    "share_own": share,
                    "share_other": box_mass_share(m, cell_box(oc["row"], oc["col"], w), (h, w)) if oc else float("nan"),
                    "chance_own": chance, "lift": share / chance if chance else float("nan"),
                })
    return rows, counts
