"""Korean and Japanese messages: every message has every translation, with the same placeholders,
and the language chosen by --lang or the locale reaches the findings, the hints and the feedback."""
from __future__ import annotations

import io
import json
import pickle
import re
import string
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from hypothesis import Phase, settings

from gradprop import i18n
from gradprop.cli import _options, build_parser
from gradprop.findings import SubmissionFault
from gradprop.grading import GradeOptions, item_feedback
from gradprop.properties.diagnosis import HINT_LINE, HINTS, hints_in
from gradprop.properties.registry import REGISTRY
from gradprop.properties.runner import Outcome, evaluate_item
from gradprop.session import InProcessSession

META = settings(settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate])
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != "en"]


def catalog(lang: str) -> dict[str, str]:
    return i18n.read_po((i18n.CATALOGS / f"{lang}.po").read_text(encoding="utf-8"))


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture(scope="module")
def used() -> list[str]:
    """The messages the sources mark, read once (parsing every source takes a third of a second)."""
    return i18n.messages()


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_has_a_translation_with_the_same_placeholders(lang, used):
    assert len(used) > 80 and set(HINTS.values()) <= set(used)
    po = catalog(lang)
    assert [m for m in used if not po.get(m)] == [], f"untranslated in {lang}.po (python -m gradprop.i18n adds them)"
    assert sorted(set(po) - set(used) - {""}) == [], f"{lang}.po has messages no source uses"
    wrong = {m: po[m] for m in used if fields(m) != fields(po[m])}
    assert wrong == {}, "placeholders differ"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_compiled_catalog_gives_back_each_translation(lang, used):
    po = catalog(lang)
    compiled = i18n.translations(lang)
    assert all(compiled.gettext(m) == po[m] for m in used)
    assert i18n.translations("en").gettext("Reproduce") == "Reproduce"


def test_untranslated_entries_fall_back_to_english():
    po = i18n.read_po('msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                      'msgid "a"\nmsgstr ""\n\n#, fuzzy\nmsgid "b"\nmsgstr "B?"\n\nmsgid "c"\nmsgstr "C"\n')
    assert po == {"": "Content-Type: text/plain; charset=UTF-8\n", "a": "", "c": "C"}


@pytest.mark.parametrize("lang", [*TRANSLATED, "en"])
def test_the_pieces_other_messages_are_made_of_still_fit(lang):
    """check_stale_state rewrites one phrase of the value message; hints_in finds hints by their head."""
    with i18n.use(lang):
        whole = i18n._("{item}: {what} is wrong at {off} of {size} entries.")
        assert i18n._("is wrong at") in whole
        line = i18n._(HINT_LINE).format(id="sign-flipped", text="...")
    assert hints_in("  worst entry ...\n  " + line + "\n\nReproduce:") == ["sign-flipped"]


@pytest.mark.parametrize("environ, lang", [
    ({}, "en"), ({"LANG": "C.UTF-8"}, "en"), ({"LANG": "ko_KR.UTF-8"}, "ko"), ({"LC_ALL": "ja_JP.UTF-8"}, "ja"),
    ({"LANGUAGE": "fr:ja", "LANG": "ko_KR.UTF-8"}, "ja"), ({"LC_ALL": "de_DE", "LANG": "ko_KR"}, "en"),
    ({"LC_MESSAGES": "ko", "LANG": "ja_JP"}, "ko"),
])
def test_the_default_language_comes_from_the_locale_as_gettext_reads_it(environ, lang):
    assert i18n.default_language(environ) == lang


def test_lang_flag_and_locale_reach_the_grade_options(monkeypatch):
    parser = build_parser()
    assert _options(parser.parse_args(["grade", "x.py", "--out", "o", "--lang", "ja"])).lang == "ja"
    monkeypatch.setenv("LANGUAGE", "ko")
    options = _options(parser.parse_args(["grade", "x.py", "--out", "o"]))
    assert options.lang == "ko"
    assert pickle.loads(pickle.dumps(options)).lang == "ko"  # as it crosses to the grading workers
    with pytest.raises(SystemExit):
        parser.parse_args(["grade", "x.py", "--out", "o", "--lang", "fr"])
    with pytest.raises(ValueError):
        with i18n.use("fr"):
            pass


def test_findings_and_hints_in_korean_keep_tags_names_and_numbers():
    path = FIXTURES / "broken" / "sigmoid_backward_sign.py"
    with i18n.use("ko"):
        outcomes = evaluate_item(InProcessSession(path=str(path)), REGISTRY["Sigmoid"], path.stem, META,
                                 until="wrong-gradient")
    failed = [o for o in outcomes if not o.passed]
    assert failed and {o.tag for o in failed} == {"wrong-gradient"}
    message = failed[0].message
    assert "Sigmoid: dx 값이 틀렸습니다" in message
    assert "힌트 [sigmoid-one-plus-y]: dx에서 y(1 + y)를" in message
    assert "재현 방법" in message and "from sigmoid_backward_sign import Sigmoid" in message
    assert i18n.language() == "en"  # the block leaves the language as it was


def test_item_feedback_in_japanese():
    outcomes = [Outcome("Affine", "forward", "core", "forward agrees with the JAX reference"),
                Outcome("Affine", "rank>2", "core", "correct on the 'rank>2' inputs", "wrong-gradient", "..."),
                Outcome("Affine", "aliases-output", "strict", "backward returns new arrays, not dout itself or "
                        "one array twice", "aliases-output", "...")]
    with i18n.use("ja"):
        text = item_feedback("Affine", outcomes, False, Fraction(1, 2), Fraction(1), False)
    assert text.splitlines()[0] == "Affine: 検査 2 件中 1 件に合格（0.50 / 1.00）。"
    assert "✗ rank>2 — 'rank>2' の入力でも正しい [wrong-gradient]" in text
    assert "⚠ aliases-output — 逆伝播が dout そのものや同じ配列 2 つではなく新しい配列を返す [aliases-output]" \
        in text
    assert GradeOptions().lang == "en"


@pytest.mark.parametrize("written, read", [
    ("dx이(가) 틀렸습니다", "dx가 틀렸습니다"),          # x: 엑스, a vowel
    ("Affine은(는)", "Affine은"),                         # 아핀
    ("--chapter 7이(가)", "--chapter 7이"),               # 칠
    ("--chapter 5이(가)", "--chapter 5가"),               # 오
    ("MulLayer을(를)", "MulLayer를"),                     # 레이어
    ("TwoLayerNet은(는)", "TwoLayerNet은"),               # 넷
    ("softmax(으)로", "softmax로"), ("im2col(으)로", "im2col로"), ("Adam(으)로", "Adam으로"),
    ("grads['W2']이(가)", "grads['W2']가"), ("레이어과(와)", "레이어와"), ("모델과(와)", "모델과"),
    ("matplotlib을(를)", "matplotlib을"), ("jax을(를)", "jax를"),               # 립, 잭스
])
def test_korean_particles_follow_the_word_before_them(written, read):
    from gradprop.i18n import particles

    assert particles(written) == read


def test_a_korean_message_chooses_its_particles_when_formatted():
    from gradprop.i18n import _, use

    with use("ko"):
        text = _("{call} changed its argument {name} in place ({changed} entries);{example} The caller still "
                 "needs it: {fix}.").format(call="Relu.forward", name="x", changed=3, example="", fix="x.copy()")
    assert "Relu.forward가 인수 x를" in text and "(가)" not in text and "(를)" not in text


def test_a_korean_message_chooses_only_its_own_particles_never_a_values():
    """A value is data: a submission's text that happens to hold ``이(가)`` is shown as it is, and
    the message's own particles are chosen by the value's last word."""
    from gradprop.i18n import _, use

    with use("ko"):
        text = _("{what} should be a numpy array; it is {value!r}").format(what="dW", value="x이(가) 음수(으)로")
        other = _("{what} should be a numpy array; it is {value!r}").format(what="x이(가) dx", value=1)
    assert text == "dW는 numpy 배열이어야 하는데, 실제 값: 'x이(가) 음수(으)로'"
    assert other.startswith("x이(가) dx는 ")


# --- no English left in a Korean or Japanese run -----------------------------------------------------

RAISES = '''
import numpy as np

class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        raise ValueError("boom")

    def backward(self, dout):
        return dout
'''
HANGS = RAISES.replace('raise ValueError("boom")', "while True:\n            pass")
IMPORT_ERROR = '''
import numpy as np
from missing_helpers import something

class Relu:
    pass
'''
#: a Dropout whose forward takes no train_flg (the real-code fixture of it)
NO_TRAIN_FLG = (FIXTURES / "real_code" / "dropout_without_train_flg" / "dropout.py").read_text(encoding="utf-8")
NOTEBOOK_CELLS = [
    ("markdown", "# My layers"),
    ("code", "import numpy as np\n%matplotlib inline"),
    ("code", "class Relu:\n    def __init__(self):\n        self.mask = None\n\n    def forward(self, x):\n"
             "        self.mask = (x <= 0)\n        out = x.copy()\n        out[self.mask] = 0\n        return out\n\n"
             "    def backward(self, dout):\n        dx = dout.copy()\n        dx[self.mask] = 0\n        return dx"),
    ("code", "layer = Relu()\nprint(layer.forward(np.ones(3)))"),  # skipped: it calls Relu
    ("code", "from common.layers import Affine"),  # its import fails
]

#: file -> (the item it defines, what its output holds in every language, Python's own words in it:
#: an exception's text is Python's or the submission's, shown as it is)
BROKEN = {
    "raises.py": ("Relu", ["[exception]", "ValueError", "raises.py", "boom"], []),
    "hangs.py": ("Relu", ["[timeout]", "hangs.py"], []),
    "import_error.py": ("Relu", ["ModuleNotFoundError", "missing_helpers"], ["No module named 'missing_helpers'"]),
    "notes.ipynb": ("Relu", ["Relu", "common"], ["No module named 'common'"]),
    "no_train_flg.py": ("Dropout", ["[wrong-forward]", "train_flg"], []),
}
PARTICLES = re.compile(r"이\(가\)|은\(는\)|을\(를\)|과\(와\)|\(으\)로")
SCRIPT = {"ko": re.compile(r"[가-힣]"), "ja": re.compile(r"[ぁ-んァ-ン]")}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("broken")
    for name, text in (("raises.py", RAISES), ("hangs.py", HANGS), ("import_error.py", IMPORT_ERROR),
                       ("no_train_flg.py", NO_TRAIN_FLG)):
        (folder / name).write_text(text)
    cells = [{"cell_type": kind, "metadata": {}, "source": source.splitlines(True),
              **({"execution_count": None, "outputs": []} if kind == "code" else {})}
             for kind, source in NOTEBOOK_CELLS]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    (folder / "notes.ipynb").write_text(json.dumps(notebook))
    return folder


#: three English words in a row (numbers between them do not count): a sentence, or most of one,
#: left untranslated
RUN = 3
#: a word: letters only, perhaps after "(" (which starts a run) or before punctuation (which ends it)
_WORD = re.compile(r"(\()?([A-Za-z]+)([,.;:)?!]*)")


def english_runs(text: str, lang: str, python_says: Sequence[str] = ()) -> list[str]:
    """Every run of ``RUN`` or more English words in ``text``, outside what is not a sentence of
    gradprop's: code in backticks, quoted text, each reproduction snippet (the block under the
    "Reproduce" heading, in ``lang``) and ``python_says`` (an exception's own text). Tags
    (``[import-error]``), names (``Relu.forward``), paths and numbers are not words."""
    with i18n.use(lang):
        heading = i18n._("Reproduce")
    kept, block = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block is not None and (not line.strip() or indent > block):
            continue  # the snippet: Python
        block = indent if line.strip().startswith(heading) else None
        kept.append(line)
    text = "\n".join(kept)
    for said in python_says:
        text = text.replace(said, " ")
    text = re.sub(r"`[^`\n]*`|'[^'\n]*'|\"[^\"\n]*\"", " ", text)
    runs: list[str] = []
    run: list[str] = []

    def close() -> None:
        if sum(not w.isdigit() for w in run) >= RUN:
            runs.append(" ".join(run))
        run.clear()

    for line in text.splitlines():  # a run ends with its line
        for token in line.split():
            if token.isdigit() and run:  # "at line 8 of": a number inside a sentence, not a word of it
                run.append(token)
                continue
            m = _WORD.fullmatch(token)
            if m is None or m.group(1):
                close()
            if m is None:
                continue
            run.append(m.group(2))
            if m.group(3):
                close()
        close()
    return runs


def test_english_runs_finds_sentences_and_leaves_code_tags_and_snippets():
    """The checker of the tests below fails when it should (and a finding in Korean passes it)."""
    assert english_runs("Relu.forward did not return within 1 s", "en") == ["did not return within 1 s"]
    assert english_runs("Relu.forward raised ValueError: boom", "en") == []  # two words: a name's, a type's
    assert english_runs("  at line 8 of raises.py: y = x", "en") == ["at line 8 of"]
    assert english_runs("  場所: raises.py の 8 行目: y = x", "ja") == []
    assert english_runs("    파일 import에서 ModuleNotFoundError가 발생했습니다: No module named 'x'", "ko") \
        == ["No module named"]
    assert english_runs("... 발생했습니다: No module named 'x'", "ko", ["No module named 'x'"]) == []
    assert english_runs("✓ forward, backward, numerical, shapes [import-error] `dx = dout * mask`", "en") == []
    assert english_runs("(it was running line 8 of hangs.py: while True:)", "en") == ["it was running line 8 of"]
    snippet = ("✗ forward\n    Reproduce (the smallest failing input):\n        from notes import Relu\n"
               "        layer = Relu()\n  the same finding: ✗ backward")
    assert english_runs(snippet, "en") == ["the smallest failing input", "the same finding"]
    korean = snippet.replace("Reproduce (the smallest failing input)", "재현 방법 (실패하는 가장 작은 입력)")
    assert english_runs(korean.replace("the same finding", "같은 지적"), "ko") == []


def speaks(text: str, lang: str, name: str) -> None:
    """``text`` is all in ``lang`` but for tags, names, code, numbers, paths and Python's words."""
    __tracebackhide__ = True
    _item, present, python_says = BROKEN[name]
    missing = [p for p in present if p not in text]
    assert missing == [], f"{name}: {missing} not in\n{text}"
    runs = english_runs(text, lang, python_says)
    if lang == "en":  # the check sees English where there is English: it cannot pass by seeing nothing
        assert runs, text
        return
    assert runs == [], f"English left in the {lang} output of {name}: {runs}\n{text}"
    assert SCRIPT[lang].search(text), text
    if lang == "ko":
        assert PARTICLES.findall(text) == [], f"particles written both ways in\n{text}"


def _only(item: str):
    from gradprop.grading import Rubric
    from gradprop.properties.registry import ITEMS

    return Rubric.from_dict({"items": {i.name: {} if i.name == item else {"count": False} for i in ITEMS}}, "test")


@pytest.mark.parametrize("lang", ["en", *TRANSLATED])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_grade_says_it_all_in_the_students_language(broken, name, lang):
    """The feedback of a raise, a hang, an import error, a notebook with a skipped cell and a Dropout
    without train_flg: what the sandbox's child says, what loading skipped, the findings."""
    from gradprop.grading import grade_submission

    item = BROKEN[name][0]
    result = grade_submission(broken / name, GradeOptions(max_examples=2, time_limit=1.0, memory_mb=512,
                                                          rubric=_only(item), lang=lang))
    text = "\n\n".join([result.output, *(r.output for r in result.items)])
    speaks(text, lang, name)
    if name == "notes.ipynb":  # how the notebook was read: the cell left out, in the student's words
        with i18n.use(lang):
            assert i18n._("{file} cell {cell}").format(file="notes.ipynb", cell=4) in text


@pytest.mark.parametrize("lang", ["en", *TRANSLATED])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_says_it_all_in_the_students_language(broken, name, lang):
    """Every line ``gradprop check --lang`` prints: its own, the findings', the sandbox's."""
    from gradprop import check

    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["check", str(broken / name), "--items", BROKEN[name][0], "-j", "1",
                                      "--time-limit", "1", "--lang", lang])
    code = check.cmd_check(args, out, err)
    assert code == 1 or name == "notes.ipynb", out.getvalue()
    speaks(out.getvalue() + err.getvalue(), lang, name)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_check_usage_errors_in_the_students_language(tmp_path, lang):
    from gradprop import check

    for argv in ([str(tmp_path / "nope.py")], [str(tmp_path), "--time-limit", "0"], [str(tmp_path), "--items", "Foo"]):
        out, err = io.StringIO(), io.StringIO()
        assert check.cmd_check(build_parser().parse_args(["check", *argv, "--lang", lang]), out, err) == 2
        assert english_runs(err.getvalue(), lang) == [] and SCRIPT[lang].search(err.getvalue()), err.getvalue()


@pytest.mark.parametrize("layers", ["every layer", "landlock, no namespaces"])
def test_the_sandbox_child_reads_its_catalog_in_either_kind_of_box(broken, monkeypatch, layers):
    """The child writes its own messages (an exception, where it was raised) in the session's
    language: the catalogs are bound into its namespace view, or readable under its Landlock rules."""
    from gradprop import sandbox
    from gradprop.isolation import probe

    real = probe()
    if layers != "every layer":
        if not real.landlock or "namespaces" not in real.on:
            pytest.skip("this machine has no Landlock, or no namespaces to leave out")
        # as root without namespaces the child keeps our uid: fine for this file of ours
        bare = replace(real, on=tuple(o for o in real.on if o not in ("namespaces", "uid")))
        monkeypatch.setattr(sandbox, "probe", lambda: type("Probe", (), {"require": lambda self, mode: bare})())
    for lang, said in (("ko", "Relu.forward에서 ValueError가 발생했습니다: boom"),
                       ("ja", "Relu.forward で ValueError が発生しました: boom")):
        with sandbox.SandboxSession(broken / "raises.py", time_limit=5, lang=lang) as session:
            assert ("namespaces" in session.isolation.on) == (layers == "every layer")
            with pytest.raises(SubmissionFault) as e:
                session.call(session.new("Relu"), "forward", np.ones(2))
        assert e.value.message.splitlines()[0] == said, e.value.message


@pytest.mark.parametrize("lang", TRANSLATED)
def test_a_translated_value_name_still_names_the_worst_entry(lang):
    """assert_close names the worst entry by the word ``what`` starts with, in every language."""
    from gradprop.findings import Finding
    from gradprop.properties.assertions import assert_close

    with i18n.use(lang):
        for what, entry in ((i18n._("forward output"), "forward[1]"),
                            (i18n._("{name} after forward(x, train_flg=True)").format(name="running_mean"),
                             "running_mean[1]")):
            with pytest.raises(Finding) as e:
                assert_close(np.array([0.0, 1.0]), np.zeros(2), item="X", what=what, against="-", rtol=0, atol=0,
                             tag="wrong-forward", reproduce=lambda: "", gradient=False)
            assert f" {entry}:" in e.value.message, e.value.message


def test_no_korean_particle_is_fixed_after_a_value():
    """After a placeholder a particle is written both ways (``{name}이(가)``): the value decides it."""
    fixed = re.compile(r"\}(이|가|은|는|을|를|과|와|으로|로)(?![가-힣(])")
    assert [m for m, text in catalog("ko").items() if fixed.search(text)] == []


def test_every_check_title_is_a_catalog_entry(used):
    """What a finding's line names (``✗ eval-mode — ...``): every property of every item, from the registry."""
    from gradprop.properties.checks import properties_for
    from gradprop.properties.registry import ITEMS

    titles = {p.about for item in ITEMS for p in properties_for(item) if p.about != f"correct on the '{p.name}' inputs"}
    assert sorted(titles - set(used)) == []
