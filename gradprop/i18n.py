"""Messages in the student's language: English, Korean or Japanese, through gettext.

The catalogs are the .po files in ``gradprop/locale`` (``ko.po``, ``ja.po``), shipped as package
data and compiled to the .mo form gettext reads when first used: there is no build step to forget
and no compiled file to fall out of date. English is the source language (msgid). Tags, item and
gradient names, code and numbers are never translated: they are filled into the translated text.
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import gettext
import io
import os
import struct
from functools import cache
from pathlib import Path
from typing import Iterator, Mapping

LANGUAGES = ("en", "ko", "ja")
CATALOGS = Path(__file__).resolve().parent / "locale"

# a context variable, not a global: each grading run sets it around its own work
_language: contextvars.ContextVar[str] = contextvars.ContextVar("gradprop_language", default="en")


def default_language(environ: Mapping[str, str] = os.environ) -> str:
    """The language the locale asks for, as gettext reads it: the first of LANGUAGE, LC_ALL,
    LC_MESSAGES, LANG that is set (LANGUAGE may list several, by preference); English otherwise."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(var, "")
        if value:
            for part in value.split(":"):
                code = part.split(".")[0].split("@")[0].split("_")[0].lower()
                if code in LANGUAGES:
                    return code
            return "en"
    return "en"


def language() -> str:
    return _language.get()


@contextlib.contextmanager
def use(lang: str | None) -> Iterator[None]:
    """Messages built inside the block are in ``lang`` (None: the locale's language)."""
    lang = lang or default_language()
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    token = _language.set(lang)
    try:
        yield
    finally:
        _language.reset(token)


def _(message: str) -> str:
    """``message`` in the current language (itself when the catalog has no translation)."""
    return translations(language()).gettext(message)


#: ``_`` under a name for modules that use ``_`` for values they drop
tr = _


def N_(message: str) -> str:
    """Marks a message for translation where it is defined; ``_`` translates it where it is used."""
    return message


@cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    catalog = read_po((CATALOGS / f"{lang}.po").read_text(encoding="utf-8"))
    # as msgfmt does: an empty msgstr is no translation (the English text is shown)
    return gettext.GNUTranslations(io.BytesIO(compile_mo({k: v for k, v in catalog.items() if v})))


def read_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (no plural forms, no contexts; fuzzy entries are left out,
    as msgfmt leaves them out). The header entry (msgid "") is kept: it names the charset."""
    entries: dict[str, str] = {}
    msgid = msgstr = None
    field = None
    fuzzy = False

    def close() -> None:
        nonlocal msgid, msgstr, fuzzy
        if msgid is not None and msgstr is not None and not fuzzy:
            entries[msgid] = msgstr
        msgid = msgstr = None
        fuzzy = False

    for line in text.splitlines():
        line = line.strip()
        if not line:
            close()
        elif line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                close()
                fuzzy = True
        elif line.startswith("msgid "):
            if msgid is not None:
                close()
            msgid, field = ast.literal_eval(line[6:]), "msgid"
        elif line.startswith("msgstr "):
            msgstr, field = ast.literal_eval(line[7:]), "msgstr"
        elif line.startswith('"'):
            if field == "msgid":
                msgid += ast.literal_eval(line)
            else:
                msgstr += ast.literal_eval(line)
    close()
    return entries


def compile_mo(catalog: Mapping[str, str]) -> bytes:
    """The GNU .mo form of a catalog: a header, two tables of (length, offset), then the strings."""
    keys = sorted(catalog)
    ids = [k.encode("utf-8") for k in keys]
    strs = [catalog[k].encode("utf-8") for k in keys]
    start = 7 * 4 + 16 * len(keys)  # after the header and both tables
    offsets, data = [], b""
    for s in ids + strs:
        offsets.append((len(s), start + len(data)))
        data += s + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    table = b"".join(struct.pack("<2I", n, o) for n, o in offsets)
    return header + table + data


# --- keeping the catalogs ----------------------------------------------------------------------------


def sources() -> list[Path]:
    """The modules whose messages are translated: gradprop's own and its properties'."""
    from gradprop import properties

    return sorted([*Path(__file__).parent.glob("*.py"), *Path(properties.__file__).parent.glob("*.py")])


def messages(paths: list[Path] | None = None) -> list[str]:
    """Every literal message marked with ``_("...")``, ``tr("...")`` or ``N_("...")``, in order of appearance."""
    found: dict[str, None] = {}
    for path in paths or sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "tr", "N_")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found[node.args[0].value] = None
    return list(found)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def write_po(lang: str, catalog: Mapping[str, str], order: list[str]) -> str:
    """A .po file of ``order``'s messages with the translations ``catalog`` has ("" where none)."""
    lines = ['msgid ""', 'msgstr ""', _quote("Content-Type: text/plain; charset=UTF-8\n"),
             _quote(f"Language: {lang}\n")]
    for msgid in order:
        lines += ["", f"msgid {_quote(msgid)}", f"msgstr {_quote(catalog.get(msgid, ''))}"]
    return "\n".join(lines) + "\n"


def update_catalogs() -> None:
    """Bring each .po up to date with the sources: new messages get an empty msgstr to fill in,
    messages no longer used are dropped, translations are kept."""
    order = messages()
    for lang in LANGUAGES[1:]:
        path = CATALOGS / f"{lang}.po"
        old = read_po(path.read_text(encoding="utf-8")) if path.exists() else {}
        path.write_text(write_po(lang, old, order), encoding="utf-8")
        missing = [m for m in order if not old.get(m)]
        print(f"{path}: {len(order)} messages, {len(missing)} to translate")


if __name__ == "__main__":
    update_catalogs()
