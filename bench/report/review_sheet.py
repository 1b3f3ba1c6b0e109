"""The review sheet: one self-contained HTML page (``t2ibench review RUN --metric vqa_alignment``).

One table row per (image, question): the image (embedded as a ``data:`` URI, at most
``THUMB_SIDE`` pixels a side), the prompt, the question, its category, the expected answer, the
judge's answer and verdict, and two radio buttons (correct / wrong) for the person. "Export
verdicts" downloads the rows as CSV (``bench.report.review.COLUMNS``, ``human`` filled) for
``t2ibench review RUN --import FILE``. Every text is HTML-escaped (prompts come from files anyone
may write); the row data is embedded as JSON with ``<``, ``>`` and ``&`` escaped; a
Content-Security-Policy allows only the page's own script and style (by hash) and ``data:``
images, so the page opens from ``file://`` without a server and fetches nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import astuple
from html import escape
from itertools import groupby
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .review import ImageRecord, ReviewRow, Sheet

THUMB_SIDE = 512

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; vertical-align: top; text-align: left; }
thead th { position: sticky; top: 0; background: #f4f4f4; }
td.image img { width: 192px; image-rendering: pixelated; display: block; }
td.image { font-size: 0.8em; color: #666; }
td.prompt { max-width: 18em; }
td.verdict { white-space: nowrap; }
tr.first td { border-top: 2px solid #888; }
.judge-correct { color: #176317; } .judge-wrong { color: #a11; }
tr.reviewed td.verdict { background: #eef6ee; }
#bar { position: sticky; top: 0; background: #fff; padding: 0.5em 0; z-index: 1; }
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("rows-data").textContent);
  var cols = data.columns, rows = data.rows, human = cols.indexOf("human");
  function verdict(i) {
    var c = document.querySelector('input[name="v' + i + '"]:checked');
    return c ? c.value : "";
  }
  function update() {
    var n = 0;
    for (var i = 0; i < rows.length; i++) {
      var v = verdict(i);
      if (v) { n++; }
      document.getElementById("r" + i).classList.toggle("reviewed", v !== "");
    }
    document.getElementById("progress").textContent = n + " of " + rows.length + " rows reviewed";
  }
  function cell(v) {
    v = String(v);
    if (/^[=+\\-@\\t\\r]/.test(v)) { v = "'" + v; }
    return '"' + v.replace(/"/g, '""') + '"';
  }
  document.getElementById("rows").addEventListener("change", update);
  document.getElementById("export").addEventListener("click", function () {
    var lines = [cols.join(",")];
    rows.forEach(function (r, i) {
      var out = r.slice();
      out[human] = verdict(i);
      lines.push(out.map(cell).join(","));
    });
    var blob = new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"});
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = data.filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
  });
  update();
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def image_data_uri(rec: ImageRecord) -> str:
    """The image as a ``data:`` URI: its PNG bytes, or a JPEG at most ``THUMB_SIDE`` a side when larger."""
    im = rec.load_image()
    if max(im.size) <= THUMB_SIDE:
        return "data:image/png;base64," + base64.b64encode(rec.png_path.read_bytes()).decode()
    im.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _json_for_script(obj: object) -> str:
    """JSON that cannot close its ``<script>`` element or open a comment in it."""
    return json.dumps(obj, ensure_ascii=False).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _radio(i: int, value: str, current: str) -> str:
    checked = " checked" if value == current else ""
    return f'<label><input type="radio" name="v{i}" value="{value}"{checked}> {value}</label>'


def _table_rows(sheet: Sheet) -> list[str]:
    out: list[str] = []
    i = 0
    for key, group in groupby(sheet.rows, key=lambda r: r.image):
        rows: list[ReviewRow] = list(group)
        for j, r in enumerate(rows):
            head, first = "", ""
            if j == 0:
                first = ' class="first"'
                head = (f'<td class="image" rowspan="{len(rows)}"><img src="{image_data_uri(sheet.images[key])}" '
                        f'alt="{escape(key)}">{escape(key)}</td><td class="prompt" rowspan="{len(rows)}">{escape(r.prompt)}</td>')
            out.append(f'<tr id="r{i}"{first} title="{escape(r.id)}">{head}<td>{escape(r.question)}</td><td>{escape(r.category)}</td>'
                       f'<td>{escape(r.expected)}</td><td>{escape(r.answer)}</td>'
                       f'<td class="judge-{escape(r.judge)}">{escape(r.judge)}</td>'
                       f'<td class="verdict">{_radio(i, "correct", r.human)} {_radio(i, "wrong", r.human)}</td></tr>')
            i += 1
    return out


def render_sheet(sheet: Sheet) -> str:
    """The sheet's HTML (rows in ``sheet.rows`` order, grouped by image)."""
    from .review import COLUMNS

    data = {"columns": list(COLUMNS), "rows": [list(astuple(r)) for r in sheet.rows],
            "filename": f"review-{sheet.label}-{sheet.config_hash}.csv"}
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
           "base-uri 'none'; form-action 'none'")
    run = escape(str(sheet.run.path))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        f"<title>t2ibench review: {escape(sheet.label)}</title>", f"<style>{STYLE}</style></head><body>",
        f"<h1>Review of <code>{escape(sheet.label)}</code></h1>",
        f"<p>Run <code>{run}</code>, score configuration <code>{escape(sheet.config_hash)}</code>. For each question, "
        "look at the image and mark <b>correct</b> when the image shows what the question expects (the expected "
        "answer is the true one), <b>wrong</b> otherwise; the judge's answer and verdict are shown for reference. "
        "Rows left unmarked are not reviewed. Then export the verdicts and run "
        f"<code>t2ibench review {run} --import FILE</code>.</p>",
        '<div id="bar"><button id="export" type="button">Export verdicts (CSV)</button> <span id="progress"></span></div>',
        '<table id="rows"><thead><tr><th>image</th><th>prompt</th><th>question</th><th>category</th><th>expected</th>'
        "<th>judge's answer</th><th>judge</th><th>your verdict</th></tr></thead><tbody>",
        *_table_rows(sheet),
        "</tbody></table>",
        f'<script id="rows-data" type="application/json">{_json_for_script(data)}</script>',
        f"<script>{SCRIPT}</script>",
        "</body></html>", ""])
