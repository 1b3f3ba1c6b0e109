"""Paired deltas: each method's value minus the reference method's, on the images both share.

Methods of one suite see the same (prompt, seed) pairs (the seed is derived from the prompt set,
prompt id and image index), so a difference is far better measured on pairs than from two
separate intervals. For a column (e.g. ``fd:smiling``), the pairs are the (prompt id, image
index) keys present in both methods' samples of that column; one set of B resamples of those
pairs (with replacement, seed 0) is applied to both methods, and the column's statistic
(:class:`t2ibench.metrics.common.ColumnSample`: a mean, the bias-corrected FD/KL, a Fréchet
distance against the fixed reference) is computed on each; the 95 % interval is the percentile
interval of the B differences. A delta is *significant* when its interval excludes 0; its
verdict is ``better``/``worse`` by the column's direction, ``same`` otherwise.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .schema import Delta, Verdict

DEFAULT_REFERENCE = "sd"


def pair_key(meta: Mapping[str, Any]) -> tuple[str, int]:
    """The (prompt id, image index) of an image: equal across methods for the same prompt and seed."""
    return str(meta.get("prompt_id")), int(meta.get("index", 0))


def paired_delta(sample, metas: Sequence[Mapping[str, Any]], ref_sample, ref_metas: Sequence[Mapping[str, Any]],
                 *, lower_is_better: bool | None, n_boot: int = 1000, seed: int = 0, reference: str = DEFAULT_REFERENCE,
                 level: float = 0.95) -> Delta | None:
    """The paired delta (method − reference) of one column, or None without two shared pairs."""
    mine = {pair_key(metas[i]): j for j, i in enumerate(sample.items)}
    theirs = {pair_key(ref_metas[i]): j for j, i in enumerate(ref_sample.items)}
    shared = sorted(set(mine) & set(theirs))
    if len(shared) < 2:
        return None
    pm = np.array([mine[k] for k in shared], dtype=np.int64)
    pr = np.array([theirs[k] for k in shared], dtype=np.int64)
    value = float(sample.stat(pm[None])[0] - ref_sample.stat(pr[None])[0])
    ci = None
    if n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, len(shared), (n_boot, len(shared)))
        diffs = np.asarray(sample.stat(pm[idx]), dtype=np.float64) - np.asarray(ref_sample.stat(pr[idx]), dtype=np.float64)
        alpha = (1.0 - level) / 2.0
        lo, hi = (float(x) for x in np.quantile(diffs, [alpha, 1.0 - alpha]))
        ci = [min(lo, value), max(hi, value)]  # a percentile interval may miss a skewed estimate
    significant = ci is not None and (ci[0] > 0 or ci[1] < 0)
    verdict: Verdict = "same"
    if significant and lower_is_better is not None:
        verdict = "better" if (value < 0) == bool(lower_is_better) else "worse"
    return Delta(reference=reference, value=value, ci=ci, n_pairs=len(shared), resamples=n_boot,
                 significant=significant, verdict=verdict)


def add_deltas(rows: list[dict[str, Any]], groups: Mapping[tuple[str, str], tuple[dict, list]], reference: str,
               *, n_boot: int = 1000) -> None:
    """Attach ``delta`` to every available row of ``rows`` whose method is not ``reference`` and
    whose (prompt set, column) the reference also has; ``groups``: ``{(method, prompt set):
    ({column: ColumnSample}, metas)}`` (in the order the scorer aggregated them)."""
    for row in rows:
        method, pset, column = row["method"], row["prompt_set"], row["column"]
        if method == reference or not row.get("available") or row.get("value") is None:
            continue
        mine, ref = groups.get((method, pset)), groups.get((reference, pset))
        if mine is None or ref is None:
            continue
        col = _local_column(column, mine[0])
        if col is None or col not in ref[0]:
            continue
        d = paired_delta(mine[0][col], mine[1], ref[0][col], ref[1], lower_is_better=row.get("lower_is_better"),
                         n_boot=n_boot, reference=reference)
        if d is not None:
            row["delta"] = dict(d)


def _local_column(column: str, samples: Mapping[str, Any]) -> str | None:
    """The scorer's own column name of a table column (``fd-clip.fd:smiling`` → ``fd:smiling``)."""
    if column in samples:
        return column
    tail = column.split(".", 1)[1] if "." in column else None
    if tail in samples:
        return tail
    return next(iter(samples)) if len(samples) == 1 else None
