"""Korean and Japanese messages: every message has every translation, with the same placeholders,
and the language chosen by --lang or the locale reaches the findings, the hints and the feedback."""
from __future__ import annotations

import pickle
import string
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from gradprop import i18n
from gradprop.cli import _options, build_parser
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
