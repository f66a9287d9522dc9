"""``gradprop check PATH``: the student's loop. One line per item, then each failing item's first
finding in full, with its reproduction.

The submission runs in the sandbox, as under ``gradprop grade``, and each item goes through the
grader's own ``evaluate_item``. Two things differ, both for speed: a lean, derandomized example
budget (``EXAMPLES``; ``tests/test_check.py`` proves it still catches every broken fixture and
passes every correct one), and each item stops at its first counted finding.

Exit status: 0 when every checked item holds, 1 when one fails (or the file cannot be imported,
or an item asked for with ``--items``/``--chapter`` is not defined), 2 for a usage error.

``--json`` prints one document (``SCHEMA`` is its version; fields are only ever added)::

    {"schema": 1, "path": "/abs/my_layers.py", "ok": false, "exit_code": 1, "strict": false,
     "chapter": null, "examples": 3, "import_error": null, "error": null, "read": [],
     "items": [{"name": "Affine", "status": "failed", "asked": false, "tags": ["wrong-gradient"],
                "findings": [{"property": "backward", "about": "...", "tag": "wrong-gradient",
                              "tier": "core", "chapter": null, "counted": true,
                              "message": "...Reproduce:..."}],
                "not_run": 6, "scaffold": null}, ...]}

``status`` is ``passed``, ``warning`` (only findings that do not count: strict ones without
``--strict``, extensions a later chapter adds without ``--chapter`` reaching it), ``failed``,
``not-defined`` or ``error`` (gradprop itself failed). ``findings`` are the failed properties,
those that count first, each group in the suite's order; the first is the one shown in full.
``scaffold`` names the course's file (``--support``) an item was taken from, which is then not
checked. ``chapter`` is set for an extension (the chapter that adds it). ``not_run`` counts the
properties skipped after the item's first counted finding. ``asked`` is true for items named by
``--items`` or ``--chapter`` (a missing one of those fails the run). ``error`` is set (and
``items`` empty) when gradprop could not start the process the submission runs in. ``read`` says
how the submission was read (for a folder, the file each item came from; what was left out).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO

from .findings import CORE
from .grading import GradingError, chapter_number, path_problem, support_paths
from .i18n import N_, _, language, use

#: generated examples per input strategy (grade draws 25). Lean: 2 already catch every broken
#: fixture, 3 keeps one in reserve; 5 would cost a cold check half as much again (more programs
#: for XLA to compile), for nothing the fixtures can show
EXAMPLES = 3
SCHEMA = 1


class UsageError(ValueError):
    """A bad PATH, item name or chapter: exit status 2, nothing checked."""


class SandboxFailure(RuntimeError):
    """gradprop could not start the process your code runs in: nothing checked."""


def select_items(items: str | None = None, chapter: int | None = None) -> tuple[list[Any], bool]:
    """The registry items to check, and whether they were asked for (by name or chapter)."""
    from .properties.registry import ITEMS, items_up_to

    if chapter is not None:
        chosen = list(items_up_to(chapter))
        if not chosen:
            raise UsageError(_("no item belongs to chapter {n} or earlier").format(n=chapter))
        return chosen, True
    if not items:
        return list(ITEMS), False
    by_name = {name.lower(): item for item in ITEMS for name in item.names}
    wanted = [name.strip() for name in items.split(",") if name.strip()]
    unknown = [name for name in wanted if name.lower() not in by_name]
    if unknown or not wanted:
        raise UsageError(_("unknown item(s) {names}; the items are {known}").format(
            names=", ".join(unknown) or "''", known=", ".join(item.name for item in ITEMS)))
    chosen = {by_name[name.lower()].name for name in wanted}
    return [item for item in ITEMS if item.name in chosen], True


# --- checking --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemCheck:
    """What ``check`` found for one item."""

    name: str
    status: str  # passed / warning / failed / not-defined / error
    asked: bool
    #: the failed properties' outcomes (``runner.Outcome``): those that count first, in the suite's order
    findings: tuple[Any, ...] = ()
    #: whether each finding counts (fails the item)
    counted: tuple[bool, ...] = ()
    not_run: int = 0
    #: the course's file the item was taken from (``--support``): not the student's own, not checked
    scaffold: str | None = None

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.tag for o in self.findings))

    @property
    def fails_run(self) -> bool:
        return self.status in ("failed", "error") or (self.status == "not-defined" and self.asked)


@dataclass(frozen=True)
class CheckResult:
    path: str
    strict: bool
    items: tuple[ItemCheck, ...]
    import_error: str | None = None
    examples: int = EXAMPLES
    seconds: float = field(default=0.0, compare=False)
    chapter: int | None = None
    #: gradprop's own failure to check anything (the sandbox would not start), or None
    error: str | None = None
    #: how the submission was read: the file each item came from (a folder), what was left out
    read: tuple[str, ...] = ()

    @property
    def defines_nothing(self) -> bool:
        """Loaded fine, and defines none of the items checked (an empty file, the wrong file)."""
        return self.import_error is None and self.error is None and bool(self.items) and all(
            r.status == "not-defined" and not r.scaffold for r in self.items)

    @property
    def ok(self) -> bool:
        return self.import_error is None and self.error is None and not self.defines_nothing \
            and not any(r.fails_run for r in self.items)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


@dataclass(frozen=True)
class Options:
    """How to check (plain data: it crosses to the checking processes)."""

    asked: bool = False
    strict: bool = False
    #: --chapter: the extensions of chapters up to it count
    chapter: int | None = None
    time_limit: float = 10.0
    memory_mb: int = 2048
    examples: int = EXAMPLES
    #: language of the findings (en, ko, ja); None: the locale's
    lang: str | None = None
    #: the course's files beside the file checked (``--support``), as when it is graded
    support: tuple[str, ...] = ()


def settings(examples: int = EXAMPLES):
    """The grading profile (derandomized: the same verdict on every run) with the lean budget."""
    from hypothesis import settings as Settings

    from .properties import profiles  # noqa: F401 - registers the grading profile

    return Settings(Settings.get_profile("grading"), max_examples=examples)


def counts(prop: Any, options: Options) -> bool:
    """Whether a failure of ``prop`` fails its item: a core check always, a strict one with
    --strict, an extension (what a later chapter adds) once --chapter reaches its chapter."""
    if getattr(prop, "chapter", None) is not None:
        return options.chapter is not None and prop.chapter <= options.chapter
    return prop.tier == CORE or options.strict


def check_item(session: Any, item: Any, origin: str, options: Options = Options()) -> ItemCheck:
    """Check one item of the layer set behind ``session``, stopping at its first counted finding."""
    from .properties.checks import properties_for
    from .properties.runner import evaluate_item

    if session.import_error is None and session.resolve(item.names) is None:
        return ItemCheck(item.name, "not-defined", options.asked)
    scaffold = session.from_support(item.names) if session.import_error is None else None
    if scaffold is not None:
        return ItemCheck(item.name, "not-defined", options.asked, scaffold=scaffold)
    props = {p.name: p for p in properties_for(item)}
    outcomes = evaluate_item(session, item, origin, settings(options.examples),
                             stop=lambda prop: counts(prop, options))
    failed = [o for o in outcomes if not o.passed]
    failed.sort(key=lambda o: not counts(props[o.prop], options))  # stable: the suite's order within each
    counted = tuple(counts(props[o.prop], options) for o in failed)
    status = "failed" if any(counted) else "warning" if failed else "passed"
    return ItemCheck(item.name, status, options.asked, tuple(failed), counted, len(props) - len(outcomes))


def _progress(stream: TextIO | None):
    """A one-line progress report on a terminal (stderr), nothing otherwise."""
    if stream is None or not (hasattr(stream, "isatty") and stream.isatty()):
        return lambda done, total, name: None
    start = time.monotonic()

    def show(done: int, total: int, name: str | None) -> None:
        text = "" if name is None else _("checking {name} ({i}/{n}, {s:.0f} s)").format(
            name=name, i=done + 1, n=total, s=time.monotonic() - start)
        stream.write("\r" + text.ljust(60) + ("" if name else "\r"))
        stream.flush()

    return show


def run_check(path: str, items: Sequence[Any], options: Options = Options(), progress: TextIO | None = None,
              jobs: int = 1) -> CheckResult:
    """Load ``path`` in the sandbox and check each of ``items`` on it, in ``jobs`` processes."""
    path = os.path.abspath(os.path.expanduser(path))
    started = time.perf_counter()
    show = _progress(progress)
    error = None
    try:
        if jobs > 1 and len(items) > 1:
            results, import_error, read = _in_parallel(path, items, options, jobs, show)
        else:
            results, import_error, read = _check_items(path, items, options,
                                                       lambda i, name: show(i, len(items), name))
    except SandboxFailure as exc:
        results, import_error, read, error = [], None, [], str(exc)
    finally:
        show(len(items), len(items), None)
    return CheckResult(path, options.strict, tuple(results), import_error, options.examples,
                       time.perf_counter() - started, options.chapter, error, tuple(read))


def _check_items(path: str, items: Sequence[Any], options: Options,
                 on_item=lambda i, name: None) -> tuple[list[ItemCheck], str | None, list[str]]:
    """Each item in turn, on one sandboxed copy of the layer set: (results, import error, how the
    submission was read: which file each item came from, what loading left out)."""
    from .grading import GradeOptions, _Clock, _ItemSession, how_it_was_read
    from .properties.assertions import origin_of
    from .sandbox import SandboxSession

    # the running-time caps of `gradprop grade`: per item, and for the whole file
    budgets = GradeOptions(time_limit=options.time_limit)
    clock = _Clock(budgets.submission_budget)
    results: list[ItemCheck] = []
    with use(options.lang):  # the sandbox's messages (what it copied, what loading said) too
        try:
            session = SandboxSession(path, time_limit=options.time_limit, memory_mb=options.memory_mb,
                                     support=options.support)
        except Exception as exc:  # noqa: BLE001 - ours, not the submission's
            raise SandboxFailure(str(exc)) from None
    with session, use(options.lang):
        read = how_it_was_read(path, session.origins, session.load_notes)
        if session.import_error:
            return [], session.import_error, read
        for i, item in enumerate(items):
            on_item(i, item.name)
            view = _ItemSession(session, item.name, budgets.item_budget, clock)
            try:
                results.append(check_item(view, item, origin_of(path), options))
            except Exception as exc:  # noqa: BLE001 - a bug of ours: say so, check the other items
                results.append(_our_error(item.name, options.asked, f"{type(exc).__name__}: {exc}"))
    return results, None, read


def _our_error(item: str, asked: bool, error: str, text: str | None = None) -> ItemCheck:
    """An item gradprop could not check: its own bug (``error``), or ``text`` saying what happened."""
    from .properties.runner import Outcome

    text = text or _("gradprop itself failed while checking {item} (not a fault of your code; please report "
                     "it): {error}").format(item=item, error=error)
    return ItemCheck(item, "error", asked, (Outcome(item, "-", CORE, N_("gradprop itself"), "gradprop-error", text),),
                     (True,))


def _worker(conn: Any, path: str, names: list[str], options: Options) -> None:
    """A checking process (a fork, ``workers.py``): its share of the items,
    one message as each starts, then ("done", results, import error, how it was read)."""
    from .properties.registry import REGISTRY

    items = [REGISTRY[name] for name in names]
    try:
        conn.send(("done", *_check_items(path, items, options, lambda i, name: conn.send(("item", name)))))
    except SandboxFailure as exc:
        conn.send(("failed", str(exc)))


def _in_parallel(path: str, items: Sequence[Any], options: Options, jobs: int,
                 show) -> tuple[list[ItemCheck], str | None, list[str]]:
    """Items dealt round-robin to ``jobs`` worker processes (a fixed share each: the same
    process, and so the same sandboxed copy, checks the same items on every run)."""
    from multiprocessing import Pipe
    from multiprocessing.connection import wait

    from . import workers
    from .isolation import sweep

    shares = [[item.name for item in items[i::jobs]] for i in range(min(jobs, len(items)))]
    running = {}
    for share in shares:
        ours, theirs = Pipe(duplex=False)
        proc = workers.start(_worker, theirs, path, share, options)
        theirs.close()
        running[ours] = (proc, share)
    pids = [proc.pid for proc, _ in running.values()]
    found: dict[str, ItemCheck] = {}
    import_error, read, started = None, None, 0
    try:
        while running:
            for conn in wait(list(running)):
                proc, share = running[conn]
                try:
                    message = conn.recv()
                except EOFError:  # the process died (a submission may signal its parent)
                    proc.join()
                    for name in share:
                        found.setdefault(name, _our_error(name, options.asked, "", _(
                            "{item} was not checked: the process checking it died (exit code {code}); your "
                            "code may have stopped it").format(item=name, code=proc.exitcode)))
                    del running[conn]
                    continue
                if message[0] == "item":
                    show(started, len(items), message[1])
                    started += 1
                elif message[0] == "failed":
                    raise SandboxFailure(message[1])
                else:
                    _kind, results, error, notes = message
                    found.update((r.name, r) for r in results)
                    import_error, read = import_error or error, read or notes
                    proc.join()
                    del running[conn]
    finally:
        for proc, _share in running.values():
            proc.kill()
            proc.join()
        sweep(pids)  # what the boxes of a killed (or signalled) process left
    if import_error:
        return [], import_error, read or []
    return [found[item.name] for item in items], None, read or []


# --- reporting -------------------------------------------------------------------------------------


class _Style:
    CODES = {"ok": "32", "bad": "31", "warn": "33", "bold": "1", "dim": "2"}

    def __init__(self, color: bool):
        self.color = color

    def __call__(self, kind: str, text: str) -> str:
        return f"\x1b[{self.CODES[kind]}m{text}\x1b[0m" if self.color else text


def use_color(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return bool(hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR"))


MARKS = {"passed": ("✓", "ok"), "warning": ("⚠", "warn"), "failed": ("✗", "bad"), "error": ("✗", "bad"),
         "not-defined": ("✗", "bad")}


def render(result: CheckResult, color: bool = False) -> str:
    """The human report: one line per item, then each failing item's first finding in full."""
    style = _Style(color)
    if result.error is not None:
        return "\n".join([style("bad", "✗ " + _("gradprop could not start the process your code runs in, so no "
                                                 "item was checked (not a fault of your code):")),
                          _indent(result.error.rstrip()), ""])
    read = [style("dim", _("How your file was read:")), *(style("dim", _indent(n)) for n in result.read)]
    if result.import_error is not None:
        return "\n".join([style("bad", "✗ " + _("{path} could not be imported, so no item was checked:").format(
            path=result.path)), _indent(result.import_error.rstrip()), *(read if result.read else []), ""])
    if result.defines_nothing:
        return "\n".join([style("bad", "✗ " + _("{path} defines none of the items ({names}): nothing was checked. "
                                                 "Is it the file with your layers?").format(
            path=result.path, names=", ".join(r.name for r in result.items))),
            *(read if result.read else []), ""])
    lines = []
    missing = [r.name for r in result.items if r.status == "not-defined" and not r.asked]
    for r in result.items:
        if r.name in missing:
            continue
        mark, kind = MARKS[r.status]
        text = _("not defined") if r.status == "not-defined" else " ".join(f"[{t}]" for t in r.tags)
        if r.status == "warning":
            text += "  " + _warning_note(r.findings[0])
        lines.append(f"{style(kind, mark)} {r.name:<20} {text}".rstrip())
    if missing:
        lines.append(style("dim", "· " + _("not defined in this file (not checked): {names}").format(
            names=", ".join(missing))))
    for r in result.items:
        if r.scaffold:
            lines.append(style("dim", "· " + _("{name} comes from the course's {origin}, not from your file "
                                                 "(not checked)").format(name=r.name, origin=r.scaffold)))
    if result.read:
        lines += read
    for r in result.items:
        if not r.fails_run or not r.findings:  # warnings stay on their item's line (--strict shows them)
            continue
        first, *rest = r.findings
        mark, kind = MARKS[r.status]
        head = f"{r.name}: {first.prop} ({about(first)}) [{first.tag}]"
        lines += ["", style("bold", style(kind, f"{mark} {head}"))]
        lines.append(_indent(first.message.rstrip()))
        if rest:
            lines.append(_("  also failing: {props}").format(props=", ".join(
                f"{o.prop} [{o.tag}]" + ("" if counted else " " + _warning_note(o))
                for o, counted in zip(rest, r.counted[1:]))))
        if r.not_run:
            lines.append(style("dim", _("  {n} more checks of {item} not run: fix this finding and check "
                                        "again").format(n=r.not_run, item=r.name)))
    failing = [r.name for r in result.items if r.fails_run]
    checked = [r for r in result.items if r.status != "not-defined" or r.asked]
    lines.append("")
    if failing:
        lines.append(style("bad", _("{n} of {total} checked items fail: {names}").format(
            n=len(failing), total=len(checked), names=", ".join(failing))))
    else:
        lines.append(style("ok", _("all {total} checked items hold").format(total=len(checked))))
    lines.append(style("dim", _("{examples} generated examples per check, {s:.1f} s. `gradprop grade` "
                                "tries more.").format(examples=result.examples, s=result.seconds)))
    return "\n".join(lines) + "\n"


def about(outcome: Any) -> str:
    """What the finding's property checks, in the student's language (as grade's feedback says it)."""
    from .grading import _about

    return _about(outcome)


def _warning_note(outcome: Any) -> str:
    """Why a finding does not fail its item."""
    if getattr(outcome, "chapter", None) is not None:
        return _("(what ch. {n} adds: it counts with --chapter {n})").format(n=outcome.chapter)
    return _("(a warning: it counts with --strict)")


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line.strip() else "" for line in text.splitlines())


def as_json(result: CheckResult) -> dict[str, Any]:
    """The ``--json`` document (see the module docstring)."""
    return {
        "schema": SCHEMA, "path": result.path, "ok": result.ok, "exit_code": result.exit_code,
        "strict": result.strict, "chapter": result.chapter, "examples": result.examples,
        "import_error": result.import_error, "error": result.error, "read": list(result.read),
        "items": [{"name": r.name, "status": r.status, "asked": r.asked, "tags": list(r.tags), "scaffold": r.scaffold,
                   "findings": [{"property": o.prop, "about": o.about, "tag": o.tag, "tier": o.tier,
                                 "chapter": getattr(o, "chapter", None), "counted": counted,
                                 "message": o.message} for o, counted in zip(r.findings, r.counted)],
                   "not_run": r.not_run} for r in result.items],
    }


# --- the command -----------------------------------------------------------------------------------


def jobs_for(requested: int | None) -> int:
    """The processes checking items side by side: ``-j`` when given, else 2 (1 on one core)."""
    return requested if requested else min(2, os.cpu_count() or 1)


def forks(args: argparse.Namespace) -> bool:
    """Whether ``cmd_check`` will check in worker processes: two or more of them, for more than
    one item (told from ``--items`` as written, before the registry is read)."""
    return jobs_for(args.jobs) > 1 and not (args.items and "," not in args.items)


def cmd_check(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    with use(args.lang):  # every line check prints, the usage errors too, in the student's language
        return _cmd_check(args, out or sys.stdout, err or sys.stderr)


def _cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        path = os.path.expanduser(args.path)
        problem = path_problem(path)
        if problem:
            raise UsageError(problem)
        if args.time_limit <= 0:
            raise UsageError(_("--time-limit must be positive"))
        if args.jobs is not None and args.jobs < 1:
            raise UsageError(_("-j must be at least 1, not {n}").format(n=args.jobs))
        if args.chapter is not None:
            try:
                chapter_number(args.chapter, "--chapter")
            except GradingError as exc:
                raise UsageError(str(exc)) from None
        items, asked = select_items(args.items, args.chapter)
        try:
            support = support_paths(args.support or [], Path.cwd(), "--support")
        except GradingError as exc:
            raise UsageError(str(exc)) from None
    except UsageError as exc:
        print(_("gradprop check: error: {error}").format(error=exc), file=err)
        return 2
    options = Options(asked, args.strict, args.chapter, args.time_limit, args.memory_mb, lang=language(),
                      support=support)
    result = run_check(path, items, options, progress=err, jobs=jobs_for(args.jobs))
    if args.json:
        out.write(json.dumps(as_json(result), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render(result, use_color(out)))
    return result.exit_code
