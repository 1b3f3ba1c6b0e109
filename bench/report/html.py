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
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import UserError
from ..fileio import read_user_file, write_output_text
from ..log import get_logger
from ..results.schema import column_of, has_value
from ..results.scoring import load_aggregates
from ..store import RunDir
from ..yaml_input import load_yaml
from .plots import fd_plot, guidance_sweeps, quality_alignment_plot  # noqa: F401  (guidance_sweeps: public here too)

REPORT_NAME = "report.html"
THUMB_MAX = 192  # longest side of an inlined sample image, pixels
MAX_FIGURE_SIDE = 8192  # longest side of an analysis figure the report decodes, pixels
log = get_logger(__name__)

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
def _lenient(read: Callable[[], Any], default: Any = "mapping") -> Any:
    """``read()`` if it gives a mapping, else ``default`` (an empty dict unless given), with a
    warning line for a file that exists but cannot be read."""
    try:
        data = read()
    except UserError as exc:
        log.warning(f"t2ibench report: warning: {exc}")
        data = None
    return data if isinstance(data, dict) else ({} if default == "mapping" else default)


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
        tds = "".join(f'<td class="{c}">{_esc(x)}</td>' for x, c in zip(r[1:], cls))
        body.append(f"<tr><th>{_esc(r[0])}</th>{tds}</tr>")
    return f"<div class=\"scroll\"><table><tr>{ths}</tr>{''.join(body)}</table></div>"


def _detail_table(g: Mapping[str, Any], part: list[str], methods: list[str], label: str) -> str:
    from ..results import table as T

    best: dict[str, str] = {}
    for c in part:
        vals = [(g["cells"][(m, c)]["value"], m) for m in methods if (m, c) in g["cells"] and has_value(g["cells"][(m, c)])]
        if len(vals) > 1:
            lower = any(g["cells"][(m, c)].get("lower_is_better") for _, m in vals)
            best[c] = (min(vals) if lower else max(vals))[1]
    rows, classes = [], []
    for m in methods:
        cells = [T.cell(g["cells"].get((m, c)), n=True) for c in part]
        if any(cells):
            rows.append([m] + cells)
            classes.append(["na" if not x or x.startswith("not available") else
                            ("num best" if best.get(c) == m else "num") for x, c in zip(cells, part)])
    strip = f"{label}." if label else ""
    heads = ["method"] + [_esc(c[len(strip):] if strip and c.startswith(strip) else c) + T._arrow(g, c) for c in part]
    title = f"<p class='meta'><b>{_esc(label)}</b></p>" if label else ""
    return title + _html_table(heads, rows, classes)


def suite_variants(suite: Mapping[str, Any]) -> dict[str, str]:
    """``{label: method name}`` of the suite's methods run under a label of their own (ablations)."""
    specs = [m for m in suite.get("methods", []) or [] if isinstance(m, dict) and "name" in m]
    labels = {str(m.get("label") or m["name"]) for m in specs}
    return {str(m["label"]): str(m["name"]) for m in specs
            if m.get("label") and m["label"] != m["name"] and m["name"] in labels}


def results_table(agg: Mapping[str, Any] | None, variants: Mapping[str, str] | None = None) -> str:
    """The leaderboard's layout (bench.results.table): per prompt set a headline table with the
    deltas against the reference method, then detail tables of at most 10 columns, ablations and
    variants (``variants``: ``{label: base method}``) in tables of their own."""
    from ..results import table as T

    if not agg:
        return '<p class="note">No aggregates: run <code>t2ibench score RUN</code> to fill the results table.</p>'
    infos = {k: v for k, v in (agg.get("metrics") or {}).items() if isinstance(v, dict)}
    unavailable = {k: v for k, v in infos.items() if v.get("available") is False}
    entries = []
    for r in agg.get("rows", []):
        if isinstance(r, dict) and "method" in r:
            e = {"suite": agg.get("suite", "?"), "model": agg.get("model"), "prompt_set": str(r.get("prompt_set", "?")),
                 **r, "column": column_of(r)}
            e.setdefault("metric_name", (infos.get(str(r.get("metric"))) or {}).get("name"))
            entries.append(e)
    if not entries and not unavailable:
        return '<p class="note">The aggregates file has no rows.</p>'
    reference = agg.get("reference")
    parts = []
    for (_, pset), g in sorted(T._groups({"entries": entries}).items()):
        parts.append(f"<h3>prompt set: {_esc(pset)}</h3>")
        methods = T.reference_first(g["methods"], reference)
        head = T.headline_columns(g)
        if head:
            rows = [[T.method_label(g, m)] + [T._headline_cell(g["cells"].get((m, c)), reference, m) for c in head]
                    for m in methods]
            ref_txt = f"Δ against {_esc(reference)}" if reference in methods else "no reference method"
            parts.append(f"<p class='meta'>Headline ({ref_txt}): value (Δ ✓ better / ✗ worse, 95 % paired interval excludes 0)</p>")
            parts.append(_html_table(["method"] + [_esc(T.headline_label(c)) + T._arrow(g, c) for c in head], rows))
        main, ablation = T._split_variants(methods, variants or {})
        for title, subset in (("", main), ("Ablations and variants", ablation)):
            if not subset:
                continue
            if title:
                parts.append(f"<p class='meta'><b>{title}</b> (prompt set {_esc(pset)})</p>")
            for label, cols in T._column_blocks(T._live_columns(g)):
                for part in T._chunks(cols):
                    parts.append(_detail_table(g, part, subset, label))
    if unavailable:
        items = "".join(f"<li><b>{_esc(k)}</b>: not available: {_esc(v.get('reason'))}</li>" for k, v in unavailable.items())
        parts.append(f'<p class="note">Metrics that could not run (not shown as columns):</p><ul class="note">{items}</ul>')
    parts.append('<p class="meta">value [95 % interval] (n images) Δ difference from the reference method on the '
                 'same prompts and seeds; ✓/✗ significantly better/worse; ↓ lower is better; bold = best in column.</p>')
    conv = {k: v.get("conventions") for k, v in infos.items() if v.get("conventions")}
    if conv:
        items = "".join(f"<li><b>{_esc(k)}</b>: {_esc(json.dumps(v, sort_keys=True))}</li>" for k, v in conv.items())
        parts.append(f'<details><summary class="meta">metric conventions</summary><ul class="meta">{items}</ul></details>')
    return "".join(parts)


# -- sample grids -----------------------------------------------------------------------------
def _method_order(suite: Mapping[str, Any]) -> list[str]:
    out = []
    for spec in suite.get("methods", []) or []:
        if isinstance(spec, dict) and (spec.get("label") or spec.get("name")):
            out.append(str(spec.get("label") or spec.get("name")))
    return out


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
    # the page's metadata is read leniently (a report renders for a half-made run); images are not
    info = _lenient(run_dir.run_info)
    suite = _lenient(lambda: load_yaml(read_user_file(run / "suite.yaml", what="suite file", expected="YAML", text=True),
                                       str(run / "suite.yaml"), "a suite"))
    agg = _lenient(lambda: load_aggregates(run, missing_ok=True), None)
    records = _records(run_dir)
    name = info.get("suite") or suite.get("name") or run.name
    n_methods = len({r.get("method") for r in records})
    header = (
        f"<h1>t2ibench report: {_esc(name)}</h1>"
        f"<p class='meta'>run <code>{_esc(run)}</code> · model {_esc(suite.get('model', (agg or {}).get('model', '?')))}"
        f" · suite hash {_esc(str(info.get('suite_hash', '?'))[:12])} · t2ibench {_esc(info.get('t2ibench', '?'))}"
        f" · {len(records)} images, {n_methods} methods · generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC</p>"
    )
    if suite.get("description"):
        header += f"<p>{_esc(suite['description'])}</p>"
    sampler = suite.get("sampler")
    if isinstance(sampler, dict):
        header += f"<p class='meta'>sampler: {_esc(', '.join(f'{k}={v}' for k, v in sampler.items()))}</p>"
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
        + "<h2>Results</h2>" + results_table(agg, suite_variants(suite))
        + "<h2>Plots</h2>" + plots_html
        + "<h2>Samples</h2><p class='meta'>Each row: one prompt and image index, so the same seed across methods.</p>"
        + sample_grids(records, max_prompts, max_images, _method_order(suite))
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
