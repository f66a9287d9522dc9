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
import io
import os
import re
import string
import struct
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

if TYPE_CHECKING:
    import gettext

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


def set_language(lang: str) -> None:
    """Messages are in ``lang`` from now on, in this context: for a process that speaks one
    language throughout (the sandbox child, told by its load request). Its catalog is read now,
    before anything else runs in the process."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    translations(lang)  # first: a catalog that cannot be read leaves the language as it was
    _language.set(lang)


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
    """``message`` in the current language (itself when the catalog has no translation). In
    Korean, its ``.format()`` also picks each particle written both ways (``{name}이(가)``) by the
    word the value puts before it (``particles``)."""
    lang = language()
    if lang == "en":
        return message
    text = translations(lang).gettext(message)
    if lang != "ko":
        return text
    return _Korean(text if "{" in text else particles(text))


class _Korean(str):
    """A Korean message: formatting it chooses its particles (``particles``), in the message's
    own text only: a value filled in (a name, a submission's exception text) stays as it is."""

    def format(self, *args: object, **kwargs: object) -> str:  # type: ignore[override]
        return _PARTICLE_FORMATTER.vformat(self, args, kwargs)


class _ParticleFormatter(string.Formatter):
    """``str.format``, choosing the particles of each literal piece by the text before them."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:  # type: ignore[override]
        out: list[str] = []
        auto = 0
        for literal, field, spec, conversion in self.parse(format_string):
            if literal:
                out.append(particles(literal, before="".join(out)))
            if field is None:
                continue
            if field == "":
                field, auto = str(auto), auto + 1
            value, _key = self.get_field(field, args, kwargs)
            if "{" in (spec or ""):
                spec = str.format(spec, *args, **kwargs)
            out.append(self.format_field(self.convert_field(value, conversion), spec or ""))
        return "".join(out)


_PARTICLE_FORMATTER = _ParticleFormatter()


#: a particle written both ways in a catalog, after a value that decides it: the form after a
#: final consonant, and the form after a vowel (으로/로: 로 after ㄹ too)
_PARTICLE = re.compile(r"(이\(가\)|은\(는\)|을\(를\)|과\(와\)|\(으\)로)")
_FORMS = {"이(가)": ("이", "가"), "은(는)": ("은", "는"), "을(를)": ("을", "를"), "과(와)": ("과", "와"),
          "(으)로": ("으로", "로")}
#: how digits are read: 0 영, 1 일, 3 삼, 6 육, 7 칠, 8 팔 end in a consonant (1, 7, 8 in ㄹ)
_DIGITS = {"0": "c", "1": "l", "2": "", "3": "c", "4": "", "5": "", "6": "c", "7": "l", "8": "l", "9": ""}
#: Latin letters read alone (dW, db, SGD): L 엘, R 알 end in ㄹ; M 엠, N 엔 in a consonant
_LETTERS = {"l": "l", "r": "l", "m": "c", "n": "c"}


def _ending(word: str) -> str:
    """How ``word`` ends when read in Korean: "c" (a final consonant), "l" (ㄹ) or "" (a vowel)."""
    last = word[-1]
    if "가" <= last <= "힣":
        final = (ord(last) - ord("가")) % 28
        return "" if final == 0 else "l" if final == 8 else "c"
    if last.isdigit():
        return _DIGITS[last]
    w = word.lower()
    if len(w) <= 3 or word[-1].isupper():  # dx, dW, db, SGD, ReLU: the last letter's name
        return _LETTERS.get(w[-1], "")
    # a word, read as Korean writes loanwords: Affine 아핀, Net 넷, Adam 아담, Layer 레이어,
    # Sigmoid 시그모이드, softmax 소프트맥스, im2col 콜, matplotlib 립
    if w.endswith(("er", "or", "ar", "ure")):
        return ""
    if w.endswith(("l", "le")):
        return "l"
    if w.endswith(("m", "n", "ng", "ne", "me")):
        return "c"
    if w[-1] in "tkpb" and w[-2] in "aeiou":
        return "c"
    return ""


def particles(text: str, before: str = "") -> str:
    """Each particle written both ways (``이(가)``) in ``text`` chosen by the word before it
    (which may end ``before``, the text that comes before ``text``)."""
    def choose(m: re.Match) -> str:
        # the last word is all that counts: a long value's tail is enough (and stays cheap)
        word = re.search(r"([0-9A-Za-z가-힣]+)[^0-9A-Za-z가-힣\s]*$", (before + text[:m.start()])[-100:])
        if word is None:
            return m.group(1)
        end = _ending(word.group(1))
        consonant, vowel = _FORMS[m.group(1)]
        if m.group(1) == "(으)로":
            return vowel if end in ("", "l") else consonant
        return consonant if end else vowel

    return _PARTICLE.sub(choose, text)


#: ``_`` under a name for modules that use ``_`` for values they drop
tr = _


def say(lang: str | None, message: str, **fields: object) -> str:
    """``message`` (marked with ``N_``) in ``lang``, formatted with ``fields``: a sentence built
    outside the block that speaks the student's language (``use``)."""
    with use(lang):
        return _(message).format(**fields)


def plural(one: str, many: str, n: int) -> str:
    """The message for ``n`` things: ``one`` for 1, ``many`` otherwise (English's rule; Korean
    and Japanese translate both alike). Both are catalog entries, formatted by the caller."""
    return _(one if n == 1 else many)


def N_(message: str) -> str:
    """Marks a message for translation where it is defined; ``_`` translates it where it is used."""
    return message


@cache
def translations(lang: str) -> "gettext.NullTranslations":
    import gettext  # here: an English run (and the sandbox child's) never needs it

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
            msgid, field = _unquote(line[6:]), "msgid"
        elif line.startswith("msgstr "):
            msgstr, field = _unquote(line[7:]), "msgstr"
        elif line.startswith('"'):
            if field == "msgid":
                msgid += _unquote(line)
            else:
                msgstr += _unquote(line)
    close()
    return entries


def _unquote(quoted: str) -> str:
    """A .po string's text: most have no escape and need no parser (the sandbox's child reads a
    catalog each time it starts)."""
    quoted = quoted.strip()
    if "\\" not in quoted and len(quoted) >= 2 and quoted[0] == quoted[-1] == '"' and '"' not in quoted[1:-1]:
        return quoted[1:-1]
    return ast.literal_eval(quoted)


def compile_mo(catalog: Mapping[str, str]) -> bytes:
    """The GNU .mo form of a catalog: a header, two tables of (length, offset), then the strings."""
    keys = sorted(catalog)
    ids = [k.encode("utf-8") for k in keys]
    strs = [catalog[k].encode("utf-8") for k in keys]
    start = 7 * 4 + 16 * len(keys)  # after the header and both tables
    offsets, at = [], start
    for s in ids + strs:
        offsets.append((len(s), at))
        at += len(s) + 1
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    table = b"".join(struct.pack("<2I", n, o) for n, o in offsets)
    return header + table + b"".join(s + b"\0" for s in ids + strs)


# --- keeping the catalogs ----------------------------------------------------------------------------


def sources() -> list[Path]:
    """The modules whose messages are translated: gradprop's own and its properties'."""
    from gradprop import properties

    return sorted([*Path(__file__).parent.glob("*.py"), *Path(properties.__file__).parent.glob("*.py")])


def messages(paths: list[Path] | None = None) -> list[str]:
    """Every literal message marked with ``_("...")``, ``tr("...")`` or ``N_("...")`` (and both of
    ``plural("...", "...", n)``), in order of appearance."""
    found: dict[str, None] = {}
    for path in paths or sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            marked = {"_": 1, "tr": 1, "N_": 1, "plural": 2}.get(node.func.id, 0)
            for arg in node.args[:marked]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found[arg.value] = None
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
