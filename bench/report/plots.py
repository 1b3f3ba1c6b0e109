"""Plots of a run's aggregates for the HTML report (matplotlib, Agg, PNG as base64).

- :func:`fd_plot`: fairness discrepancy per tSA per method, with the 95 % intervals as error bars.
- :func:`quality_alignment_plot`: Fréchet distance vs CLIP Score per method and prompt set, a
  guidance sweep (:func:`guidance_sweeps`) connected in order of w.
"""

from __future__ import annotations

import base64
import io
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..results.schema import Aggregates, interval_of

if TYPE_CHECKING:
    from ..suite import Suite


def _fig_b64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


FD_COLUMN = re.compile(r"(?:^|\.)fd:(?P<tsa>.+)$")


def _metric_name(agg: Aggregates, label: str) -> str:
    info = agg["metrics"].get(label) or {}
    return str(info.get("name") or label)


def fd_plot(agg: Aggregates | None) -> str | None:
    """Grouped bars: FD per tSA (x) per method (bars), error bars from the 95 % interval."""
    if not agg:
        return None
    vals: dict[str, dict[str, tuple[float, float, float]]] = defaultdict(dict)  # value, below, above
    for r in agg["rows"]:
        match = FD_COLUMN.search(r["column"])
        v = r["value"]
        if match and v is not None:
            lo, hi = interval_of(r) or (v, v)
            # asymmetric error bars: a bootstrap interval of a statistic bounded at 0 can lie above it
            vals[r["method"]][match.group("tsa")] = (v, max(v - lo, 0.0), max(hi - v, 0.0))
    if not vals:
        return None
    tsas = sorted({t for d in vals.values() for t in d})
    methods = list(vals)
    fig = _figure(max(4.5, 1.2 * len(tsas) + 2), 3.4)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(methods)
    for k, m in enumerate(methods):
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(tsas))]
        ys = [vals[m].get(t, (float("nan"), 0, 0))[0] for t in tsas]
        es = [[vals[m].get(t, (0, 0, 0))[1] for t in tsas], [vals[m].get(t, (0, 0, 0))[2] for t in tsas]]
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=m)
    ax.set_xticks(range(len(tsas)))
    ax.set_xticklabels(tsas, rotation=15)
    ax.set_ylabel("fairness discrepancy (lower is fairer)")
    ax.set_title("FD per tSA per method")
    ax.legend(fontsize=8)
    return _fig_b64(fig)


def guidance_sweeps(suite: Suite) -> dict[str, dict[str, float]]:
    """``{method name: {label: guidance}}`` for every method that the suite runs at two or more
    guidance scales (entries with a ``guidance`` override; the others at the sampler's)."""
    by_name: dict[str, dict[str, float]] = {}
    overridden = {spec.name for spec in suite.methods if spec.guidance is not None}
    for spec in suite.methods:
        guidance = suite.sampler.guidance if spec.guidance is None else spec.guidance
        by_name.setdefault(spec.name, {})[spec.label] = float(guidance)
    return {n: ls for n, ls in by_name.items() if n in overridden and len(set(ls.values())) > 1}


def quality_alignment_plot(agg: Aggregates | None, suite: Suite | None) -> str | None:
    """Fréchet distance (x) vs CLIP Score (y) per method and prompt set where both exist."""
    if not agg:
        return None
    fid: dict[tuple[str, str], float] = {}
    clip: dict[tuple[str, str], float] = {}
    for r in agg["rows"]:
        if r["value"] is None:
            continue
        name = _metric_name(agg, r["metric"]).lower()
        col = r["column"].lower()
        key = (r["method"], r["prompt_set"])
        if ("fid" in name or "frechet" in name or "fid" in col) and ":" not in col:
            fid.setdefault(key, r["value"])
        elif "clip_score" in name or "clip_score" in col:
            clip.setdefault(key, r["value"])
    keys = [k for k in fid if k in clip]
    if not keys:
        return None
    fig = _figure(5.2, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for k in keys:
        ax.scatter(fid[k], clip[k], s=30)
        ax.annotate(f"{k[0]} ({k[1]})", (fid[k], clip[k]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for labels in (guidance_sweeps(suite) if suite else {}).values():
        for ps in sorted({k[1] for k in keys}):
            sweep = sorted((labels[k[0]], k) for k in keys if k[1] == ps and k[0] in labels)
            if len(sweep) < 2:
                continue
            ax.plot([fid[k] for _, k in sweep], [clip[k] for _, k in sweep], "--", color="#888", lw=1)
            for g, k in sweep:
                ax.annotate(f"w={g:g}", (fid[k], clip[k]), fontsize=7, xytext=(3, -10), textcoords="offset points",
                            color="#555")
    ax.margins(0.25)
    ax.set_xlabel("Fréchet distance (lower is better)")
    ax.set_ylabel("CLIP Score (higher is better)")
    ax.set_title("quality vs alignment across methods")
    return _fig_b64(fig)
