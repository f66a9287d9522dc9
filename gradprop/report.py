"""OUT/report.html: the class at a glance, for the instructor.

One self-contained page: every chart is an SVG drawn by matplotlib and written into the page, so it
opens offline and runs no JavaScript. It shows

- per item, the score distribution, the finding tags and the hints most often given;
- a heatmap of submissions x items (the share of each item's points), best submissions on top;
- bar charts of the finding tags and of the diagnosis hints across the class;
- a table with one row per submission.

Student names reach the page only made safe (``text.safe_text``: no control characters, bidi
overrides or lone surrogates) and escaped (``html.escape`` here, matplotlib's XML writer inside
the SVGs): a submission named ``<script>`` is shown as text. The page depends on nothing but the
results, so the same grading run gives the same page byte for byte.
"""
from __future__ import annotations

import functools
import html
import io
import math
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .findings import CORE, STRICT, TAGS, tier
from .grading import ItemResult, Rubric, SubmissionResult
from .text import safe_text

#: at most this many names beside the heatmap; with more submissions every k-th is labelled
MAX_LABELS = 60
#: characters of a name beside the heatmap (the table below has the whole name)
LABEL_CHARS = 28
#: findings and hints listed per item in the summary table
TOP = 3

_TIER_COLOURS = {CORE: "#c0392b", STRICT: "#e6a23c"}

#: matplotlib settings that make the SVGs deterministic and safe for untrusted text: no date in
#: the metadata, ids from a fixed salt, text left to the browser's fonts (Hangul and kana names
#: render; DejaVu Sans has neither), and `$` in a name not read as mathtext
_RC = {"svg.fonttype": "none", "svg.hashsalt": "gradprop-report", "text.parse_math": False,
       "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def hints_of(item: ItemResult) -> tuple[str, ...]:
    """The diagnosis hint ids of an item: its ``hints`` when the grader records them, else the ids
    the diagnosis module finds in its feedback, else ()."""
    hints = getattr(item, "hints", None)
    return tuple(hints) if hints is not None else _hints_in_feedback(item.output)


@functools.lru_cache(maxsize=1024)  # asked per chart and per table; parsing the feedback is not free
def _hints_in_feedback(output: str) -> tuple[str, ...]:
    try:
        from .properties.diagnosis import HINTS, hints_in
    except ImportError:  # a grader without diagnosis
        return ()
    # known ids only: the feedback quotes the submission's own exception messages, which may say anything
    return tuple(h for h in dict.fromkeys(hints_in(output)) if h in HINTS)


def render_report(results: Sequence[SubmissionResult], rubric: Rubric) -> str:
    """The HTML of the report for ``results`` graded with ``rubric``."""
    from matplotlib import rc_context

    subs = sorted(results, key=lambda s: s.name)
    items = rubric.items
    if not subs:
        return _page(subs, items, rubric, dict.fromkeys(("dist", "heat", "tags", "hints"), ""))
    with rc_context(_RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Glyph missing": the browser draws those names
        charts = {
            "dist": _distribution_svg(subs, items),
            "heat": _heatmap_svg(subs, items),
            "tags": _bars_svg(_tag_counts(subs), "submission x item pairs with this finding",
                              {t: _TIER_COLOURS[tier(t)] for t in TAGS},
                              {_TIER_COLOURS[CORE]: "core: costs marks", _TIER_COLOURS[STRICT]: "strict: a warning"}),
            "hints": _bars_svg(_hint_counts(subs), "submission x item pairs given this hint"),
        }
    return _page(subs, items, rubric, charts)


def write_report(results: Sequence[SubmissionResult], rubric: Rubric, out_dir: str | os.PathLike) -> Path:
    """OUT/report.html."""
    target = Path(out_dir) / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render_report(results, rubric), encoding="utf-8")
    os.replace(tmp, target)
    return target


# --- numbers ---------------------------------------------------------------------------------------


def _share(item: ItemResult | None) -> float:
    """The share of the item's points earned; NaN when it was not graded."""
    if item is None or item.error or item.max_score == 0:
        return math.nan
    return float(item.score / item.max_score)


def _by_name(sub: SubmissionResult) -> dict[str, ItemResult]:
    return {r.name: r for r in sub.items}


def _tag_counts(subs: Sequence[SubmissionResult]) -> Counter:
    return Counter(t for s in subs for r in s.items for t in r.tags)


def _hint_counts(subs: Sequence[SubmissionResult]) -> Counter:
    return Counter(h for s in subs for r in s.items for h in hints_of(r))


def _ranked(counts: Counter) -> list[tuple[str, int]]:
    """Most common first, ties by name (Counter.most_common keeps insertion order for ties)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _points(x: Any) -> str:
    return f"{float(x):.2f}"


# --- charts ----------------------------------------------------------------------------------------


def _svg(fig) -> str:
    """The figure as an <svg> element to put in the page (no XML prolog, no metadata). Each figure
    lays itself out to fit its size, so no tight bounding box (it would draw the figure twice)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


def _distribution_svg(subs: Sequence[SubmissionResult], items: Sequence[str]) -> str:
    """Small multiples: per item, how many submissions earned each tenth of its points."""
    from matplotlib.figure import Figure

    cols = min(4, len(items))
    rows = math.ceil(len(items) / cols)
    width, height = 2.6 * cols, 1.9 * rows
    fig = Figure(figsize=(width, height))
    # fixed margins, in inches: a constrained layout of 13 small axes costs a second per report,
    # and a tight bounding box draws the figure twice
    margins = {"left": 0.6 / width, "right": 1 - 0.1 / width, "bottom": 0.35 / height, "top": 1 - 0.3 / height}
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True,
                        gridspec_kw={"hspace": 0.55, "wspace": 0.12, **margins})
    bins = [i / 10 for i in range(11)]
    for ax, name in zip(axes.flat, items):
        shares = [_share(_by_name(s).get(name)) for s in subs]
        graded = [x for x in shares if not math.isnan(x)]
        ax.hist(graded, bins=bins, color="#3b6ea5", edgecolor="white")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ["0", "½", "full"])
        if len(graded) < len(shares):
            ax.text(0.02, 0.95, f"{len(shares) - len(graded)} not graded", transform=ax.transAxes,
                    va="top", fontsize=7, color="#666")
    for ax in list(axes.flat)[len(items):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("submissions")
    return _svg(fig)


def _heatmap_svg(subs: Sequence[SubmissionResult], items: Sequence[str]) -> str:
    """Submissions x items, coloured by the share of the item's points; best submissions on top."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    order = sorted(subs, key=lambda s: (-_total_share(s), s.name))
    grid = np.array([[_share(_by_name(s).get(name)) for name in items] for s in order], dtype=float)
    grid = grid.reshape(len(order), len(items))
    n = len(order)
    # one readable row per submission up to MAX_LABELS; beyond that the rows thin, the page stays bounded
    fig = Figure(figsize=(1.6 + 0.55 * len(items), 1.4 + 0.17 * min(max(n, 3), MAX_LABELS)), layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto",
                      interpolation="nearest")
    step = max(1, math.ceil(n / MAX_LABELS))
    ticks = list(range(0, n, step))
    ax.set_yticks(ticks, [_label(order[i].name) for i in ticks], fontsize=7 if n > 30 else 8)
    ax.set_xticks(range(len(items)), items, rotation=40, ha="right")
    ax.tick_params(length=0)
    if step > 1:
        ax.set_ylabel(f"{n} submissions, best first (every {step}th named)")
    bar = fig.colorbar(image, ax=ax, shrink=0.6 if n > 10 else 0.9)
    bar.set_label("share of the item's points (grey: not graded)")
    return _svg(fig)


def _bars_svg(counts: Counter, xlabel: str, colors: dict[str, str] | None = None,
              legend: dict[str, str] | None = None) -> str:
    """Horizontal bars, most common on top, coloured by ``colors[key]`` with ``legend[colour]``
    saying what a colour means; '' when there is nothing to count."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ranked = _ranked(counts)
    if not ranked:
        return ""
    fig = Figure(figsize=(5.2, 1.1 + 0.26 * len(ranked)), layout="constrained")
    ax = fig.add_subplot()
    labels, values = zip(*reversed(ranked))
    shown = [(colors or {}).get(k, "#3b6ea5") for k in labels]
    ax.barh(range(len(ranked)), values, color=shown)
    ax.set_yticks(range(len(ranked)), labels)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if legend:
        ax.legend(handles=[Patch(color=c, label=text) for c, text in legend.items() if c in shown],
                  loc="lower right", frameon=False)
    return _svg(fig)


def _total_share(sub: SubmissionResult) -> float:
    graded = [r for r in sub.items if not r.error]
    total = sum((r.max_score for r in graded), 0)
    return float(sum((r.score for r in graded), 0) / total) if total else -1.0


def _label(name: str) -> str:
    name = safe_text(name)
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"


# --- the page --------------------------------------------------------------------------------------


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.zero { color: #b03a2e; } td.full { color: #1e7b34; } td.ungraded { color: #888; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5em; } h3 { font-size: 1em; margin: 0.5em 0 0; }
figure { margin: 0.5em 0; } figure svg { max-width: 100%; height: auto; }
code { font-size: 12px; } .muted { color: #666; }
"""


def _page(subs: Sequence[SubmissionResult], items: Sequence[str], rubric: Rubric, charts: dict[str, str]) -> str:
    e = html.escape
    graded = [s for s in subs if not s.errors]
    mean = (sum(float(s.score) for s in graded) / len(graded)) if graded else math.nan
    max_score = _points(subs[0].max_score) if subs else "0.00"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # nothing may be fetched: no scripts, styles, fonts or images from anywhere but this page
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; img-src data:">',
        "<title>gradprop: the class at a glance</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>gradprop: the class at a glance</h1>",
        f'<p>{len(subs)} submissions, {len(graded)} fully graded; mean score {_points(mean) if graded else "–"} '
        f"of {e(max_score)}; rubric: {e(rubric.source)}.</p>",
        "<h2>Items</h2>",
        _item_table(subs, items),
        "<h2>Submissions × items</h2>",
        f"<figure>{charts['heat']}</figure>",
        "<h2>Findings and hints across the class</h2>",
        '<div class="pair"><div><h3>Findings</h3>',
        f"<figure>{charts['tags']}</figure>" if charts["tags"] else "<p>No findings: every check held.</p>",
        "</div><div><h3>Hints</h3>",
        (f"<figure>{charts['hints']}</figure>" if charts["hints"]
         else '<p class="muted">No diagnosis hints in these results.</p>'),
        "</div></div>",
        _hint_legend(_hint_counts(subs)),
        "<h2>Score distribution per item</h2>",
        f"<figure>{charts['dist']}</figure>",
        "<h2>Every submission</h2>",
        _submission_table(subs, items),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _item_table(subs: Sequence[SubmissionResult], items: Sequence[str]) -> str:
    e = html.escape
    rows = ["<table><thead><tr><th>item</th><th>max</th><th>mean</th><th>full marks</th><th>zero</th>"
            "<th>not graded</th><th>most common findings</th><th>most common hints</th></tr></thead><tbody>"]
    for name in items:
        results = [r for s in subs if (r := _by_name(s).get(name)) is not None]
        graded = [r for r in results if not r.error]
        top_tags = _ranked(Counter(t for r in results for t in r.tags))[:TOP]
        top_hints = _ranked(Counter(h for r in results for h in hints_of(r)))[:TOP]
        mean = _points(sum(float(r.score) for r in graded) / len(graded)) if graded else "–"
        rows.append(
            f"<tr><td>{e(name)}</td><td class=num>{_points(results[0].max_score) if results else '–'}</td>"
            f"<td class=num>{mean}</td>"
            f"<td class=num>{sum(r.score == r.max_score for r in graded)}</td>"
            f"<td class=num>{sum(r.score == 0 for r in graded)}</td>"
            f"<td class=num>{len(results) - len(graded)}</td>"
            f"<td>{_counted(top_tags)}</td><td>{_counted(top_hints)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _counted(ranked: list[tuple[str, int]]) -> str:
    return ", ".join(f"<code>{html.escape(k)}</code> ({v})" for k, v in ranked) or '<span class="muted">–</span>'


def _hint_legend(counts: Counter) -> str:
    """What each hint says, when the diagnosis module that wrote them is installed."""
    try:
        from .properties.diagnosis import HINTS
    except ImportError:
        return ""
    rows = [f"<tr><td><code>{html.escape(h)}</code></td><td>{html.escape(_sentence(str(HINTS[h])))}</td></tr>"
            for h, _ in _ranked(counts) if h in HINTS]
    return f"<table><tbody>{''.join(rows)}</tbody></table>" if rows else ""


class _AnyValue(dict):
    def __missing__(self, key: str) -> str:
        return {"name": "the value", "other": "another value"}.get(key, "…")


def _sentence(template: str) -> str:
    """A hint's sentence about any value: it names the student's value ({name}) when graded."""
    try:
        return template.format_map(_AnyValue())
    except (ValueError, IndexError):  # braces that are not fields
        return template


def _submission_table(subs: Sequence[SubmissionResult], items: Sequence[str]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(n)}</th>" for n in items)
    rows = [f'<table id="submissions"><thead><tr><th>submission</th><th>score</th>{head}<th>findings</th>'
            "</tr></thead><tbody>"]
    for s in subs:
        by_name = _by_name(s)
        cells = "".join(_score_cell(by_name.get(n)) for n in items)
        tags = sorted({t for r in s.items for t in r.tags}, key=list(TAGS).index)
        score = "–" if s.errors else _points(s.score)
        rows.append(f"<tr><td>{e(safe_text(s.name))}</td><td class=num>{score}</td>{cells}"
                    f"<td>{' '.join(f'<code>{e(t)}</code>' for t in tags)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _score_cell(r: ItemResult | None) -> str:
    if r is None or r.error:
        return '<td class="num ungraded">–</td>'
    kind = " full" if r.score == r.max_score else " zero" if r.score == 0 else ""
    return f'<td class="num{kind}">{_points(r.score)}</td>'
