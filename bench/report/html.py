"""One self-contained HTML page per run: results table, sample grids, plots, analysis figures.

``write_report(RUN)`` reads the run directory through ``RunDir`` (no links inside it; each
image's sidecar checked and its PNG against its hash; ``run.json``, ``suite.yaml``) and, when present,
``RUN/results/aggregates.json`` (the scorers' format ``t2ibench-aggregates/1``: ``metrics``
and ``rows`` of ``{method, prompt_set, metric, column, value, n, ci, lower_is_better,
available, reason}``); it writes ``RUN/results/report.html`` (or ``out``).

Everything the page shows is inlined (images as base64 PNG, CSS in the page): it opens from a
mail attachment or a CI artifact the same. Links to analysis figures (PNG files under
``RUN/analysis/`` or folders given with ``analysis_dirs``) are relative links plus an inlined
thumbnail.

Sections: header (suite, model, hashes, counts); results table (prompt set × method rows,
one column per aggregate column, ``value [95 % interval]``, ``n``; "not available" where a
metric could not run (its reason listed once below the tables); a note when no aggregates exist);
plots (fairness discrepancy per tSA per method, when ``fd:<tSA>`` columns exist; a Fréchet
distance vs CLIP Score scatter across methods, connected in guidance order when methods differ
by a ``guidance`` parameter); per-method sample grids for the same prompts and seeds; analysis
figures.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar, cast

from ..errors import UserError
from ..fileio import write_output_text
from ..log import get_logger
from ..results import layout as L
from ..results.schema import Aggregates, MetricInfo, has_value
from ..results.scoring import load_aggregates
from ..results.table import entries_of, suite_variants
from ..store import RunDir
from .plots import fd_plot, guidance_sweeps, quality_alignment_plot  # noqa: F401  (guidance_sweeps: public here too)

REPORT_NAME = "report.html"
THUMB_MAX = 192  # longest side of an inlined sample image, pixels
MAX_FIGURE_SIDE = 8192  # longest side of an analysis figure the report decodes, pixels
log = get_logger(__name__)
_T = TypeVar("_T")

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px} .meta{color:#555;font-size:13px} .note{color:#8a5a00;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.na{color:#999;font-style:italic} .best{font-weight:bold} div.scroll{overflow-x:auto}
table.grid td{text-align:center;font-size:11px;padding:3px}
table.grid img{width:96px;height:96px;image-rendering:pixelated;display:block;margin:auto}
.figs{display:flex;flex-wrap:wrap;gap:16px} .figs figure{margin:0;max-width:620px}
.figs img{max-width:600px;border:1px solid #ddd} figcaption{font-size:12px;color:#555}
code{background:#f5f5f5;padding:1px 3px}
"""


# -- reading the run --------------------------------------------------------------------------
def _lenient(read: Callable[[], _T]) -> _T | None:
    """``read()``, or None with a warning line when the file it reads exists but is damaged: the
    page's metadata and results are optional (a report renders for a half-made run); images are not."""
    try:
        return read()
    except UserError as exc:
        log.warning(f"t2ibench report: warning: {exc}")
        return None


def _records(run: RunDir) -> list[dict[str, Any]]:
    """Finished images read through ``RunDir.records`` (sidecar checked, PNG bytes against their
    hash): sidecar dicts with ``prompt_id``/``index`` from the key and the ``record`` to decode."""
    out: list[dict[str, Any]] = []
    for rec in run.records():
        pid, _, idx = rec.key.rsplit("/", 1)[-1].rpartition("-")
        out.append({"prompt_id": pid, "index": int(idx) if idx.isdigit() else 0, **rec.meta, "record": rec})
    return out


def _png_b64(im: Any, max_side: int | None = THUMB_MAX) -> str:
    """A ``PIL.Image`` as base64 PNG, shrunk to ``max_side`` pixels on its longer side."""
    from PIL import Image

    im = im.convert("RGB")
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(b64: str, alt: str = "", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _esc(x: Any) -> str:
    return html.escape(str(x))


# -- results table ----------------------------------------------------------------------------
def _html_table(head: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    ths = "".join(f"<th>{h}</th>" for h in head)
    body = []
    for i, r in enumerate(rows):
        cls = classes[i] if classes else ["num"] * (len(r) - 1)
        tds = "".join(f'<td class="{c}">{_esc(x)}</td>' for x, c in zip(r[1:], cls, strict=True))
        body.append(f"<tr><th>{_esc(r[0])}</th>{tds}</tr>")
    return f"<div class=\"scroll\"><table><tr>{ths}</tr>{''.join(body)}</table></div>"


def _detail_table(g: L.PromptSetTable, block: L.TableBlock) -> str:
    best: dict[str, str] = {}
    for c in block.columns:
        with_value = [g.cells[(m, c)] for m in block.methods if (m, c) in g.cells and has_value(g.cells[(m, c)])]
        if len(with_value) > 1:
            lower = any(e["lower_is_better"] for e in with_value)
            best[c] = (min if lower else max)(with_value, key=lambda e: cast(float, e["value"]))["method"]
    rows, classes = [], []
    for m in block.methods:
        cells = [L.cell(g.cells.get((m, c)), n=True) for c in block.columns]
        if any(cells):
            rows.append([m] + cells)
            classes.append(["na" if not x or x.startswith("not available") else
                            ("num best" if best.get(c) == m else "num") for x, c in zip(cells, block.columns, strict=True)])
    heads = ["method"] + [_esc(block.heading(c)) + g.arrow(c) for c in block.columns]
    title = f"<p class='meta'><b>{_esc(block.label)}</b></p>" if block.label else ""
    return title + _html_table(heads, rows, classes)


def _headline_table(g: L.PromptSetTable, block: L.TableBlock, reference: str | None) -> str:
    rows = [[g.method_label(m)] + [L.headline_cell(g.cells.get((m, c)), reference, m) for c in block.columns]
            for m in block.methods]
    ref_txt = f"Δ against {_esc(reference)}" if reference in g.methods else "no reference method"
    return (f"<p class='meta'>Headline ({ref_txt}): value (Δ ✓ better / ✗ worse, 95 % paired interval excludes 0)</p>"
            + _html_table(["method"] + [_esc(block.heading(c)) + g.arrow(c) for c in block.columns], rows))


def results_table(agg: Aggregates | None, variants: Mapping[str, str] | None = None) -> str:
    """The leaderboard's layout (bench.results.table): per prompt set a headline table with the
    deltas against the reference method, then detail tables of at most 10 columns, ablations and
    variants (``variants``: ``{label: base method}``) in tables of their own."""
    if not agg:
        return '<p class="note">No aggregates: run <code>t2ibench score RUN</code> to fill the results table.</p>'
    unavailable = {k: v for k, v in agg["metrics"].items() if v.get("available") is False}
    entries = entries_of(agg)
    if not entries and not unavailable:
        return '<p class="note">The aggregates file has no rows.</p>'
    reference = agg["reference"]
    parts = []
    for (_, pset), g in sorted(L.prompt_set_tables(entries).items()):
        parts.append(f"<h3>prompt set: {_esc(pset)}</h3>")
        for block in L.section_blocks(g, reference, variants or {}):
            if block.kind == "headline":
                parts.append(_headline_table(g, block, reference))
                continue
            if block.opens_ablations:
                parts.append(f"<p class='meta'><b>Ablations and variants</b> (prompt set {_esc(pset)})</p>")
            parts.append(_detail_table(g, block))
    parts += _results_footer(agg, unavailable)
    return "".join(parts)


def _results_footer(agg: Aggregates, unavailable: Mapping[str, MetricInfo]) -> list[str]:
    """The metrics that could not run (``unavailable``), the legend, the metrics' conventions."""
    parts = []
    if unavailable:
        items = "".join(f"<li><b>{_esc(k)}</b>: not available: {_esc(v.get('reason'))}</li>" for k, v in unavailable.items())
        parts.append(f'<p class="note">Metrics that could not run (not shown as columns):</p><ul class="note">{items}</ul>')
    parts.append('<p class="meta">value [95 % interval] (n images) Δ difference from the reference method on the '
                 'same prompts and seeds; ✓/✗ significantly better/worse; ↓ lower is better; bold = best in column.</p>')
    conv = {k: v.get("conventions") for k, v in agg["metrics"].items() if v.get("conventions")}
    if conv:
        items = "".join(f"<li><b>{_esc(k)}</b>: {_esc(json.dumps(v, sort_keys=True))}</li>" for k, v in conv.items())
        parts.append(f'<details><summary class="meta">metric conventions</summary><ul class="meta">{items}</ul></details>')
    return parts


# -- sample grids -----------------------------------------------------------------------------
def sample_grids(
    records: Sequence[Mapping[str, Any]], max_prompts: int = 6, max_images: int = 2, order: Sequence[str] = ()
) -> str:
    """Per prompt set: rows = (prompt, image index/seed), columns = methods (suite order); same prompts and seeds."""
    if not records:
        return '<p class="note">No finished images in this run.</p>'
    by_set: dict[str, dict[tuple[str, int], dict[str, Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    methods_of: dict[str, list[str]] = defaultdict(list)
    for r in records:
        s = str(r.get("prompt_set"))
        m = str(r.get("method"))
        by_set[s][(str(r.get("prompt_id")), int(r.get("index", 0)))][m] = r
        if m not in methods_of[s]:
            methods_of[s].append(m)
    parts = []
    for s in sorted(by_set):
        cells = by_set[s]
        rank = {m: i for i, m in enumerate(order)}
        methods = sorted(methods_of[s], key=lambda m: (rank.get(m, len(rank)), methods_of[s].index(m)))
        prompts = list(dict.fromkeys(pid for pid, _ in sorted(cells)))[:max_prompts]
        head = "".join(f"<th>{_esc(m)}</th>" for m in methods)
        body = []
        for pid in prompts:
            idxs = sorted(i for p, i in cells if p == pid)[:max_images]
            for i in idxs:
                row = cells[(pid, i)]
                any_r = next(iter(row.values()))
                prompt = any_r.get("prompt", pid)
                seed = any_r.get("seed", "?")
                label = f"<b>{_esc(pid)}</b> #{i}<br>seed {_esc(seed)}<br><span class='meta'>{_esc(prompt)}</span>"
                tds = []
                for m in methods:
                    image = row.get(m)
                    if image is None:
                        tds.append('<td class="na">–</td>')
                        continue
                    extra = image.get("category")
                    cap = f"<br><span class='meta'>{_esc(extra)}</span>" if extra else ""
                    tds.append(f"<td>{_img_tag(_png_b64(image['record'].load_image()), f'{m} {pid} {i}')}{cap}</td>")
                body.append(f"<tr><td style='max-width:220px'>{label}</td>{''.join(tds)}</tr>")
        shown = len(prompts)
        total = len({p for p, _ in cells})
        parts.append(
            f"<h3>prompt set: {_esc(s)} <span class='meta'>({shown} of {total} prompts, up to {max_images} images each)</span></h3>"
            f"<table class='grid'><tr><th>prompt / seed</th>{head}</tr>{''.join(body)}</table>"
        )
    return "".join(parts)


# -- analysis figures -------------------------------------------------------------------------
def _figure(path: Path) -> Any:
    """An analysis figure as a ``PIL.Image``, or None (with a warning line) when it is not a PNG this
    report can show: undecodable, or over ``MAX_FIGURE_SIDE`` pixels (read from its header first)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if max(im.size) > MAX_FIGURE_SIDE:
                raise ValueError(f"{im.size[0]}x{im.size[1]} pixels, over {MAX_FIGURE_SIDE}")
            im.load()
            return im.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        log.warning(f"t2ibench report: warning: analysis figure {path} not shown ({exc})")
        return None


def analysis_figures(dirs: Iterable[Path], report_dir: Path, limit: int = 40) -> str:
    pngs: list[Path] = []
    for d in dirs:
        if d.is_dir():
            pngs += sorted(p for p in d.rglob("*.png") if not p.name.startswith("."))
    figures = [(p, im) for p in pngs[:limit] if (im := _figure(p)) is not None]
    if not figures:
        return ('<p class="note">No analysis figures found. Write them into <code>RUN/analysis/</code> with '
                '<code>t2ibench analyze maps|switch|pid ... --out RUN/analysis/&lt;name&gt;</code>.</p>')
    items = []
    for p, im in figures:
        rel = os.path.relpath(p, report_dir)
        items.append(
            f"<figure><a href='{html.escape(Path(rel).as_posix())}'>{_img_tag(_png_b64(im, max_side=600), p.name)}</a>"
            f"<figcaption>{_esc(Path(rel).as_posix())}</figcaption></figure>"
        )
    more = f"<p class='meta'>{len(pngs) - limit} more not shown.</p>" if len(pngs) > limit else ""
    return f"<div class='figs'>{''.join(items)}</div>{more}"


# -- the page ---------------------------------------------------------------------------------
def render_report(
    run: str | Path,
    out: str | Path | None = None,
    *,
    analysis_dirs: Sequence[str | Path] = (),
    max_prompts: int = 6,
    max_images: int = 2,
) -> str:
    """The report page's HTML for run directory ``run`` (links relative to ``out``'s folder)."""
    run = Path(run)
    out = Path(out) if out else run / "results" / REPORT_NAME
    run_dir = RunDir(run)
    run_dir.check_contained()
    info = _lenient(run_dir.run_info) or {}
    suite = _lenient(run_dir.suite)
    agg = _lenient(lambda: load_aggregates(run, missing_ok=True))
    records = _records(run_dir)
    name = info.get("suite") or (suite.name if suite else run.name)
    model = suite.model if suite else agg["model"] if agg else "?"
    n_methods = len({r.get("method") for r in records})
    header = (
        f"<h1>t2ibench report: {_esc(name)}</h1>"
        f"<p class='meta'>run <code>{_esc(run)}</code> · model {_esc(model)}"
        f" · suite hash {_esc(str(info.get('suite_hash', '?'))[:12])} · t2ibench {_esc(info.get('t2ibench', '?'))}"
        f" · {len(records)} images, {n_methods} methods · generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC</p>"
    )
    if suite and suite.description:
        header += f"<p>{_esc(suite.description)}</p>"
    if suite:
        header += f"<p class='meta'>sampler: {_esc(', '.join(f'{k}={v}' for k, v in suite.sampler.model_dump().items()))}</p>"
    plots = []
    fd = fd_plot(agg)
    if fd:
        plots.append(f"<figure>{_img_tag(fd, 'FD per tSA')}<figcaption>Fairness discrepancy per tSA and method (bars: 95 % interval).</figcaption></figure>")
    qa = quality_alignment_plot(agg, suite)
    if qa:
        plots.append(f"<figure>{_img_tag(qa, 'FD vs CLIP Score')}<figcaption>Fréchet distance vs CLIP Score per method (a guidance sweep is connected in order of w).</figcaption></figure>")
    plots_html = f"<div class='figs'>{''.join(plots)}</div>" if plots else '<p class="note">No plottable aggregates (FD per tSA, or both a Fréchet distance and CLIP Score).</p>'
    dirs = [run / "analysis", *[Path(d) for d in analysis_dirs]]
    body = (
        header
        + "<h2>Results</h2>" + results_table(agg, suite_variants(suite) if suite else {})
        + "<h2>Plots</h2>" + plots_html
        + "<h2>Samples</h2><p class='meta'>Each row: one prompt and image index, so the same seed across methods.</p>"
        + sample_grids(records, max_prompts, max_images, [m.label for m in suite.methods] if suite else [])
        + "<h2>Analysis figures</h2>" + analysis_figures(dirs, out.parent)
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>t2ibench: {_esc(name)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>"
    )


def write_report(run: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write the report of ``run`` to ``out`` (default ``RUN/results/report.html``); returns the path."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"report: {run} is not a directory; expected a run directory (the --out of `t2ibench generate`)")
    out = Path(out) if out else run / "results" / REPORT_NAME
    page = render_report(run, out, **kwargs)
    write_output_text(out, page)
    return out
