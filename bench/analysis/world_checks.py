"""Ground-truth checks of the analyses on tinyworld renders (boxes from the renderer's labels).

``object_word_box_shares``: for two-object renders (distinct shapes and colours), the prompt
"a <colour1> <shape1> and a <colour2> <shape2>" is read by the denoiser on the noised render
(:func:`t2ibench.analysis.maps.capture_maps_on_image`); for every colour and shape word, the
share of its attention mass inside its own object's box, the share inside the *other*
object's box, and the chance level (box area / image area). A map that localises puts clearly
more than chance inside its own box and more than inside the other's; ``share_objects`` (both
boxes) against ``chance_objects`` tells a map that finds objects but not *its* object (attribute
leakage between the two) from one that does not find objects at all.

Every row says which object its word names (``object``: 1 = named first in the prompt, 2 =
second) and the word's share of all the attention probability captured (``mass_share``): with a
causal text encoder (CLIP) a later word's embedding has read the earlier ones, so the two objects'
words need not behave alike. ``token_role_box_shares`` asks the converse question: for every token
position (start, each word, end, padding), how much of its map lies on object 1 and on object 2,
i.e. which tokens the denoiser actually reads each object from.

Object box: ``(x − r, y − r, x + r, y + r)`` from the label's centre and radius, in pixels of
the 64×64 render, clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .maps import TokenMaps, capture_maps_on_image
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


@dataclass
class RenderMaps:
    """Maps of one two-object render read with "a <c1> <s1> and a <c2> <s2>" (objects in that order)."""

    seed: int
    objects: tuple[dict, dict]
    maps: TokenMaps
    size: tuple[int, int]  # (H, W) of the render, pixels


def capture_render_maps(
    pipe: Any, n_images: int = 8, *, seed0: int = 10_000, fractions: Sequence[float] = (0.3, 0.5, 0.7),
    layers: Any = "cross",
) -> list[RenderMaps]:
    """Read the first ``n_images`` two-object renders from ``seed0`` on at noise levels ``fractions``
    (t/T), summing the cross-attention ``layers`` (a ``LayerSelector`` spec or a list of names)."""
    out = []
    for seed, r in two_object_renders(range(seed0, seed0 + 50 * n_images), n_images):
        a, b = r.labels["objects"]
        prompt = f"a {a['color']} {a['shape']} and a {b['color']} {b['shape']}"
        tm = capture_maps_on_image(pipe, r.pil(), prompt, fractions=fractions, seed=seed, layers=layers)
        out.append(RenderMaps(seed, (a, b), tm, tuple(r.image.shape[:2])))
    return out


def object_word_box_shares(
    pipe: Any, n_images: int = 8, *, seed0: int = 10_000, fractions: Sequence[float] = (0.3, 0.5, 0.7),
    layers: Any = "cross", captures: Sequence[RenderMaps] | None = None,
) -> list[dict[str, Any]]:
    """Rows per (render, word): ``object`` (1 or 2), ``share_own``, ``share_other``, ``chance_own``,
    ``lift``, ``share_objects``, ``chance_objects``, ``mass_share``. The renders are read as in
    :func:`capture_render_maps` (or given as ``captures``)."""
    if captures is None:
        captures = capture_render_maps(pipe, n_images, seed0=seed0, fractions=fractions, layers=layers)
    rows = []
    for cap in captures:
        a, b = cap.objects
        tm, size = cap.maps, cap.size
        total = float(tm.aggregate().double().sum())
        for index, (own, other) in enumerate(((a, b), (b, a)), start=1):
            for kind in ("shape", "color"):
                word = own[kind]
                m = tm.word_map(word).numpy()
                box_own, box_other = object_box(own, size[1]), object_box(other, size[1])
                share = box_mass_share(m, box_own, size)
                share_other = box_mass_share(m, box_other, size)
                chance = box_area_share(box_own, m.shape, size)
                rows.append({
                    "seed": cap.seed, "prompt": tm.prompt, "word": word, "kind": kind, "object": index,
                    "share_own": share, "share_other": share_other,
                    "chance_own": chance, "lift": share / chance if chance else float("nan"),
                    # the two boxes lie in different cells of the layout grid, so they are disjoint
                    "share_objects": share + share_other,
                    "chance_objects": chance + box_area_share(box_other, m.shape, size),
                    "mass_share": float(m.sum()) / total if total > 0 else float("nan"),
                })
    return rows


def token_roles(maps: TokenMaps, objects: tuple[dict, dict], padding_split: int = 10) -> list[tuple[int, str]]:
    """``[(position, role)]`` for every captured position (77 for CLIP): ``<start>``; the prompt's
    words (``colour 1``, ``shape 1``, ``colour 2``, ``shape 2`` for the objects' words, else the
    word itself, with ``#2`` on a repeat); ``<end>``; ``padding 1-{padding_split}`` and
    ``padding {padding_split + 1}+``."""
    named = {}
    for index, obj in enumerate(objects, start=1):
        named[obj["color"]] = f"colour {index}"
        named[obj["shape"]] = f"shape {index}"
    roles = [(0, "<start>")]
    seen: dict[str, int] = {}
    for word, positions in maps.spans:
        role = named.get(word, word)
        seen[role] = seen.get(role, 0) + 1
        roles += [(p, role if seen[role] == 1 else f"{role}#{seen[role]}") for p in positions]
    eot = len(maps.labels) - 1
    roles.append((eot, "<end>"))
    n = int(next(iter(maps.per_step.values())).shape[0])
    for p in range(eot + 1, n):
        roles.append((p, f"padding 1-{padding_split}" if p - eot <= padding_split else f"padding {padding_split + 1}+"))
    return roles


def token_role_box_shares(captures: Sequence[RenderMaps]) -> list[dict[str, Any]]:
    """Where the denoiser reads each object from: rows per (render, token role) with the role's
    map (summed over its positions) share inside object 1's and object 2's boxes, their chance
    levels, and the role's share of all captured attention (``mass_share``)."""
    rows = []
    for cap in captures:
        a, b = cap.objects
        tm, size = cap.maps, cap.size
        agg = tm.aggregate().double()
        total = float(agg.sum())
        by_role: dict[str, list[int]] = {}
        for p, role in token_roles(tm, cap.objects):
            by_role.setdefault(role, []).append(p)
        box1, box2 = object_box(a, size[1]), object_box(b, size[1])
        for role, positions in by_role.items():
            m = agg[positions].sum(0).numpy()
            rows.append({
                "seed": cap.seed, "prompt": tm.prompt, "role": role, "positions": len(positions),
                "share_object1": box_mass_share(m, box1, size), "share_object2": box_mass_share(m, box2, size),
                "chance_object1": box_area_share(box1, m.shape, size), "chance_object2": box_area_share(box2, m.shape, size),
                "mass_share": float(m.sum()) / total if total > 0 else float("nan"),
            })
    return rows


def token_role_table(rows: Sequence[dict[str, Any]]) -> Any:
    """``pandas.DataFrame`` of :func:`token_role_box_shares` rows averaged over renders, one row
    per role in prompt order."""
    import pandas as pd

    df = pd.DataFrame(rows)
    order = list(dict.fromkeys(df["role"]))
    return df.drop(columns=["seed", "prompt"]).groupby("role").mean().loc[order]


def _other(df: Any) -> str:
    """The other object's share, over the maps whose other object was located."""
    both = df.dropna(subset=["share_other"])
    if not len(both):
        return "other object not located"
    return (f"in the other object's box {both['share_other'].mean():.3f}, own > other in "
            f"{(both['share_own'] > both['share_other']).mean():.0%} of {len(both)}")


def word_share_summary(label: str, rows: Any) -> str:
    """Printable summary of word-share rows (a list or ``DataFrame`` from
    :func:`object_word_box_shares` or :func:`generated_word_box_shares`): one line over all word
    maps, then one per (word kind, object named first or second)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if not len(df):
        return f"{label}: no word maps"
    both = (f"; in both objects' boxes {df['share_objects'].mean():.3f} vs chance {df['chance_objects'].mean():.3f}"
            if "share_objects" in df else "")
    lines = [f"{label}: {len(df)} word maps, share of attention in own object's box "
             f"{df['share_own'].mean():.3f} ± {df['share_own'].std():.3f} (chance {df['chance_own'].mean():.3f}; {_other(df)}{both})"]
    for (kind, index), sub in df.groupby(["kind", "object"]):
        lines.append(f"  {kind} words of object {index} ({len(sub)}): own {sub['share_own'].mean():.3f}, "
                     f"chance {sub['chance_own'].mean():.3f}; {_other(sub)}")
    return "\n".join(lines)


def token_role_summary(rows: Sequence[dict[str, Any]]) -> str:
    """Printable :func:`token_role_table`: where each object is read from."""
    mean = token_role_table(rows)
    lines = [f"  which tokens' maps lie on the objects (chance {mean['chance_object1'].mean():.3f} / "
             f"{mean['chance_object2'].mean():.3f}):",
             f"    {'token':<14} {'object 1':>8} {'object 2':>8} {'attention':>9}"]
    for role, r in mean.iterrows():
        lines.append(f"    {role:<14} {r['share_object1']:>8.3f} {r['share_object2']:>8.3f} {r['mass_share']:>9.3f}")
    return "\n".join(lines)


def cell_box(row: int, col: int, size: int = 64, grid: int = 3) -> tuple[float, float, float, float]:
    """Pixel box of a cell of the renderer's layout grid (row 0 top, col 0 left)."""
    c = size / grid
    return (col * c, row * c, (col + 1) * c, (row + 1) * c)


def two_object_prompts(n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """``n`` pairs of (colour, shape) objects with distinct shapes and colours, deterministic."""
    import numpy as np

    from t2ibench.world.render import COLORS, SHAPES

    rng = np.random.default_rng(seed)
    out: list[tuple[dict[str, str], dict[str, str]]] = []
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
    Rows carry ``object`` (1 or 2, the order named) as in :func:`object_word_box_shares`.
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
        for index, (own, other) in enumerate(((a, b), (b, a)), start=1):
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
                    "seed": seed0 + i, "prompt": prompt, "word": own[kind], "kind": kind, "object": index,
                    "share_own": share,
                    "share_other": box_mass_share(m, cell_box(oc["row"], oc["col"], w), (h, w)) if oc else float("nan"),
                    "chance_own": chance, "lift": share / chance if chance else float("nan"),
                })
    return rows, counts
