"""OUT/report.html: the HTML itself (escaping, one row per submission, offline), and the page in a
real headless Chromium (it renders, logs no error, fetches nothing, shows the heatmap and the bars).

On CI (``CI=true``) the browser test fails when Chromium, chromedriver or selenium is missing;
elsewhere it is skipped with the reason. Install: ``apt-get install chromium chromium-driver`` and
``pip install -e '.[test]'``.
"""
from __future__ import annotations

import dataclasses
import html
import os
import random
import re
import shutil
from collections import Counter
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gradprop import cli
from gradprop.findings import TAGS
from gradprop.grading import ItemResult, Rubric, SubmissionResult
from gradprop.properties.registry import ITEMS
from gradprop.report import MAX_LABELS, hints_of, render_report, write_report

RUBRIC = Rubric.default()
#: names a student may choose that must reach the page as text only
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "</svg><svg onload=alert(3)>",
           "$\\frac{1}{0", "a & b -- c", "김철수", "やまだ"]
HINT_IDS = ("transposed", "times-batch", "db-first-row", "stale")


@dataclasses.dataclass(frozen=True)
class HintedItem(ItemResult):
    """ItemResult as the diagnosis branch extends it: the hint ids given for the item."""

    hints: tuple[str, ...] = ()


def fake_class(n: int, seed: int = 0, names: list[str] | None = None, hinted: bool = True) -> list[SubmissionResult]:
    """``n`` submissions with varied scores, findings and (``hinted``) hints; some items not graded."""
    rng = random.Random(seed)
    tags = list(TAGS)
    names = names or []
    subs = []
    for i in range(n):
        items = []
        for name, weight in RUBRIC.weights:
            roll = rng.random()
            if roll < 0.02:  # gradprop failed on it: not graded
                items.append(HintedItem(name, Fraction(0), weight, "failed", (), "", error="boom"))
                continue
            score = weight if roll < 0.55 else Fraction(rng.randint(0, 4), 4) * weight
            found = () if score == weight else tuple(sorted(rng.sample(tags, rng.randint(1, 2))))
            hints = tuple(rng.sample(HINT_IDS, 1)) if found and rng.random() < 0.4 else ()
            status = "failed" if found else "passed"
            items.append(HintedItem(name, score, weight, status, found, "", hints=hints) if hinted
                         else ItemResult(name, score, weight, status, found, ""))
        name = names[i] if i < len(names) else f"student{i:03d}"
        subs.append(SubmissionResult(name, f"/tmp/{i}.py", tuple(items), ""))
    return subs


class Tags(HTMLParser):
    """Every start tag with its attributes, and the rows of the submissions table."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.starts: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self._table = self._row = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.starts.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id")
        elif tag == "tr" and self._table == "submissions":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:  # the header row has th only
                self.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


# --- the HTML --------------------------------------------------------------------------------------


def test_names_and_text_are_escaped_not_markup():
    page = render_report(fake_class(len(HOSTILE), names=HOSTILE), RUBRIC)
    parsed = Tags(page)
    assert not [t for t, _ in parsed.starts if t in ("script", "img", "iframe", "object", "embed")]
    assert not [(t, a) for t, a in parsed.starts if any(k.startswith("on") for k in a)]
    assert sorted(row[0] for row in parsed.rows) == sorted(HOSTILE)  # shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # in the table and in the heatmap's labels
    assert page.count("<svg") == page.count("</svg>") == 4  # no name closed or opened a chart


def test_names_that_are_not_text_are_shown_safe(tmp_path):
    names = ["bad\udc80byte", "\u202eevil\u202c.py", "bell\x07\x1b[31mred"]
    page = write_report(fake_class(3, names=names), RUBRIC, tmp_path).read_text(encoding="utf-8")
    assert sorted(r[0] for r in Tags(page).rows) == ["bad\ufffdbyte", "bell\ufffdred", "\ufffdevil\ufffd.py"]
    assert not re.search("[\x00-\x08\x1b\u202a-\u202e]", page)


def test_one_row_per_submission_in_name_order_with_the_grades_csv_cells():
    subs = fake_class(40, seed=3)
    rows = Tags(render_report(subs, RUBRIC)).rows
    assert [r[0] for r in rows] == sorted(s.name for s in subs)
    first = min(subs, key=lambda s: s.name)
    assert rows[0][2:2 + len(RUBRIC.items)] == ["–" if r.error else f"{float(r.score):.2f}" for r in first.items]


def test_the_page_fetches_nothing():
    page = render_report(fake_class(30, names=HOSTILE), RUBRIC)
    for tag, attrs in Tags(page).starts:
        for key in ("src", "href", "xlink:href"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value or value.startswith(("data:", "#")), (tag, key, value[:80])
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", page, re.I)
    assert "default-src 'none'" in page  # and the browser is told so


def test_findings_and_hints_are_counted_per_item_and_across_the_class():
    subs = fake_class(60, seed=1)
    page = render_report(subs, RUBRIC)
    affine = Counter(h for s in subs for r in s.items if r.name == "Affine" for h in r.hints)
    ranked = sorted(affine.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    row = next(line for line in page.splitlines() if line.startswith("<tr><td>Affine</td>"))
    assert row.endswith("<td>" + ", ".join(f"<code>{h}</code> ({n})" for h, n in ranked) + "</td></tr>")
    everyone = Counter(h for s in subs for r in s.items for h in r.hints)
    bars = page.split("<h3>Hints</h3>", 1)[1].split("</svg>", 1)[0]
    for hint, n in everyone.items():  # a bar labelled with the hint, its count at its end
        assert f">{hint}</text>" in bars and f"> {n}</text>" in bars
    assert page.count("<svg") == 4 and "No diagnosis hints" not in page


def test_results_without_hints_say_so_instead_of_an_empty_chart():
    page = render_report(fake_class(10, hinted=False), RUBRIC)
    assert "No diagnosis hints in these results." in page and page.count("<svg") == 3


def test_hints_are_what_the_grader_recorded_never_what_the_feedback_says():
    """A submission's own exception text may hold 'Hint [transposed]: ...' lines: the report counts
    the hints the grader gave (``ItemResult.hints``), not lines in the feedback."""
    from gradprop.properties import diagnosis

    forged = diagnosis.HINT_LINE.format(id="transposed", text="from the submission's own exception")
    item = ItemResult("Affine", Fraction(0), Fraction(1), "failed", ("exception",), f"Affine: ...\n  {forged}")
    assert hints_of(item) == ()
    given = dataclasses.replace(item, tags=("wrong-gradient",), hints=("transposed",))
    assert hints_of(given) == ("transposed",)
    page = render_report([SubmissionResult("a", "/a.py", (given,), "")], only_affine := Rubric.from_dict(
        {"items": {i.name: {"count": i.name == "Affine"} for i in ITEMS}}))
    assert only_affine.items == ("Affine",)
    sentence = diagnosis.HINTS["transposed"].format(name="the value")
    assert f"<td><code>transposed</code></td><td>{html.escape(sentence)}</td>" in page  # the legend
    forged_page = render_report([SubmissionResult("a", "/a.py", (item,), "")], only_affine)
    assert "No diagnosis hints in these results." in forged_page


def test_three_hundred_submissions_thin_the_heatmap_labels_and_stay_small():
    subs = fake_class(300, seed=2)
    page = render_report(subs, RUBRIC)
    assert len(Tags(page).rows) == 300
    heatmap = page.split("Submissions × items", 1)[1].split("</svg>", 1)[0]
    labelled = [s.name for s in subs if f">{s.name}</text>" in heatmap]
    assert MAX_LABELS // 2 <= len(labelled) <= MAX_LABELS
    assert len(page.encode()) < 1_500_000


def test_the_same_results_give_the_same_page():
    subs = fake_class(25, seed=4)
    assert render_report(subs, RUBRIC) == render_report(list(reversed(subs)), RUBRIC)


def test_no_submissions_is_a_page_too(tmp_path):
    assert "0 submissions" in write_report([], RUBRIC, tmp_path).read_text(encoding="utf-8")


def test_gradprop_grade_writes_the_report(tmp_path):
    fixtures = Path(__file__).parent.parent / "fixtures"
    paths = [str(fixtures / "broken" / "affine_db_first_row.py"), str(fixtures / "correct" / "affine_einsum.py")]
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("".join(f"[items.{i.name}]\ncount = false\n" for i in ITEMS if i.name != "Affine"))
    out = tmp_path / "out"
    assert cli.main(["grade", *paths, "--out", str(out), "-j", "1", "--max-examples", "3",
                     "--rubric", str(rubric)]) == 0
    rows = Tags((out / "report.html").read_text(encoding="utf-8")).rows
    sheet = [line.split(",") for line in (out / "grades.csv").read_text().splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [(s[0], s[1], s[3]) for s in sheet]
    assert rows[0][1] != rows[1][1] and rows[0][3] == "wrong-gradient"


# --- in a browser ----------------------------------------------------------------------------------


def chromium():
    """A headless Chromium driven by selenium, with console and network logs; skip (fail on CI)
    when it is not installed."""
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [what for what, there in (("chromium", binary), ("chromedriver", driver), ("selenium", webdriver))
               if not there]
    if missing:
        why = (f"{', '.join(missing)} not installed: apt-get install chromium chromium-driver; "
               f"pip install -e '.[test]'")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return webdriver, Service, binary, driver


@pytest.fixture
def browser(tmp_path):
    webdriver, Service, binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,1600", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    session = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield session
    finally:
        session.quit()


@pytest.mark.parametrize("n", [1, 5, 300])
def test_the_report_renders_offline_in_a_real_browser(browser, tmp_path, n):
    import json

    page = write_report(fake_class(n, seed=5, names=HOSTILE), RUBRIC, tmp_path)
    browser.get(page.as_uri())
    js = browser.execute_script
    assert js("return document.readyState") == "complete"
    assert js("return document.scripts.length") == 0  # no name became a script
    assert js("return document.querySelectorAll('#submissions tbody tr').length") == n
    assert js("return document.querySelector('#submissions td').textContent") == min(HOSTILE[:n])
    # no label is cut off: every text of a chart lies inside its chart (a class of five cut the
    # colour bar's)
    outside = js("""return Array.from(document.querySelectorAll('figure svg')).flatMap(svg => {
                      const s = svg.getBoundingClientRect();
                      return Array.from(svg.querySelectorAll('text'), t => [t.textContent, t.getBoundingClientRect()])
                        .filter(([_, r]) => r.width > 0 && (r.left < s.left - 1 || r.right > s.right + 1 ||
                                                             r.top < s.top - 1 || r.bottom > s.bottom + 1))
                        .map(([text, _]) => text); });""")
    assert outside == []
    # every chart is drawn: the heatmap's image and the bars have a size on the page
    sizes = js("""return Array.from(document.querySelectorAll('figure svg'), svg => {
                    const r = svg.getBoundingClientRect(), img = svg.querySelector('image');
                    return [r.width, r.height, svg.querySelectorAll('rect, line, image, text').length,
                            img ? img.getBBox().width : 0]; });""")
    assert len(sizes) >= 3 and all(w > 100 and h > 50 and shapes > 3 for w, h, shapes, _ in sizes), sizes
    assert sizes[0][3] > 100  # the heatmap (first): its cells are an image inside its SVG
    sent = [json.loads(e["message"])["message"]["params"] for e in browser.get_log("performance")
            if '"Network.requestWillBeSent"' in e["message"]]
    ours = [p["request"]["url"][:80] for p in sent if p.get("documentURL") == page.as_uri()]
    assert ours and all(u.startswith(("file:", "data:")) for u in ours), ours
    assert [p["request"]["url"] for p in sent if p["request"]["url"].startswith(("http", "ws", "ftp"))] == []
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
