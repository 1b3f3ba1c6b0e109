"""Figures for the analyses, drawn with matplotlib's Agg canvas (no pyplot, no display).

Every function writes one PNG and returns its path. Heatmaps are min-max scaled per panel (the
colour bar of each panel is its own; compare shapes, not amplitudes — amplitudes are in CSVs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, format="png", bbox_inches="tight")
    tmp.replace(path)
    return path


def _np_image(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)


def _resize(m: Any, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(m, dtype=np.float32))
    if tuple(t.shape) != tuple(size):
        t = F.interpolate(t[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    return t.numpy()


def _unit(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def heatmap_panels(
    image: Any,
    maps: Mapping[str, Any],
    path: str | Path,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.55,
    columns: int = 6,
    signed: bool = False,
) -> Path:
    """The image, then one panel per map overlaid on it (label above each panel).

    ``signed=True`` draws maps with both signs on a diverging scale centred at 0 (no overlay).
    """
    img = _np_image(image)
    h, w = img.shape[:2]
    n = len(maps) + 1
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig = _figure(2.0 * cols, 2.2 * rows + (0.4 if title else 0))
    if title:
        fig.suptitle(title, fontsize=10)
    ax = fig.add_subplot(rows, cols, 1)
    ax.imshow(img)
    ax.set_title("image", fontsize=8)
    ax.axis("off")
    for k, (label, m) in enumerate(maps.items(), start=2):
        ax = fig.add_subplot(rows, cols, k)
        a = _resize(m, (h, w))
        if signed:
            v = float(np.abs(a).max()) or 1.0
            ax.imshow(a, cmap="RdBu_r", vmin=-v, vmax=v)
        else:
            ax.imshow(img)
            ax.imshow(_unit(a), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
        ax.set_title(str(label), fontsize=8)
        ax.axis("off")
    return _save(fig, path)


def image_grid(
    images: Sequence[Sequence[Any]],
    path: str | Path,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    title: str = "",
) -> Path:
    """Rows × columns of images with labels."""
    rows = len(images)
    cols = max(len(r) for r in images) if images else 1
    fig = _figure(1.6 * cols + 1.2, 1.7 * rows + (0.4 if title else 0))
    if title:
        fig.suptitle(title, fontsize=10)
    for i, row in enumerate(images):
        for j, im in enumerate(row):
            ax = fig.add_subplot(rows, cols, i * cols + j + 1)
            ax.imshow(_np_image(im))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0 and i < len(row_labels):
                ax.set_ylabel(row_labels[i], fontsize=8)
    return _save(fig, path)


def group_distributions(
    df: Any,
    stats: Sequence[str],
    path: str | Path,
    group: str = "token_group",
    phase: str = "phase",
    title: str = "",
) -> Path:
    """Box plots of each statistic per (phase, group): e.g. tSA vs non-tSA tokens, early vs late."""
    phases = [p for p in ("early", "late") if p in set(df[phase])] or sorted(set(df[phase]))
    groups = sorted(set(df[group]))
    fig = _figure(3.0 * len(stats), 3.0 + (0.4 if title else 0))
    if title:
        fig.suptitle(title, fontsize=10)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for k, stat in enumerate(stats):
        ax = fig.add_subplot(1, len(stats), k + 1)
        data, pos, cols, ticks, ticklabels = [], [], [], [], []
        x = 0.0
        for p in phases:
            start = x
            for gi, g in enumerate(groups):
                vals = df[(df[phase] == p) & (df[group] == g)][stat].dropna().to_numpy()
                data.append(vals if len(vals) else np.array([np.nan]))
                pos.append(x)
                cols.append(colours[gi % len(colours)])
                x += 1
            ticks.append((start + x - 1) / 2)
            ticklabels.append(p)
            x += 0.8
        bp = ax.boxplot(data, positions=pos, widths=0.7, patch_artist=True, showfliers=False)
        for patch, c in zip(bp["boxes"], cols, strict=True):
            patch.set_facecolor(c)
            patch.set_alpha(0.6)
        ax.set_xticks(ticks)
        ax.set_xticklabels(ticklabels)
        ax.set_title(stat, fontsize=9)
        if k == 0:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color=colours[i % len(colours)], alpha=0.6, label=g) for i, g in enumerate(groups)], fontsize=7)
    return _save(fig, path)


def line_over_steps(df: Any, stat: str, path: str | Path, by: str = "token", x: str = "step", title: str = "") -> Path:
    """One line per ``by`` value of ``stat`` against ``x``."""
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    for key, sub in df.groupby(by, sort=False):
        sub = sub.sort_values(x)
        ax.plot(sub[x], sub[stat], marker=".", label=str(key))
    ax.set_xlabel(x)
    ax.set_ylabel(stat)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def bar_with_errors(labels: Sequence[str], series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, ylabel: str = "", title: str = "") -> Path:
    """Grouped bars: ``series = {name: (means, stds)}`` over ``labels``."""
    fig = _figure(max(4.0, 1.0 + 0.9 * len(labels) * max(1, len(series)) / 2), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(labels))
    for k, (name, (mean, std)) in enumerate(series.items()):
        std_arr = np.nan_to_num(np.asarray(std, dtype=float))
        ax.bar(x + (k - (n - 1) / 2) * width, mean, width, yerr=std_arr, capsize=3, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8, rotation=20)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)
