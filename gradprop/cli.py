"""The ``gradprop`` command: ``grade``, ``gradescope-bundle`` and (inside a bundle) ``gradescope-run``.

Exit status: 0 when every submission was graded, whatever the grades; 1 when gradprop itself
failed on some submission (its row is still written, with blank cells); 2 for a usage error (an
unreadable rubric, a missing path, two submissions with one name), before anything is graded.
"""
from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from multiprocessing.connection import Connection, wait as connection_wait
from typing import Callable, Sequence, TextIO

from . import __version__, gradcheck, workers as worker_processes
from .grading import (GradeOptions, GradingError, Rubric, SubmissionResult, fingerprint, grade_submission,
                      grader_failure, graded_before, read_resume, submission_names, support_paths, write_csv, write_resume,
                      write_results)
from .i18n import LANGUAGES, N_, default_language, say
from .isolation import MODES, IsolationError, probe, sweep
from .report import write_report
from .text import safe_name, safe_text

#: times a submission may be in flight when a worker process dies before it is given up
MAX_ATTEMPTS = 2


# --- progress --------------------------------------------------------------------------------------


class Progress:
    """A bar on a terminal; one line per submission otherwise (logs, CI, Gradescope)."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        if self.tty:
            self._draw("")

    def _draw(self, last: str) -> None:
        width = 30
        filled = width * self.done // max(self.total, 1)
        elapsed = time.monotonic() - self.start
        eta = f", ~{elapsed / self.done * (self.total - self.done):.0f} s left" if self.done else ""
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:.0f} s{eta}  {last}"
        self.stream.write(line[:120].ljust(120))
        self.stream.flush()

    def update(self, result: SubmissionResult) -> None:
        self.done += 1
        name = safe_name(result.name)  # a file name a student chose: one line, no escapes
        if result.errors:
            summary = f"{name}: not graded (gradprop failed on it)"
        else:
            summary = f"{name}: {float(result.score):.2f}/{float(result.max_score):.2f}"
        if self.tty:
            self._draw(summary)
        else:
            self.stream.write(f"[{self.done}/{self.total}] {summary} ({result.execution_time:.1f} s)\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --- grading many submissions ----------------------------------------------------------------------

#: seconds a fresh worker may take to import JAX and the suite before it starts its first job
WARMUP_LIMIT = 300.0


def _worker_main(conn: Connection) -> None:
    """A grading worker: imports the suite (and JAX) once, then grades what it is sent.

    It says "started" when a job begins (after its own warm-up) and then sends the result, so
    that the CLI can tell a slow start from a wedged job.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the CLI's to handle
    from .properties import checks, oracle, profiles, registry, runner  # noqa: F401

    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        name, path, options = job
        conn.send(("started", name))
        try:
            result = grade_submission(path, options, name)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: a blank row, not a dead worker
            result = grader_failure(name, path, options.rubric, f"{type(exc).__name__}: {exc}", options.lang)
        conn.send(("done", result))
        # What is left now (JAX, the suite, the examples and answers kept for the next submission)
        # lives as long as the worker: out of the collector's way, which otherwise walked it over
        # and over (a tenth of a submission's time)
        gc.collect()
        gc.freeze()


class _Worker:
    def __init__(self):
        self.conn, theirs = multiprocessing.Pipe()
        self.proc = worker_processes.start(_worker_main, theirs)
        theirs.close()
        self.job: tuple[str, str] | None = None
        self.sent_at = 0.0
        self.started_at: float | None = None

    def give(self, job: tuple[str, str], options: GradeOptions) -> None:
        self.job, self.sent_at, self.started_at = job, time.monotonic(), None
        try:
            self.conn.send((*job, options))
        except OSError:  # it died already: seen as a death while grading
            pass

    def deadline(self, options: GradeOptions) -> float:
        """When a job counts as wedged: the submission's budget plus as much again for our own work."""
        if self.started_at is None:
            return self.sent_at + WARMUP_LIMIT
        return self.started_at + 2 * options.submission_budget + 30.0

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def grade_all(named: Sequence[tuple[str, str]], options: GradeOptions, jobs: int,
              on_result: Callable[[SubmissionResult], None]) -> list[SubmissionResult]:
    """Grade every (name, path) in ``jobs`` worker processes; ``on_result`` sees each result as it
    arrives.

    Workers are forks of a process that has imported the suite (this one, or a fork server:
    ``workers.py``), and each grades one submission at a time. No wait is without a timeout: a worker that dies, or that
    does not finish a job by its deadline (``_Worker.deadline``), is killed, and the submission it
    held is tried once more in a new worker; after a second time it gets a row of blanks that says
    what happened. The run goes on either way. A KeyboardInterrupt (Ctrl-C, or SIGTERM through
    ``cmd_grade``) kills the workers and propagates: what finished has reached ``on_result``.
    """
    results: list[SubmissionResult] = []
    queue = deque(named)
    attempts: dict[str, list[str]] = {name: [] for name, _ in named}
    # a slot is None after its worker died, until there is work for a new one
    workers: list[_Worker | None] = [_Worker() for _ in range(max(1, min(jobs, len(named))))]
    started_pids = [w.proc.pid for w in workers if w]

    def finish(result: SubmissionResult) -> None:
        results.append(result)
        on_result(result)

    def lost(i: int, w: _Worker, why: str) -> None:
        assert w.job is not None
        name, path = w.job
        w.job = None
        w.stop(kill=True)
        workers[i] = None
        attempts[name].append(why)
        if len(attempts[name]) < MAX_ATTEMPTS:
            queue.appendleft((name, path))
        else:
            finish(grader_failure(name, path, options.rubric, say(
                options.lang, N_("the grading process failed on it twice ({attempts}); this is not counted against "
                                 "the submission"), attempts="; ".join(attempts[name])), options.lang))

    try:
        while queue or any(w and w.job for w in workers):
            for i, w in enumerate(workers):
                if queue and (w is None or w.job is None):
                    if w is None:
                        w = workers[i] = _Worker()
                        started_pids.append(w.proc.pid)
                    w.give(queue.popleft(), options)
            busy = [w for w in workers if w and w.job]
            wait_for = max(0.0, min(w.deadline(options) for w in busy) - time.monotonic())
            ready = connection_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=wait_for)
            now = time.monotonic()
            for i, w in enumerate(workers):
                if not (w and w.job):
                    continue
                if w.conn in ready or w.proc.sentinel in ready:
                    try:
                        if not w.conn.poll():
                            raise EOFError
                        kind, value = w.conn.recv()
                    except (EOFError, OSError, ValueError, TypeError):  # it died while grading
                        w.proc.join(timeout=5)
                        lost(i, w, say(options.lang, N_("it died with exit code {code}"), code=w.proc.exitcode))
                        continue
                    if kind == "started":
                        w.started_at = now
                    else:
                        w.job = None
                        finish(value)
                elif now >= w.deadline(options):
                    waited = now - (w.started_at or w.sent_at)
                    lost(i, w, say(options.lang, N_("it stopped answering and was killed after {s} s"),
                                   s=f"{waited:.0f}"))
    finally:
        abort = bool(queue) or any(w and w.job for w in workers)  # interrupted: no goodbyes
        for w in workers:
            if w is not None:
                w.stop(kill=abort)
        sweep(started_pids)
    return results


def cmd_grade(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        named = submission_names(args.paths)
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise GradingError(f"--out {safe_text(args.out)}: exists and is not a folder")
        jobs = _jobs(args.jobs)
        isolation = probe().require(options.isolation)
    except (GradingError, IsolationError) as exc:
        print(f"gradprop grade: error: {exc}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    print(f"gradprop grade: {isolation.describe()}", file=sys.stderr)
    if isolation.mode == "weak":
        print("gradprop grade: WARNING: --isolation weak: a submission may do here what the missing layers would stop "
              "(README: \"The sandbox: what is promised\"); grades.csv, results.json and report.html say so",
              file=sys.stderr)
    options = replace(options, others=tuple(dict.fromkeys(
        [os.path.abspath(path) for _, path in named] + graded_before(args.out))))
    keys = {name: fingerprint(path, options) for name, path in named}
    _warn_about_neighbours(named, options)
    done: list[SubmissionResult] = []
    todo = []
    for name, path in named:
        earlier = None if args.fresh else read_resume(name, keys[name], args.out)
        if earlier is not None:
            done.append(earlier)
        else:
            todo.append((name, path))
    if done:
        print(f"gradprop grade: {len(done)} submission(s) kept from an earlier run with the same files and "
              f"options (--fresh grades them again)", file=sys.stderr)
    progress = Progress(len(todo))
    results: list[SubmissionResult] = []

    def on_result(result: SubmissionResult) -> None:
        results.append(result)
        write_results(result, args.out)
        if not result.errors:
            write_resume(result, keys[result.name], args.out)
        progress.update(result)

    interrupted = False
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    run_tmp = tempfile.mkdtemp(prefix="gradprop-run-")
    os.chmod(run_tmp, 0o711)  # a child with a uid of its own must reach its box here; nobody may list it
    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = run_tmp  # every box of this run lives here (removed at the end)
    try:
        if todo:
            grade_all(todo, options, jobs, on_result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if old_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_tmp
        shutil.rmtree(run_tmp, ignore_errors=True)
        progress.close()
        sheet = write_csv(done + results, options.rubric, args.out)
    results = done + results
    write_report(results, options.rubric, args.out)
    failed = [r for r in results if r.errors]
    if interrupted:
        print(f"gradprop grade: interrupted: {len(results)} of {len(named)} submissions finished, in {sheet}; "
              f"run the same command again to grade the rest", file=sys.stderr)
        return 130
    print(f"graded {len(results) - len(failed)} of {len(results)} submissions: {sheet}")
    for r in sorted(failed, key=lambda r: r.name):
        print(f"gradprop failed on {safe_name(r.name)} (blank cells in grades.csv):", *r.errors, sep="\n  ",
              file=sys.stderr)
    return 1 if failed else 0


def _warn_about_neighbours(named: Sequence[tuple[str, str]], options: GradeOptions) -> None:
    """A file that imports a file beside it that defines items of its own: a helper of the
    student's, or, in a folder of single-file submissions graded one at a time, a classmate's."""
    from .loader import BOOK_ITEMS
    from .staging import neighbours, plan, reach_parent

    items = [n for group in BOOK_ITEMS for n in group]
    for _name, path in named:
        if not os.path.isfile(path):
            continue
        files = plan(path, options.others, options.support, reach_parent(path, options.others))
        for other in neighbours(files, items):
            print(f"gradprop grade: note: {safe_name(os.path.basename(path))} imports {safe_name(other)} from beside it, "
                  f"which defines items of its own; it is graded with it. If {safe_name(other)} is another student's, "
                  f"grade them together (gradprop grade FOLDER/*.py) so that neither gets the other's file",
                  file=sys.stderr)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _jobs(value: int | None) -> int:
    if value is None:
        return os.cpu_count() or 1
    if value < 1:
        raise GradingError(f"-j must be at least 1, not {value}")
    return value


#: the smallest --time-limit: below it, starting the sandbox's Python alone would time out
TIME_LIMIT_FLOOR = 0.1
#: the smallest --memory-mb: Python with numpy needs about this much address space to start
MEMORY_FLOOR_MB = 256


def _options(args: argparse.Namespace) -> GradeOptions:
    rubric = Rubric.load(args.rubric, args.chapter) if args.rubric else Rubric.default(args.chapter)
    if not math.isfinite(args.time_limit) or args.time_limit < TIME_LIMIT_FLOOR:
        raise GradingError(f"--time-limit must be a number of seconds >= {TIME_LIMIT_FLOOR:g}, not {args.time_limit:g}")
    if args.time_limit > 3600:
        raise GradingError(f"--time-limit is seconds per call: {args.time_limit:g} is more than an hour")
    if args.memory_mb < MEMORY_FLOOR_MB:
        raise GradingError(f"--memory-mb must be at least {MEMORY_FLOOR_MB} (Python and numpy need that much), "
                           f"not {args.memory_mb}")
    if args.max_examples is not None and args.max_examples < 1:
        raise GradingError("--max-examples must be at least 1")
    support = support_paths(args.support or [], Path.cwd(), "--support")
    return GradeOptions(rubric=rubric, strict=args.strict, time_limit=args.time_limit,
                        memory_mb=args.memory_mb, max_examples=args.max_examples, isolation=args.isolation,
                        lang=args.lang or default_language(), extra_support=support)


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import BundleError, write_bundle

    try:
        options = _options(args)  # a bad rubric fails here, not on Gradescope
        path = write_bundle(args.out, rubric=args.rubric, strict=args.strict, time_limit=args.time_limit,
                            memory_mb=args.memory_mb, max_examples=args.max_examples, wheel=args.wheel,
                            lang=args.lang, chapter=args.chapter, isolation=args.isolation,
                            support=options.extra_support, rubric_support=options.rubric.support)
    except (GradingError, BundleError) as exc:
        print(f"gradprop gradescope-bundle: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment")
    return 0


def cmd_wheel(args: argparse.Namespace) -> int:
    """A wheel of this gradprop, for students to ``pip install`` (gradprop is on no public index)."""
    from .bundle import BundleError, build_wheel

    try:
        path = build_wheel(args.out)
    except BundleError as exc:
        print(f"gradprop wheel: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: pip install {path.name} installs this gradprop (its dependencies come from PyPI)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .bundle import run_autograder

    try:
        options = _options(args)
    except GradingError as exc:
        print(f"gradprop gradescope-run: error: {exc}", file=sys.stderr)
        return 2
    return run_autograder(args.root, options)


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import cmd_check

    return cmd_check(args)


# --- the parser ------------------------------------------------------------------------------------


def _grading_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rubric", metavar="FILE", help="a TOML rubric: item weights and which items count")
    p.add_argument("--chapter", type=int, metavar="N",
                   help="grade as of chapter N: the items and the extensions (label indices, rank > 2 input, "
                        "padding) the book has introduced by then count; replaces the rubric's `chapter`")
    p.add_argument("--strict", action="store_true",
                   help="strict findings (mutates-dout, aliases-output, ignores-dout) cost marks")
    p.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="seconds one call into a submission may take (default 10)")
    p.add_argument("--memory-mb", type=int, default=2048, metavar="MB",
                   help="address-space cap of a submission's process (default 2048)")
    p.add_argument("--isolation", choices=MODES, default="auto",
                   help="auto: every isolation layer this machine has (printed at the start), and refuse to grade "
                        "where the file system, the grader's processes or the network would be unprotected, or "
                        "submission code would run as root; weak: grade with what there is (never as root), and "
                        "say so in every output; strict: refuse to grade where any layer is missing")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="generated examples per check (default: the grading profile's fixed budget). "
                        "Grades depend on it: keep it fixed across a course")
    p.add_argument("--lang", choices=LANGUAGES, default=None,
                   help="language of the feedback (default: the locale's, from LANGUAGE, LC_ALL, LC_MESSAGES "
                        "or LANG; English when it is none of these)")
    support_flag(p)


def support_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--support", action="append", metavar="DIR_OR_FILE",
                   help="the course's files every submission gets beside it, read-only, the course's copy winning "
                        "(e.g. --support course/common: `from common.functions import softmax` finds it); "
                        "repeat it for more. Items taken from them earn no marks unless the rubric's "
                        "support_counts says so")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradprop", description="Property-based gradient checks for "
                                     "hand-written numpy layers; grading of student submissions.")
    parser.add_argument("--version", action="version", version=f"gradprop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = sub.add_parser("grade", help="grade submissions into results.json files and grades.csv",
                           description="Grade each PATH (a .py file, a .ipynb notebook or a folder) "
                                       "in an isolated process; write OUT/<name>/results.json "
                                       "(Gradescope's format) and OUT/grades.csv.")
    grade.add_argument("paths", nargs="+", metavar="PATH")
    grade.add_argument("--out", required=True, metavar="DIR")
    grade.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                       help="submissions graded in parallel (default: all cores)")
    grade.add_argument("--fresh", action="store_true",
                       help="grade every submission again, even those an interrupted earlier run with the same "
                            "files and options finished (kept by default)")
    _grading_flags(grade)
    grade.set_defaults(run=cmd_grade)

    bundle = sub.add_parser("gradescope-bundle", help="write the autograder zip to upload to Gradescope",
                            description="Write a Gradescope autograder zip: setup.sh, run_autograder and "
                                        "a wheel of this gradprop. The grading options given here are "
                                        "baked into run_autograder.")
    bundle.add_argument("--out", required=True, metavar="ZIP")
    bundle.add_argument("--wheel", metavar="FILE", help="use this gradprop wheel instead of building one")
    _grading_flags(bundle)
    bundle.set_defaults(run=cmd_bundle)

    check = sub.add_parser("check", help="check your own layer file: one line per item, the first finding in full",
                           description="Check the layers in PATH (a .py file, a folder in the book's layout, "
                                       "or a notebook) in an isolated process. Exit status: 0 when every "
                                       "checked item holds, 1 when one fails, 2 for a usage error.")
    check.add_argument("path", metavar="PATH")
    which = check.add_mutually_exclusive_group()
    which.add_argument("--items", metavar="A,B", help="check only these items (a missing one fails)")
    which.add_argument("--chapter", type=int, metavar="N",
                       help="check the items of chapters up to N, and what later chapters add to them, as grade "
                            "--chapter N does (a missing one fails)")
    check.add_argument("--strict", action="store_true",
                       help="strict findings (mutates-dout, aliases-output, ignores-dout) fail too")
    check.add_argument("--json", action="store_true", help="print one JSON document (for tools)")
    check.add_argument("--lang", choices=LANGUAGES, default=None,
                       help="language of every line check prints (default: the locale's)")
    check.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                       help="processes checking items side by side (default: 2, or 1 on one core)")
    check.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                       help="seconds one call into your code may take (default 10)")
    check.add_argument("--memory-mb", type=int, default=2048, metavar="MB",
                       help="address-space cap of your code's process (default 2048)")
    support_flag(check)
    check.set_defaults(run=_cmd_check)

    wheel = sub.add_parser("wheel", help="write a wheel of this gradprop, for students to pip install",
                           description="Write gradprop-VERSION-py3-none-any.whl into DIR (from the checkout of an "
                                       "editable install, else from the installed files).")
    wheel.add_argument("--out", default=".", metavar="DIR")
    wheel.set_defaults(run=cmd_wheel)
    gradcheck.add_parser(sub)  # gradprop gradcheck PATH: the book's gradient check (gradprop/gradcheck.py)

    run = sub.add_parser("gradescope-run", help="(used by the bundle's run_autograder) grade ROOT/submission",
                         description="Grade ROOT/submission and write ROOT/results/results.json.")
    run.add_argument("--root", default=os.environ.get("GRADPROP_AUTOGRADER_ROOT", "/autograder"), metavar="ROOT")
    _grading_flags(run)
    run.set_defaults(run=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # What Hypothesis draws must not depend on what else is installed: a package's Hypothesis
    # plugin (an entry point run at import) may register strategies or load settings; gradprop's
    # commands, and the processes they start, load none (trio's alone cost a second per process)
    os.environ["HYPOTHESIS_NO_PLUGINS"] = "1"
    args = build_parser().parse_args(argv)
    if _uses_workers(args):
        worker_processes.prestart()  # it imports the suite while this process reads the registry
    return args.run(args)


def _uses_workers(args: argparse.Namespace) -> bool:
    """Whether the command will fork workers: ``grade`` always, ``check`` as ``check.forks`` says."""
    if args.command == "check":
        from .check import forks

        return forks(args)
    return args.command == "grade"


if __name__ == "__main__":
    sys.exit(main())
