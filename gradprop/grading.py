"""Grading: one submission in, one result out; results.json, grades.csv and the rubric.

The grade of a submission is built from the suite's own properties (``properties_for`` through
``evaluate_item``), run against a ``SandboxSession``: the submission's code runs only in the
sandbox's child process, and this process only compares what comes back.

Scoring (CONTRACT.md section 4):

- every registry item counts, with weight ``DEFAULT_WEIGHT`` (1 point), unless a rubric says
  otherwise; an item's ``max_score`` is its weight;
- within an item, credit is the share of its core properties that hold (with ``strict``, strict
  properties count like core ones), rounded half up to 2 decimals;
- a fault (``import-error``, ``not-found``, ``exception``, ``timeout``) costs the whole item: a
  layer that raises, hangs or crashes on some input is not usable;
- an extension (what a later chapter adds to an item: label indices, rank > 2 input, padding) is
  always checked and reported, and counts like a core property only when the rubric counts it
  (``chapter``, ``extensions``); a fault inside it costs that property only;
- strict findings are warnings unless ``strict``: they are reported and tagged, and cost nothing.

The same submission gets the same result on every run: the grading profile is derandomized with
no example database, and nothing here depends on time or order, except an item that exceeds its
time budget (a hang is a hang on every machine; a submission that is merely slow may not be).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import __version__
from ._standins import AUTODIFF
from .findings import CORE, FAULTS, STRICT, SubmissionFault, tier
from .i18n import _, use as use_language
from .loader import submission_name
from .session import Later, Ref, Reply, Session
from .text import csv_cell, safe_text, safe_tree

#: points per item when the rubric does not say
DEFAULT_WEIGHT = 1
#: without a chapter, the items of chapters <= this count for every submission (ch. 5 is the
#: book's backprop chapter); those of later chapters count for the submissions that define them
DEFAULT_CHAPTER = 5
#: characters of one finding's message shown to the student
MESSAGE_LIMIT = 4000
#: characters of what the submission printed while being imported, shown to the student
PRINT_LIMIT = 1000
#: an item's calls into the submission may take this many --time-limit in all, the whole
#: submission's calls this many (10 s per call: 75 s an item, 5 minutes a submission). An
#: honest book file uses about 2 s in all; these stop a submission that is merely slow on every
#: call from holding a grading slot for an hour.
ITEM_BUDGET = 7.5
SUBMISSION_BUDGET = 30
#: names a submission cannot have: they would clash with what the output folder holds
RESERVED_NAMES = frozenset({"grades.csv", "report.html"})


class GradingError(ValueError):
    """A mistake in what the instructor asked for (a rubric, duplicate names): nothing is graded."""


# --- the rubric ------------------------------------------------------------------------------------


#: the largest weight of an item (points): a typo such as 1e400 is an error, not infinite points
MAX_WEIGHT = 10_000


def _weight(value: Any, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GradingError(f"{where}: weight must be a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise GradingError(f"{where}: weight must be a finite number, not {value!r}")
    if abs(value) > MAX_WEIGHT:
        raise GradingError(f"{where}: weight must be at most {MAX_WEIGHT}, not {value!r}")
    try:
        w = Fraction(Decimal(str(value)))  # 0.1 means 1/10, not the float nearest to it
    except (InvalidOperation, ValueError, OverflowError):
        raise GradingError(f"{where}: weight must be a finite number, not {value!r}") from None
    if w < 0:
        raise GradingError(f"{where}: weight must be >= 0, not {value!r}")
    if w * 100 != int(w * 100):
        raise GradingError(f"{where}: weight {value!r} has more than 2 decimals")
    return w


@dataclass(frozen=True)
class Rubric:
    """Which items count, what each is worth, and which of their extensions count, in registry order.

    A rubric file (TOML)::

        default_weight = 1        # optional
        chapter = 7               # optional: the items and extensions of chapters <= 7 count
        [items.Affine]
        weight = 2
        extensions = ["rank>2"]   # these extensions count, whatever the chapter
        [items.TwoLayerNet]
        count = false

    Without ``chapter`` no extension counts (each item as its chapter's text writes it), every item
    of chapters <= ``DEFAULT_CHAPTER`` counts, and an item of a later chapter counts when the
    submission defines it (``optional``): a correct chapter-5 file gets full marks, a chapter-7
    file is graded on what it wrote. An item's own ``count`` and ``extensions`` win over ``chapter``.
    """

    weights: tuple[tuple[str, Fraction], ...]
    source: str = "default"
    #: the extensions that cost marks, per item (items with none are left out)
    extensions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: top-level modules a submission may import but not use: using one in a checked call is a
    #: ``forbidden-import`` (by default the autodiff libraries; ``forbid = []`` allows them)
    forbid: tuple[str, ...] = AUTODIFF
    #: the course's files every submission gets beside it (absolute paths; ``support`` in the
    #: rubric, relative to it), and the items that earn marks when taken from them
    support: tuple[str, ...] = ()
    support_counts: tuple[str, ...] = ()
    #: items that count only for a submission that defines them (later chapters, without a chapter)
    optional: tuple[str, ...] = ()

    @classmethod
    def default(cls, chapter: int | None = None) -> "Rubric":
        return cls.from_dict({}, "default", chapter)

    @classmethod
    def load(cls, path: str | os.PathLike, chapter: int | None = None) -> "Rubric":
        import tomllib
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise GradingError(f"cannot read the rubric {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise GradingError(f"the rubric {path} is not valid TOML: {exc}") from None
        # feedback names the file, not where it lives; its support paths are relative to it
        return cls.from_dict(doc, Path(path).name, chapter, base=Path(path).resolve().parent)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "rubric", chapter: int | None = None,
                  base: Path | None = None) -> "Rubric":
        """The rubric ``doc`` describes; ``chapter`` (``--chapter``) replaces the doc's own; ``base``
        is the folder its ``support`` paths are relative to (the rubric file's)."""
        from .properties.registry import ITEMS, REGISTRY, extensions_up_to

        known = [item.name for item in ITEMS]
        unknown_keys = sorted(set(doc) - {"default_weight", "chapter", "items", "forbid", "support", "support_counts"})
        if unknown_keys:
            raise GradingError(f"{source}: unknown key(s) {', '.join(unknown_keys)}; a rubric has `default_weight`, "
                               "`chapter`, `forbid`, `support`, `support_counts` and `[items.NAME]` tables")
        support = support_paths(doc.get("support", []), base or Path.cwd(), f"{source}: support")
        counts = doc.get("support_counts", False)
        if counts is True:
            counts = known
        if counts is False:
            counts = []
        if not isinstance(counts, list) or any(c not in known for c in counts):
            raise GradingError(f"{source}: support_counts must be true, false or a list of items (e.g. [\"Affine\"]): "
                               "the items that earn marks when taken from the course's files")
        forbid = doc.get("forbid", AUTODIFF)
        if not isinstance(forbid, (list, tuple)) or not all(isinstance(f, str) and f.isidentifier() for f in forbid):
            raise GradingError(f"{source}: forbid must be a list of module names, e.g. [\"jax\", \"torch\"] "
                               f"or [] (the default is {list(AUTODIFF)})")
        if "numpy" in forbid:
            raise GradingError(f"{source}: forbid cannot name numpy: the layers are written with it")
        if chapter is None:
            chapter = chapter_number(doc.get("chapter"), f"{source}: chapter")
        else:
            chapter = chapter_number(chapter, "--chapter")
            source += f", chapter {chapter}"
        default = _weight(doc.get("default_weight", DEFAULT_WEIGHT), f"{source}: default_weight")
        items = doc.get("items", {})
        if not isinstance(items, Mapping):
            raise GradingError(f"{source}: `items` must be a table of tables ([items.Affine])")
        aliases = {alias: item.name for item in ITEMS for alias in item.aliases}
        for name, entry in items.items():
            if name not in known:
                hint = (f" (write it as {aliases[name]})" if name in aliases else "")
                raise GradingError(f"{source}: unknown item {name!r}{hint}; the items are {', '.join(known)}")
            if not isinstance(entry, Mapping):
                raise GradingError(f"{source}: [items.{name}] must be a table, e.g. weight = 2")
            bad = sorted(set(entry) - {"weight", "count", "extensions"})
            if bad:
                raise GradingError(f"{source}: [items.{name}] has unknown key(s) {', '.join(bad)}; "
                                   "an item takes `weight`, `count` and `extensions`")
            if "count" in entry and not isinstance(entry["count"], bool):
                raise GradingError(f"{source}: [items.{name}] count must be true or false")
            if "extensions" in entry:
                _extensions(entry["extensions"], REGISTRY[name], f"{source}: [items.{name}] extensions")
        weights, extensions, optional = [], [], []
        for item in ITEMS:
            entry = items.get(item.name, {})
            if entry.get("count", chapter is None or item.chapter <= chapter):
                w = _weight(entry["weight"], f"{source}: [items.{item.name}]") if "weight" in entry else default
                weights.append((item.name, w))
                counted = tuple(entry.get("extensions", extensions_up_to(item, chapter) if chapter else ()))
                if counted:
                    extensions.append((item.name, counted))
                if chapter is None and "count" not in entry and item.chapter > DEFAULT_CHAPTER:
                    optional.append(item.name)
        if not weights:
            raise GradingError(f"{source}: no item counts")
        return cls(tuple(weights), source, tuple(extensions), tuple(forbid), support, tuple(counts), tuple(optional))

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights)

    def counted(self, item: str) -> tuple[str, ...]:
        """The names of ``item``'s extensions that cost marks."""
        return dict(self.extensions).get(item, ())


def support_paths(value: Any, base: Path, where: str) -> tuple[str, ...]:
    """The course's files, as absolute paths (each a folder or a file that exists)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise GradingError(_("{where} must be a list of paths, e.g. [\"course/common\"]").format(where=where))
    out = []
    for v in value:
        p = (base / os.path.expanduser(v)).resolve()
        if not p.exists():
            raise GradingError(_("{where}: no such file or folder: {path} (looked for {looked})").format(
                where=where, path=safe_text(v), looked=safe_text(str(p))))
        if p.name in ("", ".", ".."):
            raise GradingError(_("{where}: {path} has no name to put beside a submission").format(
                where=where, path=safe_text(v)))
        out.append(str(p))
    names = [os.path.basename(p) for p in out]
    if len(set(names)) != len(names):
        raise GradingError(_("{where}: two of {paths} have one name; each goes beside the submission under its own "
                             "name").format(where=where, paths=", ".join(names)))
    return tuple(out)


def chapter_number(value: Any, where: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8):
        raise GradingError(_("{where}: a chapter of the book is a whole number from 1 to 8, not {value!r}").format(
            where=where, value=value))
    return value


def _extensions(value: Any, item: Any, where: str) -> None:
    offered = ", ".join(f"{n!r} (ch. {e.chapter})" for n, e in item.extensions.items()) or "none"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GradingError(f"{where} must be a list of names, e.g. [] or [\"{next(iter(item.extensions), 'NAME')}\"]")
    unknown = [v for v in value if v not in item.extensions]
    if unknown:
        raise GradingError(f"{where}: {item.name} has no extension {unknown[0]!r}; its extensions are {offered}")


# --- options and results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeOptions:
    """How to grade. Plain data: it crosses to the worker processes of ``-j N``."""

    rubric: Rubric = field(default_factory=Rubric.default)
    strict: bool = False
    #: seconds one call into the submission may take
    time_limit: float = 10.0
    memory_mb: int = 2048
    #: examples per property; None: the grading profile's fixed budget
    max_examples: int | None = None
    #: "auto": every layer this machine has, refusing where grading would be unprotected;
    #: "weak": whatever there is (said in every output); "strict": refuse without every layer
    isolation: str = "auto"
    #: language of the feedback: "en", "ko" or "ja" (see gradprop.i18n)
    lang: str = "en"
    #: the run's submissions (and those an earlier run into the same output folder graded):
    #: never copied into another's box, even when imported by name; the folder above a file is
    #: reached only where each is a folder of its own (``staging.reach_parent``). They do not
    #: change a grade: left out of the resume fingerprint
    others: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: the course's files beside every submission (``--support``), besides the rubric's own
    extra_support: tuple[str, ...] = ()

    @property
    def support(self) -> tuple[str, ...]:
        """Every course file beside each submission: ``--support``'s, then the rubric's."""
        return tuple(dict.fromkeys((*self.extra_support, *self.rubric.support)))

    @property
    def item_budget(self) -> float:
        """Seconds of the submission's own running time one item may use in all."""
        return ITEM_BUDGET * self.time_limit

    @property
    def submission_budget(self) -> float:
        """Seconds of running time the whole submission may use (its items share it)."""
        return SUBMISSION_BUDGET * self.time_limit

    def settings(self):
        from hypothesis import settings as Settings

        from .properties import profiles  # noqa: F401 - registers the grading profile

        base = Settings.get_profile("grading")
        return base if self.max_examples is None else Settings(base, max_examples=self.max_examples)

    def describe(self) -> str:
        examples = self.settings().max_examples
        text = (_("gradprop {version}: {examples} generated examples per check (derandomized: the same inputs on "
                  "every run), {limit} s per call, {item_budget} s per item and {submission_budget} s per submission "
                  "in all, rubric: {rubric}, strict") if self.strict else
                _("gradprop {version}: {examples} generated examples per check (derandomized: the same inputs on "
                  "every run), {limit} s per call, {item_budget} s per item and {submission_budget} s per submission "
                  "in all, rubric: {rubric}"))
        return text.format(version=__version__, examples=examples, limit=f"{self.time_limit:g}",
                           item_budget=f"{self.item_budget:g}", submission_budget=f"{self.submission_budget:g}",
                           rubric=self.rubric.source)


@dataclass(frozen=True)
class ItemResult:
    name: str
    score: Fraction
    max_score: Fraction
    status: str  # "passed" / "failed"
    tags: tuple[str, ...]
    output: str
    #: why gradprop itself could not grade the item (a bug of ours), or None
    error: str | None = None
    #: extensions that failed without costing marks (the rubric does not count them)
    uncounted: tuple[str, ...] = ()
    #: the diagnosis hints its findings give, by id (``properties.diagnosis``), as the grader made
    #: them: report.html counts these, never what a feedback text says
    hints: tuple[str, ...] = ()
    #: the finding tags of the extensions in ``uncounted`` (``tags`` has the counted ones only)
    uncounted_tags: tuple[str, ...] = ()
    #: the file of the submission the item was taken from (relative to it), "" when not known
    origin: str = ""

    def gradescope(self) -> dict[str, Any]:
        doc = {"name": self.name, "score": float(self.score), "max_score": float(self.max_score),
               "status": self.status, "output": self.output, "tags": list(self.tags)}
        extra: dict[str, Any] = {}
        if self.origin:  # which file was graded, for a folder of several
            extra["file"] = self.origin
        if self.uncounted:  # what a later chapter will ask, apart from what was graded
            extra["not_counted"] = {"extensions": list(self.uncounted), "tags": list(self.uncounted_tags)}
        if extra:
            doc["extra_data"] = extra
        return doc


@dataclass(frozen=True)
class SubmissionResult:
    name: str
    path: str
    items: tuple[ItemResult, ...]
    output: str
    execution_time: float = 0.0
    #: the isolation layers in force while it was graded (``Isolation.as_dict``)
    isolation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> Fraction:
        return sum((r.score for r in self.items), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        return sum((r.max_score for r in self.items), Fraction(0))

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(f"{r.name}: {r.error}" for r in self.items if r.error)

    def gradescope(self) -> dict[str, Any]:
        """The results.json document Gradescope reads."""
        return {
            "score": float(self.score),
            "max_score": float(self.max_score),
            "execution_time": round(self.execution_time, 1),
            "output": self.output,
            "output_format": "text",
            "test_output_format": "text",
            "tests": [r.gradescope() for r in self.items],
            "extra_data": {"gradprop": {"version": __version__, "isolation": dict(self.isolation)}},
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data (fractions as strings), for resuming an interrupted run."""
        return {"name": self.name, "path": self.path, "output": self.output,
                "execution_time": self.execution_time, "isolation": dict(self.isolation),
                "items": [{k: (str(v) if isinstance(v, Fraction) else list(v) if isinstance(v, tuple) else v)
                           for k, v in vars(r).items()} for r in self.items]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "SubmissionResult":
        items = tuple(ItemResult(**{k: (Fraction(v) if k in ("score", "max_score") else
                                        tuple(v) if isinstance(v, list) else v) for k, v in item.items()})
                      for item in doc["items"])
        return cls(doc["name"], doc["path"], items, doc["output"], doc["execution_time"], doc["isolation"])

    def csv_row(self, columns: Sequence[str] | None = None) -> list[str]:
        """The submission's row, one cell per item of ``columns`` (default: its own items); blank
        for an item not graded, or not counted (a later chapter's item it does not define)."""
        graded = {r.name: r for r in self.items}
        cells = ["" if r is None or r.error else _points(r.score)
                 for r in (graded.get(name) for name in (columns or graded))]
        if self.errors:  # not graded: blank, so that nobody mistakes it for a grade
            return [self.name, "", _points(self.max_score), *cells]
        return [self.name, _points(self.score), _points(self.max_score), *cells]


def _round2(x: Fraction) -> Fraction:
    """Half up to 2 decimals, exactly (no float in between)."""
    return Fraction(math.floor(x * 100 + Fraction(1, 2)), 100)


def _points(x: Fraction) -> str:
    return f"{float(x):.2f}"


# --- one item --------------------------------------------------------------------------------------


@dataclass
class _Clock:
    """The running time of one submission's calls, shared by its items."""

    limit: float
    used: float = 0.0


class _ItemSession(Session):
    """One item's view of the submission's session, with a cap on the item's total running time.

    The cap counts the time spent in calls into the submission (not the grader's own work, such as
    compiling the reference): past ``budget`` seconds, that call and every later one of the item
    is a ``timeout``. The sandbox's per-call limit catches a hang; this catches an item that is
    merely slow on every call, whose checks would otherwise take hours.
    """

    def __init__(self, inner: Session, item: str, budget: float, clock: _Clock):
        self._inner = inner
        self._item = item
        self._budget = budget
        self._used = 0.0
        self._clock = clock
        self.import_error = inner.import_error
        self.kinds, self.origins, self.load_notes = inner.kinds, inner.origins, inner.load_notes
        self.support_files = inner.support_files
        self.defers = inner.defers

    def _do(self, fn, *args: Any, **kwargs: Any) -> Any:
        if self._used > self._budget:
            raise SubmissionFault("timeout", _("{item} used more than {budget} s of running time in all, and its "
                                               "checks were stopped. Is a loop much slower than it needs to be?")
                                  .format(item=self._item, budget=f"{self._budget:g}"))
        if self._clock.used > self._clock.limit:
            raise SubmissionFault("timeout", _("the submission used more than {limit} s of running time in all, so "
                                               "the checks of {item} were stopped. Is a loop much slower than it "
                                               "needs to be?").format(limit=f"{self._clock.limit:g}", item=self._item))
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            self._used += spent
            self._clock.used += spent

    def defines(self, name: str) -> bool:
        return self._inner.defines(name)

    def new(self, item: str, *args: Any, **kwargs: Any) -> Ref:
        return self._do(self._inner.new, item, *args, **kwargs)

    def call(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Reply:
        return self._do(self._inner.call, target, method, *args, **kwargs)

    def get(self, ref: Ref, *path: str) -> Any:
        return self._do(self._inner.get, ref, *path)

    def later(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Later:
        inner = self._do(self._inner.later, target, method, *args, **kwargs)
        return Later.on_demand(lambda: self._do(inner.value))  # the running time is counted when read

    def later_value(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Later:
        inner = self._do(self._inner.later_value, target, method, *args, **kwargs)
        return Later.on_demand(lambda: self._do(inner.value))

    def later_get(self, ref: Ref, *path: str) -> Later:
        inner = self._do(self._inner.later_get, ref, *path)
        return Later.on_demand(lambda: self._do(inner.value))

    def later_put(self, ref: Ref, path: tuple[str, ...], values: dict[str, Any]) -> Later:
        inner = self._do(self._inner.later_put, ref, path, values)
        return Later.on_demand(lambda: self._do(inner.value))

    def group(self) -> None:
        self._inner.group()

    def iadd(self, ref: Ref, path: tuple[str, ...], delta: Any) -> None:
        return self._do(self._inner.iadd, ref, path, delta)

    def seed(self, seed: int) -> None:
        return self._do(self._inner.seed, seed)


def evaluate(session: Session, item: Any, origin: str, settings: Any) -> list[Any]:
    """The outcomes of every property of ``item``: the suite's ``evaluate_item``, nothing else."""
    from .properties.runner import evaluate_item

    return evaluate_item(session, item, origin, settings)


def _counts(outcome: Any, strict: bool, extensions: Sequence[str]) -> bool:
    """Whether an outcome costs marks: core checks always, strict ones with ``strict``, an extension
    (``outcome.chapter`` set) only when the rubric counts it."""
    if outcome.chapter is not None:
        return outcome.prop in extensions
    return outcome.tier == CORE or strict


def score_item(name: str, weight: Fraction, outcomes: Sequence[Any], strict: bool = False,
               extensions: Sequence[str] = ()) -> ItemResult:
    """The score, status, tags and feedback of one item from its outcomes (``runner.Outcome``);
    ``extensions`` names the item's extensions that count (``Rubric.counted``)."""
    counted = [o for o in outcomes if _counts(o, strict, extensions)]
    failed = [o for o in counted if not o.passed]
    # a fault inside an extension costs that extension's share, not the item
    fault = next((o for o in failed if o.tag in FAULTS and o.chapter is None), None)
    if fault is not None or not counted:
        score = Fraction(0)
    else:
        score = _round2(weight * (len(counted) - len(failed)) / len(counted))
    # an extension the rubric does not count is reported apart: its findings are not the item's
    later = [o for o in outcomes if not o.passed and o.chapter is not None and o.prop not in extensions]
    tags = tuple(sorted({o.tag for o in outcomes if not o.passed and o not in later}))
    status = "failed" if failed else "passed"
    uncounted = tuple(o.prop for o in later if o.tag not in ("not-found", "import-error"))
    hints = tuple(dict.fromkeys(o.hint[0] for o in outcomes
                                if not o.passed and o not in later and getattr(o, "hint", None)))
    return ItemResult(name, score, _round2(weight), status, tags,
                      item_feedback(name, outcomes, strict, score, _round2(weight), fault is not None, extensions),
                      uncounted=uncounted, hints=hints,
                      uncounted_tags=tuple(sorted({o.tag for o in later if o.prop in uncounted})))


def item_feedback(name: str, outcomes: Sequence[Any], strict: bool, score: Fraction, max_score: Fraction,
                  faulted: bool, extensions: Sequence[str] = ()) -> str:
    """What was checked and what went wrong, one block per distinct finding, and which of the
    item's extensions were checked and which counted."""
    def counts(o: Any) -> bool:
        return _counts(o, strict, extensions)

    def mark(o: Any) -> str:
        return "✓" if o.passed else "✗" if counts(o) else "⚠"

    counted = [o for o in outcomes if counts(o)]
    held = [o for o in counted if o.passed]
    lines = [_("{name}: {held} of {counted} checks hold ({score} / {max_score}).").format(
        name=name, held=len(held), counted=len(counted), score=_points(score), max_score=_points(max_score))]
    later = [o for o in outcomes if o.chapter is not None]
    if later and not all(o.tag in ("not-found", "import-error") for o in later):
        lines.append(_("Extensions (what later chapters add; they cost marks only when the rubric counts them): ")
                     + ", ".join(f"{mark(o)} {o.prop} " + (_("(ch. {chapter}, counted)") if counts(o) else
                                                           _("(ch. {chapter}, not counted)")).format(chapter=o.chapter)
                                 for o in later))
    passed = [o.prop for o in outcomes if o.passed]
    if passed:
        lines.append("✓ " + ", ".join(passed))
    failures = [o for o in outcomes if not o.passed]
    if failures and len(failures) == len(outcomes) and len({(o.tag, o.message) for o in failures}) == 1:
        o = failures[0]  # the file did not load, the item is not defined: every check says so
        lines += [_("✗ every check [{tag}]").format(tag=o.tag), _indent(_clip(o.message))]
        return "\n".join(lines)
    if faulted:
        lines.append(_("A fault (a raise, a hang or a crash) costs the whole item."))
    groups: dict[tuple[str, str], list[Any]] = {}  # one block per distinct finding, in order
    for o in failures:
        groups.setdefault((o.tag, o.message), []).append(o)
    for (tag, message), group in groups.items():
        first, *same = group
        if counts(first):
            note = ""
        elif first.chapter is not None:
            note = _(" ({name} will not survive ch. {chapter}: an extension, which costs nothing unless the rubric "
                     "or --chapter {chapter} counts it)").format(name=name, chapter=first.chapter)
        else:
            note = _(" (a warning: it costs nothing unless graded with --strict)")
        lines += [f"{mark(first)} {first.prop} — {_about(first)} [{tag}]{note}", _indent(_clip(message))]
        if same:
            lines.append(_("  the same finding: ") + ", ".join(f"{mark(o)} {o.prop}" for o in same))
    return "\n".join(lines)


def _about(outcome: Any) -> str:
    """What the property checks, in the student's language (properties.checks.properties_for
    describes a regime by its name)."""
    if outcome.about == f"correct on the '{outcome.prop}' inputs":
        return _("correct on the '{regime}' inputs").format(regime=outcome.prop)
    return _(outcome.about)


def _clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = text.rstrip()
    return text if len(text) <= limit else text[:limit] + _("\n... (cut)")


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line.strip() else "" for line in text.splitlines())


def scaffold_message(name: str, origin: str) -> str:
    return _("{name} is not defined by your submission: it comes from the course's file {origin}, which does not "
             "earn marks here. Write {name} in your own file.").format(name=name, origin=origin)


def not_the_students(name: str, weight: Fraction, origin: str) -> ItemResult:
    """An item taken from the course's files (``--support``), not from the submission: no marks
    (unless the rubric's ``support_counts`` names it), and a note saying where it came from."""
    return ItemResult(name, Fraction(0), _round2(weight), "failed", ("not-found",), scaffold_message(name, origin))


def grader_error_item(name: str, weight: Fraction, error: str) -> ItemResult:
    return ItemResult(name, Fraction(0), _round2(weight), "failed", (),
                      _("{name}: gradprop itself failed while grading this item; this is not a fault of "
                        "your code, and the item has not been graded. Please tell your instructor.").format(name=name)
                      + f"\n    {error}", error=error)


# --- one submission --------------------------------------------------------------------------------


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def grade_submission(path: str | os.PathLike, options: GradeOptions | None = None,
                     name: str | None = None) -> SubmissionResult:
    """Grade the layer set at ``path`` (a .py file or a folder). Never raises for the
    submission's faults; gradprop's own failures become items with ``error`` set, after the
    submission has been graded a second time (a fault of ours may be passing: a killed compile)."""
    options = options or GradeOptions()
    with use_language(options.lang):  # findings and feedback are written in the student's language
        result = _grade_submission(path, options, name)
        if result.errors:  # gradprop's own fault (what a submission sends is judged as its own): once more
            result = _grade_submission(path, options, name)
        return result


def _grade_submission(path: str | os.PathLike, options: GradeOptions, name: str | None) -> SubmissionResult:
    from .properties.registry import REGISTRY
    from .properties.assertions import origin_of
    from .sandbox import SandboxSession
    from .staging import reach_parent

    path = os.path.abspath(path)  # the sandbox's child runs in the submission's folder
    name = name or submission_name(path)
    started = time.perf_counter()
    settings = options.settings()
    origin = origin_of(path)
    items: list[ItemResult] = []
    session = None
    isolation: dict[str, Any] = {}
    try:
        session = SandboxSession(path, time_limit=options.time_limit, memory_mb=options.memory_mb,
                                 isolation=options.isolation, forbid=options.rubric.forbid, exclude=options.others,
                                 support=options.support, parent=reach_parent(path, options.others))
        isolation = session.isolation.as_dict()
    except Exception as exc:  # noqa: BLE001 - the sandbox could not start: ours, not theirs
        error = _("the sandbox could not start: {error}").format(error=_short_error(exc))
        items = [grader_error_item(n, w, error) for n, w in options.rubric.weights if n not in options.rubric.optional]
    uncounted: list[str] = []
    if session is not None:
        clock = _Clock(options.submission_budget)
        with session:
            for item_name, weight in options.rubric.weights:
                item = REGISTRY[item_name]
                if item_name in options.rubric.optional and session.resolve(item.names) is None:
                    uncounted.append(item_name)  # a later chapter's item the submission does not define
                    continue
                scaffold = session.from_support(item.names)
                if scaffold is not None and item.name not in options.rubric.support_counts:
                    items.append(not_the_students(item.name, weight, scaffold))
                    continue
                view = _ItemSession(session, item.name, options.item_budget, clock)
                try:
                    outcomes = evaluate(view, item, origin, settings)
                except Exception as exc:  # noqa: BLE001 - a bug of ours must not cost the row
                    items.append(grader_error_item(item.name, weight, _short_error(exc)))
                    continue
                taken = session.origins.get(session.resolve(item.names) or "", "")
                items.append(replace(score_item(item.name, weight, outcomes, options.strict,
                                                options.rubric.counted(item.name)), origin=taken))
        import_error, printed = session.import_error, getattr(session, "import_output", "")
        read = how_it_was_read(path, session.origins, session.load_notes)
    else:
        import_error, printed, read = None, "", []
    result = SubmissionResult(name, path, tuple(items), "", time.perf_counter() - started, isolation)
    return replace(result, output=submission_feedback(result, options, import_error, printed, read, uncounted))


def how_it_was_read(path: str, origins: dict[str, str], notes: Sequence[str]) -> list[str]:
    """Where each item was taken from (for a folder, or a file that imports items from beside
    it) and what loading skipped, as report lines."""
    lines = list(notes)
    own = os.path.basename(path)
    if origins and (os.path.isdir(path) or any(rel != own for rel in origins.values())):
        lines.insert(0, _("took {items}").format(items=", ".join(
            _("{name} from {file}").format(name=name, file=rel) for name, rel in origins.items())))
    return lines


def submission_feedback(result: SubmissionResult, options: GradeOptions, import_error: str | None,
                        printed: str, read: Sequence[str] = (), uncounted: Sequence[str] = ()) -> str:
    lines = [_("Score: {score} / {max_score}").format(score=_points(result.score),
                                                      max_score=_points(result.max_score)), ""]
    if result.errors:
        lines += [_("gradprop itself failed on part of this submission (not a fault of your code); those "
                    "items are not graded yet:"), *("  " + e for e in result.errors), ""]
    if weak_isolation(result):
        lines += [_("This run was weakly isolated (--isolation weak): {what}.").format(what=weak_isolation(result)), ""]
    if import_error:
        lines += [_("Your file could not be imported, so no item could be checked:"), _indent(_clip(import_error)), ""]
    elif result.items and all(r.tags == ("not-found",) and not r.error for r in result.items):
        lines += [_("Your submission defines none of the items graded here ({names}). Is it the file with your "
                    "layers?").format(names=", ".join(r.name for r in result.items)), ""]
    for r in result.items:
        mark = "✓" if r.status == "passed" else "✗"
        extra = f"  [{', '.join(r.tags)}]" if r.tags else ""
        extra += _("  (warnings only)") if r.status == "passed" and any(tier(t) == STRICT for t in r.tags) else ""
        if r.uncounted:
            extra += _("  (not counted: {names}, of a later chapter)").format(names=", ".join(r.uncounted))
        lines.append(f"{mark} {r.name:<20} {_points(r.score):>6} / {_points(r.max_score)}{extra}")
    if uncounted and not import_error:
        lines.append("· " + _("not defined, and not counted (items of chapters after {chapter} count when the "
                              "submission defines them, or with --chapter): {names}").format(
                                  chapter=DEFAULT_CHAPTER, names=", ".join(uncounted)))
    if read:
        lines += ["", _("How your submission was read:"), *(_indent(_clip(n)) for n in read)]
    lines += ["", _("Each item is checked on generated inputs: forward against a JAX reference, backward "
                    "against jax.vjp and against the numerical gradient of your own forward, gradient shapes, "
                    "and the layer contract (inputs left unchanged, no stale state, edge cases). Credit within "
                    "an item is the share of its checks that hold; ")
              + (_("strict checks count too.") if options.strict else _("warnings (⚠) cost nothing."))
              + _(" Extensions (what a later chapter adds to an item: label indices, rank > 2 input, padding) "
                  "are always checked and cost marks only when the rubric counts them.")]
    if printed.strip():
        lines += ["", _("Your file printed this while being imported:"), _indent(_clip(printed, PRINT_LIMIT))]
    lines += ["", options.describe()]
    return "\n".join(lines)


# --- writing ---------------------------------------------------------------------------------------


def results_json(result: SubmissionResult) -> str:
    """results.json's text: every string made safe, so that nothing a submission said can stop
    it from being written (a lone surrogate, a terminal escape, a file name that is not UTF-8)."""
    return json.dumps(safe_tree(result.gradescope()), indent=2, ensure_ascii=False) + "\n"


def result_folder(out_dir: str | os.PathLike, name: str) -> Path:
    """OUT/<name>: ``name`` is one plain path component (``submission_names`` checks it)."""
    if name in ("", ".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        raise GradingError(f"{safe_text(name)!r} cannot name a folder inside the output folder")
    return Path(out_dir) / name


def write_results(result: SubmissionResult, out_dir: str | os.PathLike) -> Path:
    """OUT/<name>/results.json, and beside it what ``--resume`` needs (``RESUME_FILE``)."""
    folder = result_folder(out_dir, result.name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "results.json"
    atomic_write(target, results_json(result))
    return target


def weak_isolation(result: SubmissionResult) -> str:
    """What was not protected while ``result`` was graded under ``--isolation weak``, else ""."""
    if result.isolation.get("mode") != "weak":
        return ""
    # (what is missing is the isolation probe's own description, for the instructor: English)
    return _("submission code ran without protection of {what}").format(
        what="; ".join(result.isolation.get("not_protected", ())))


def grades_csv(results: Iterable[SubmissionResult], rubric: Rubric) -> str:
    """grades.csv: a header and one row per submission, by name; fixed formatting, no times. A
    weakly isolated run (``--isolation weak``) adds a last column, ``isolation``, saying so."""
    results = sorted(results, key=lambda r: r.name)
    weak = any(weak_isolation(r) for r in results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["submission", "score", "max_score", *rubric.items, *(["isolation"] if weak else [])])
    for r in results:
        row = r.csv_row(rubric.items)
        writer.writerow([csv_cell(row[0]), *row[1:], *([f"weak: {weak_isolation(r)}"] if weak else [])])
    return buf.getvalue()


def write_csv(results: Iterable[SubmissionResult], rubric: Rubric, out_dir: str | os.PathLike) -> Path:
    target = Path(out_dir) / "grades.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, grades_csv(results, rubric))
    return target


def atomic_write(target: Path, text: str) -> None:
    """Write ``text`` as UTF-8 through a temporary file of a name no submission can take."""
    fd, tmp = tempfile.mkstemp(prefix=".gradprop-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # as an ordinary file would be, not mkstemp's 0600
            f.write(text.encode("utf-8", "replace"))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a submission (a usage error, the same for grade, check and
    ``pytest --submission``), or None: it must be a .py file, a .ipynb notebook, or a folder
    holding one of these."""
    p = os.fspath(path)
    shown = safe_text(p)
    if not os.path.exists(p):
        return _("no such file or folder: {path}").format(path=shown)
    if os.path.isdir(p):
        for root, dirs, files in os.walk(p):
            dirs[:] = [d for d in dirs if not d.startswith(".") and root[len(p):].count(os.sep) < 5]
            if any(f.endswith((".py", ".ipynb")) for f in files):
                return None
        return _("{path} holds no .py file or .ipynb notebook: a submission is one of these, or a folder of "
                 "them").format(path=shown)
    if not p.endswith((".py", ".ipynb")):
        kind = os.path.splitext(p)[1] or _("a file without an extension")
        return _("{path} is not a .py file, a .ipynb notebook or a folder ({kind}): gradprop reads Python "
                 "code").format(path=shown, kind=kind)
    return None


def submission_names(paths: Sequence[str | os.PathLike]) -> list[tuple[str, str]]:
    """(name, path) for each PATH; a path that cannot be a submission (``path_problem``), a path
    with no name of its own (``..``) or two paths with one name is an error."""
    named: dict[str, list[str]] = {}
    for p in paths:
        name = submission_name(p)
        if os.path.exists(p) and (name in ("", ".", "..")
                                  or os.path.basename(os.path.normpath(os.fspath(p))) in (".", "..")):
            raise GradingError(f"{safe_text(os.fspath(p))}: a submission is a file or a folder of its own; name it "
                               f"(e.g. {os.path.abspath(p)}), not a relative path like '..' or '.'")
        problem = path_problem(p)
        if problem:
            raise GradingError(problem)
        named.setdefault(name, []).append(os.fspath(p))
    for name, ps in list(named.items()):  # submissions/*/hw5.ipynb: each named after its student's folder
        folders = [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in ps]
        if len(ps) > 1 and len(set(folders)) == len(ps) and not set(folders) & set(named):
            del named[name]
            for folder, p in zip(folders, ps):
                named.setdefault(folder, []).append(p)
    clashes = {n: ps for n, ps in named.items() if len(ps) > 1}
    if clashes:
        text = "; ".join(f"{safe_text(n)!r}: {safe_text(', '.join(ps))}" for n, ps in sorted(clashes.items()))
        raise GradingError(f"two submissions would be reported under one name ({text}). A submission is named "
                           f"after its file's stem or its folder: pass each student's folder instead "
                           f"(gradprop grade submissions/*/ --out DIR), or rename the files.")
    reserved = sorted(RESERVED_NAMES & set(named))
    if reserved:
        raise GradingError(f"a submission named {reserved[0]!r} would clash with what the output folder holds")
    return [(n, ps[0]) for n, ps in named.items()]


# --- resuming an interrupted run -------------------------------------------------------------------

#: beside results.json: the fingerprint of what was graded and the result, as plain data
RESUME_FILE = ".gradprop-result.json"


def fingerprint(path: str | os.PathLike, options: GradeOptions) -> str:
    """What a result depends on: gradprop's version, the options, and the bytes of every file the
    submission's box holds (``staging.plan``: the file and what it imports from beside it)."""
    from .staging import plan, reach_parent

    digest = hashlib.sha256(f"{__version__}\n{options!r}\n".encode("utf-8", "replace"))
    for src, dest in plan(path, options.others, options.support, reach_parent(path, options.others)).copies:
        digest.update(os.fsencode(dest) + b"\0")
        try:
            digest.update(hashlib.sha256(src.read_bytes()).digest())
        except OSError:
            digest.update(b"?")
    return digest.hexdigest()


def write_resume(result: SubmissionResult, key: str, out_dir: str | os.PathLike) -> None:
    doc = {"fingerprint": key, "result": safe_tree(result.to_dict())}
    atomic_write(result_folder(out_dir, result.name) / RESUME_FILE, json.dumps(doc, ensure_ascii=False))


def graded_before(out_dir: str | os.PathLike) -> list[str]:
    """The paths of the submissions an earlier run graded into ``out_dir`` (a regrade of one of
    them must not be given the others)."""
    found = []
    try:
        folders = sorted(Path(out_dir).iterdir())
    except OSError:
        return []
    for folder in folders:
        try:
            doc = json.loads((folder / RESUME_FILE).read_text(encoding="utf-8"))
            path = doc["result"]["path"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(path, str) and os.path.exists(path):
            found.append(path)
    return found


def read_resume(name: str, key: str, out_dir: str | os.PathLike) -> SubmissionResult | None:
    """The result a finished earlier run left for this very submission and options, or None."""
    try:
        folder = result_folder(out_dir, name)
        doc = json.loads((folder / RESUME_FILE).read_text(encoding="utf-8"))
        if doc.get("fingerprint") != key or not (folder / "results.json").is_file():
            return None
        result = SubmissionResult.from_dict(doc["result"])
    except (OSError, ValueError, KeyError, TypeError, GradingError):
        return None
    if result.errors:  # a grader failure is tried again
        return None
    return replace(result, name=name)  # the name as the file system has it (it may not be UTF-8)


def grader_failure(name: str, path: str, rubric: Rubric, error: str, lang: str = "en") -> SubmissionResult:
    """A row for a submission whose grading process itself died or failed: not graded; its
    feedback in ``lang`` (``GradeOptions.lang``: the caller is outside the submission's grading)."""
    with use_language(lang):
        text = _("This submission could not be graded: {error}. Nothing has been recorded for it; please tell your "
                 "instructor.").format(error=error)
        items = tuple(ItemResult(n, Fraction(0), _round2(w), "failed", (), _("{name}: not graded ({error}).").format(
            name=n, error=error), error=error) for n, w in rubric.weights if n not in rubric.optional)
    return SubmissionResult(name, os.path.abspath(path), items, text)
