"""OUT/report.html: the class at a glance, for the instructor.

One self-contained page: every chart is an SVG written into the page (drawn here, as text), so it
opens offline and runs no JavaScript. It shows

- per item, the score distribution, the finding tags and the hints most often given;
- a heatmap of submissions x items (the share of each item's points), best submissions on top;
- bar charts of the finding tags and of the diagnosis hints across the class;
- a table with one row per submission.

Student names reach the page only made safe (``text.safe_text``: no control characters, bidi
overrides or lone surrogates) and escaped (``html.escape``, in the tables and in the SVGs' text):
a submission named ``<script>`` is shown as text. The page depends on nothing but the results, so
the same grading run gives the same page byte for byte.
"""
from __future__ import annotations

import html
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .findings import CORE, STRICT, TAGS, tier
from .grading import ItemResult, Rubric, SubmissionResult, atomic_write, weak_isolation
from .text import safe_text

#: at most this many names beside the heatmap; with more submissions every k-th is labelled
MAX_LABELS = 60
#: characters of a name beside the heatmap (the table below has the whole name)
LABEL_CHARS = 28
#: findings and hints listed per item in the summary table
TOP = 3

_TIER_COLOURS = {CORE: "#c0392b", STRICT: "#e6a23c"}


def hints_of(item: ItemResult) -> tuple[str, ...]:
    """The diagnosis hint ids of an item, as the grader recorded them (``ItemResult.hints``): never
    read out of its feedback, which quotes the submission's own text."""
    return tuple(item.hints)


def render_report(results: Sequence[SubmissionResult], rubric: Rubric) -> str:
    """The HTML of the report for ``results`` graded with ``rubric``."""
    subs = sorted(results, key=lambda s: s.name)
    items = rubric.items
    if not subs:
        return _page(subs, items, rubric, dict.fromkeys(("dist", "heat", "tags", "hints"), ""))
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
    atomic_write(target, render_report(results, rubric))  # through a name no submission can take
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
#
# Drawn as SVG text here: four plain charts do not need a plotting library, and matplotlib cost
# 0.75 s per grading run (import and layout), a tenth of grading 30 submissions on 2 cores.

#: viridis at 0, 1/8, ..., 1 (its published values): a share of points, from 0 (dark) to full (yellow)
_VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
_BAR = "#3b6ea5"
_CHAR_PX = 6.2  # width of a character at the charts' 11 px font, for margins


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


_NOT_GRADED = _rgb("#d9d9d9")  # a heatmap cell that was not graded: grey


def _viridis(share: float) -> tuple[int, int, int]:
    """The colour of a share in [0, 1], interpolated between viridis' nine stops."""
    x = min(max(share, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    lo, hi, t = _rgb(_VIRIDIS[i]), _rgb(_VIRIDIS[i + 1]), x - i
    return tuple(round(a + (b - a) * t) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _png(rows: list[list[tuple[int, int, int]]]) -> str:
    """An RGB PNG of ``rows`` (one pixel per cell) as a data: URI."""
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in rows)
    head = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


class _Svg:
    """An SVG drawing: shapes and escaped text, written in the order they are added."""

    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, fill: str) -> None:
        self.parts.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
                          f'fill="{fill}"/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = "#000") -> None:
        self.parts.append(f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
                          f'stroke="{colour}" stroke-width="0.8"/>')

    def text(self, x: float, y: float, text: str, anchor: str = "start", size: float = 11,
             colour: str = "#222", rotate: float | None = None, baseline: str = "central") -> None:
        turn = f' transform="rotate({_num(rotate)} {_num(x)} {_num(y)})"' if rotate is not None else ""
        self.parts.append(f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{_num(size)}" '
                          f'fill="{colour}" dominant-baseline="{baseline}"{turn}>{html.escape(text)}</text>')

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def __str__(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(self.width)}" height="{_num(self.height)}" '
                f'viewBox="0 0 {_num(self.width)} {_num(self.height)}" font-family="sans-serif">'
                + "".join(self.parts) + "</svg>")


def _ticks(top: int, most: int = 4) -> list[int]:
    """Whole-number ticks from 0 to at least ``top``, 1-2-5 spaced, at most ``most`` steps."""
    top, step, k = max(top, 1), 1, 0
    while math.ceil(top / step) > most:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return list(range(0, math.ceil(top / step) * step + 1, step))


def _distribution_svg(subs: Sequence[SubmissionResult], items: Sequence[str]) -> str:
    """Small multiples: per item, how many submissions earned each tenth of its points."""
    cols = min(4, len(items))
    rows = math.ceil(len(items) / cols)
    left, pw, ph, gap_x, top_pad, gap_y = 56.0, 160.0, 78.0, 22.0, 22.0, 40.0
    counts: dict[str, list[int]] = {}
    ungraded: dict[str, int] = {}
    for name in items:
        shares = [_share(_by_name(s).get(name)) for s in subs]
        bins = [0] * 10
        for x in shares:
            if not math.isnan(x):
                bins[min(9, math.floor(x * 10 + 1e-9))] += 1  # the last bin holds full marks too
        counts[name], ungraded[name] = bins, sum(math.isnan(x) for x in shares)
    ticks = _ticks(max((max(b) for b in counts.values()), default=1))
    ymax = ticks[-1]
    svg = _Svg(left + cols * pw + (cols - 1) * gap_x + 12, rows * (top_pad + ph + gap_y))
    for k, name in enumerate(items):
        r, c = divmod(k, cols)
        x0, y0 = left + c * (pw + gap_x), r * (top_pad + ph + gap_y) + top_pad
        svg.text(x0 + pw / 2, y0 - 11, name, anchor="middle")
        for i, n in enumerate(counts[name]):
            if n:
                h = ph * n / ymax
                svg.rect(x0 + i * pw / 10 + 0.5, y0 + ph - h, pw / 10 - 1, h, _BAR)
        svg.line(x0, y0 + ph, x0 + pw, y0 + ph)
        svg.line(x0, y0, x0, y0 + ph)
        for frac, label in ((0, "0"), (0.5, "½"), (1, "full")):
            svg.line(x0 + frac * pw, y0 + ph, x0 + frac * pw, y0 + ph + 3)
            svg.text(x0 + frac * pw, y0 + ph + 12, label, anchor="middle", size=10)
        for t in ticks:
            y = y0 + ph - ph * t / ymax
            svg.line(x0 - 3, y, x0, y)
            if c == 0:
                svg.text(x0 - 5, y, str(t), anchor="end", size=10)
        if c == 0:
            svg.text(14, y0 + ph / 2, "submissions", anchor="middle", rotate=-90)
        if ungraded[name]:
            svg.text(x0 + 4, y0 + 6, f"{ungraded[name]} not graded", size=9, colour="#666")
    return str(svg)


def _heatmap_svg(subs: Sequence[SubmissionResult], items: Sequence[str]) -> str:
    """Submissions x items, coloured by the share of the item's points; best submissions on top."""
    order = sorted(subs, key=lambda s: (-_total_share(s), s.name))
    n = len(order)
    # one readable row per submission up to MAX_LABELS; beyond that the rows thin, the page stays bounded
    step = max(1, math.ceil(n / MAX_LABELS))
    ticks = list(range(0, n, step))
    labels = [_label(order[i].name) for i in ticks]
    left = 12 + _CHAR_PX * max(len(t) for t in labels) + (16 if step > 1 else 0)
    # at least the colour bar's label in height (two lines of some 26 characters): a class of five
    # cut it off
    cell_w, plot_h = 44.0, max(14.0 * min(n, MAX_LABELS), 160.0)
    row_h = plot_h / n
    bottom = 12 + _CHAR_PX * 0.75 * max(len(i) for i in items)
    plot_w = cell_w * len(items)
    svg = _Svg(left + plot_w + 120, 10 + plot_h + bottom)
    grid = [[_NOT_GRADED if math.isnan(x := _share(_by_name(s).get(name))) else _viridis(x) for name in items]
            for s in order]
    svg.raw(f'<image x="{_num(left)}" y="10" width="{_num(plot_w)}" height="{_num(plot_h)}" '
            f'preserveAspectRatio="none" style="image-rendering:pixelated" href="{_png(grid)}"/>')
    size = 9 if n > 30 else 10
    for i, label in zip(ticks, labels):
        svg.text(left - 4, 10 + (i + 0.5) * row_h, label, anchor="end", size=size)
    for j, name in enumerate(items):
        x = left + (j + 0.5) * cell_w
        svg.text(x + 3, 10 + plot_h + 8, name, anchor="end", size=10, rotate=-40, baseline="hanging")
    if step > 1:
        svg.text(10, 10 + plot_h / 2, f"{n} submissions, best first (every {step}th named)", anchor="middle",
                 rotate=-90, size=10)
    # the colour bar, from 0 (bottom) to full (top)
    bx, bh = left + plot_w + 18, min(plot_h, 200.0)
    by = 10 + (plot_h - bh) / 2
    stops = "".join(f'<stop offset="{k / (len(_VIRIDIS) - 1):.3f}" stop-color="{c}"/>'
                    for k, c in enumerate(reversed(_VIRIDIS)))
    svg.raw(f'<defs><linearGradient id="gradprop-share" x1="0" y1="0" x2="0" y2="1">{stops}</linearGradient></defs>')
    svg.rect(bx, by, 12, bh, "url(#gradprop-share)")
    for k in range(6):
        y = by + bh - bh * k / 5
        svg.line(bx + 12, y, bx + 15, y)
        svg.text(bx + 18, y, f"{k / 5:.1f}", size=10)
    svg.text(bx + 48, by + bh / 2, "share of the item's points", anchor="middle", size=10, rotate=-90)
    svg.text(bx + 62, by + bh / 2, "(grey: not graded)", anchor="middle", size=10, rotate=-90)
    return str(svg)



def _bars_svg(counts: Counter, xlabel: str, colors: dict[str, str] | None = None,
              legend: dict[str, str] | None = None) -> str:
    """Horizontal bars, most common on top, coloured by ``colors[key]`` with ``legend[colour]``
    saying what a colour means; '' when there is nothing to count."""
    ranked = _ranked(counts)
    if not ranked:
        return ""
    shown = [(colors or {}).get(k, _BAR) for k, _ in ranked]
    keys = [c for c in (legend or {}) if c in shown]
    left = 12 + _CHAR_PX * max(len(k) for k, _ in ranked)
    bar_h, plot_w = 20.0, 300.0
    plot_h = bar_h * len(ranked)
    top = 8 + 16 * len(keys)
    svg = _Svg(left + plot_w + 40, top + plot_h + 40)
    for k, colour in enumerate(keys):
        svg.rect(left, 4 + 16 * k, 10, 10, colour)
        svg.text(left + 15, 9 + 16 * k, (legend or {})[colour], size=10)
    ticks = _ticks(ranked[0][1], 5)
    xmax = ticks[-1]
    for i, ((label, value), colour) in enumerate(zip(ranked, shown)):
        y = top + i * bar_h
        w = plot_w * value / xmax
        svg.rect(left, y + 2, w, bar_h - 4, colour)
        svg.text(left - 4, y + bar_h / 2, label, anchor="end")
        svg.text(left + w, y + bar_h / 2, f" {value}", size=10)
    svg.line(left, top, left, top + plot_h)
    svg.line(left, top + plot_h, left + plot_w, top + plot_h)
    for t in ticks:
        x = left + plot_w * t / xmax
        svg.line(x, top + plot_h, x, top + plot_h + 3)
        svg.text(x, top + plot_h + 12, str(t), anchor="middle", size=10)
    svg.text(left + plot_w / 2, top + plot_h + 30, xlabel, anchor="middle", size=10)
    return str(svg)


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
.weak { background: #fde8e8; border-left: 4px solid #c0392b; padding: 0.5em 1em; }
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
        *(f'<p class="weak"><strong>Weakly isolated</strong> (--isolation weak): {e(text)}.</p>'
          for text in dict.fromkeys(w for w in map(weak_isolation, subs) if w)),
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
