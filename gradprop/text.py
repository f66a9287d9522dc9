"""Text from a submission, made safe to put into JSON, CSV and a terminal.

Whatever a submission prints, raises or names its files can reach results.json, grades.csv and
the instructor's terminal. ``safe_text`` keeps it readable and harmless: terminal escape
sequences go, control characters (but newline and tab) and the bidirectional overrides of
"Trojan Source" become U+FFFD, and lone surrogates (``print("\\udc80")``, a file name that is not
UTF-8) become U+FFFD too, so that every string encodes as UTF-8.
"""
from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(value: object) -> str:
    """``value`` as a string that is valid UTF-8 and prints as what it says."""
    text = value if isinstance(value, str) else str(value)
    text = _ANSI.sub("", text)
    text = _SURROGATE.sub("\ufffd", text)
    return _CONTROL.sub("\ufffd", text)


def safe_tree(value: object) -> object:
    """``safe_text`` applied to every string inside lists, tuples and dicts (keys too)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_tree(k): safe_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(safe_tree(v) for v in value)
    return value


def safe_name(value: object) -> str:
    """``safe_text`` on one line: a name (a submission's file name) shown where a line break would
    start a line of its own (a forged progress line on the terminal)."""
    return safe_text(value).replace("\n", "\ufffd").replace("\t", "\ufffd").replace("\r", "\ufffd")


def csv_cell(value: object) -> str:
    """``safe_name`` that a spreadsheet shows as text: a leading = + - @ would make it a formula
    (CSV injection), so such a cell starts with an apostrophe."""
    text = safe_name(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
