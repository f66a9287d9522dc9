"""Make docs/report.png: the report of 37 made-up students, graded for real and shown in Chromium.

    python docs/screenshot.py        # needs chromium, chromedriver and selenium (pip install -e '.[test]')

Each student is the book's layers (``examples/book_correct.py``, and for most also
``examples/book_later_layers.py``) with 0 to 4 of the broken fixtures pasted after them (the last
definition wins; the fixture that cannot be imported is left out), chosen with a fixed seed; one
more file cannot be imported. They are graded with
``gradprop grade`` and the page is saved at 1200 px wide, down to the heading of its last table.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    rng = random.Random(37)
    # pasted below the book's layers, a fixture's own imports of them are not needed (nor importable)
    broken = [re.sub(r"^from gradprop\S* import .*$", "", p.read_text(), flags=re.M)
              for p in sorted((ROOT / "fixtures" / "broken").glob("*.py"))]
    broken = [text for text in broken if "expect=import-error" not in text.splitlines()[0]]
    core = (ROOT / "examples" / "book_correct.py").read_text()
    later = (ROOT / "examples" / "book_later_layers.py").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(36):
            parts = [core] + ([later] if rng.random() < 0.8 else [])
            parts += rng.sample(broken, rng.randint(0, 4))
            (subs / f"student{i:02d}.py").write_text("\n\n".join(parts))
        (subs / "student36.py").write_text("import numpy as np\nclass Affine(:\n")
        out = Path(tmp) / "out"
        subprocess.run([sys.executable, "-m", "gradprop.cli", "grade", *map(str, sorted(subs.glob("*.py"))),
                        "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))))
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,800"):
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
        try:
            browser.get((out / "report.html").as_uri())
            # down to the heading of the table of every submission
            height = browser.execute_script("return [...document.querySelectorAll('h2')].pop().offsetTop")
            browser.set_window_size(1200, height + 160)
            browser.save_screenshot(str(ROOT / "docs" / "report.png"))
        finally:
            browser.quit()


if __name__ == "__main__":
    main()
