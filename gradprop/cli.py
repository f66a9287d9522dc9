"""The ``gradprop`` command: ``grade``, ``gradescope-bundle`` and (inside a bundle) ``gradescope-run``.

Exit status: 0 when every submission was graded, whatever the grades; 1 when gradprop itself
failed on some submission (its row is still written, with blank cells); 2 for a usage error (an
unreadable rubric, a missing path, two submissions with one name), before anything is graded.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import deque
from multiprocessing.connection import Connection, wait as connection_wait
from typing import Callable, Sequence, TextIO

from . import __version__
from .grading import (GradeOptions, GradingError, Rubric, SubmissionResult, grade_submission, grader_failure,
                      submission_names, write_csv, write_results)

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
        if result.errors:
            summary = f"{result.name}: not graded (gradprop failed on it)"
        else:
            summary = f"{result.name}: {float(result.score):.2f}/{float(result.max_score):.2f}"
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


def _worker_main(conn: Connection) -> None:
    """A grading worker: imports the suite (and JAX) once, then grades what it is sent."""
    from .properties import checks, oracle, profiles, registry, runner  # noqa: F401

    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        name, path, options = job
        try:
            result = grade_submission(path, options, name)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: a blank row, not a dead worker
            result = grader_failure(name, path, options.rubric, f"{type(exc).__name__}: {exc}")
        conn.send(result)


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext):
        self.conn, theirs = context.Pipe()
        self.proc = context.Process(target=_worker_main, args=(theirs,), daemon=True)
        self.proc.start()
        theirs.close()
        self.job: tuple[str, str] | None = None

    def stop(self) -> None:
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

    Workers are fresh interpreters ("spawn": never fork a process that has imported JAX) and each
    grades one submission at a time, so a worker that dies (a submission's process may signal
    it) costs exactly the submission it held: it is tried once more in a new worker, then given
    a row of blanks. The run goes on either way.
    """
    results: list[SubmissionResult] = []
    queue = deque(named)
    attempts: dict[str, int] = {name: 0 for name, _ in named}
    context = multiprocessing.get_context("spawn")
    # a slot is None after its worker died, until there is work for a new one
    workers: list[_Worker | None] = [_Worker(context) for _ in range(max(1, min(jobs, len(named))))]

    def finish(result: SubmissionResult) -> None:
        results.append(result)
        on_result(result)

    try:
        while queue or any(w and w.job for w in workers):
            for i, w in enumerate(workers):
                if queue and (w is None or w.job is None):
                    w = workers[i] = w or _Worker(context)
                    w.job = queue.popleft()
                    try:
                        w.conn.send((*w.job, options))
                    except OSError:  # it died already: seen below as a death while grading
                        pass
            busy = [w for w in workers if w and w.job]
            ready = connection_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for i, w in enumerate(workers):
                if not (w and w.job) or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                name, path = w.job
                w.job = None
                try:
                    if not w.conn.poll():
                        raise EOFError
                    result = w.conn.recv()
                except (EOFError, OSError):  # the worker died while grading it
                    w.proc.join(timeout=5)
                    attempts[name] += 1
                    if attempts[name] < MAX_ATTEMPTS:
                        queue.appendleft((name, path))
                    else:
                        finish(grader_failure(name, path, options.rubric, f"the grading process died (exit code "
                                              f"{w.proc.exitcode}; the submission may have stopped it)"))
                    w.stop()
                    workers[i] = None
                    continue
                finish(result)
    finally:
        for w in workers:
            if w is not None:
                w.stop()
    return results


def cmd_grade(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        named = submission_names(args.paths)
    except GradingError as exc:
        print(f"gradprop grade: error: {exc}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    progress = Progress(len(named))

    def on_result(result: SubmissionResult) -> None:
        write_results(result, args.out)
        progress.update(result)

    try:
        results = grade_all(named, options, jobs, on_result)
    finally:
        progress.close()
    sheet = write_csv(results, options.rubric, args.out)
    failed = [r for r in results if r.errors]
    print(f"graded {len(results) - len(failed)} of {len(results)} submissions: {sheet}")
    for r in sorted(failed, key=lambda r: r.name):
        print(f"gradprop failed on {r.name} (blank cells in grades.csv):", *r.errors, sep="\n  ", file=sys.stderr)
    return 1 if failed else 0


def _options(args: argparse.Namespace) -> GradeOptions:
    rubric = Rubric.load(args.rubric) if args.rubric else Rubric.default()
    if args.time_limit <= 0:
        raise GradingError("--time-limit must be positive")
    if args.max_examples is not None and args.max_examples < 1:
        raise GradingError("--max-examples must be at least 1")
    return GradeOptions(rubric=rubric, strict=args.strict, time_limit=args.time_limit,
                        memory_mb=args.memory_mb, max_examples=args.max_examples)


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import BundleError, write_bundle

    try:
        _options(args)  # a bad rubric fails here, not on Gradescope
        path = write_bundle(args.out, rubric=args.rubric, strict=args.strict, time_limit=args.time_limit,
                            memory_mb=args.memory_mb, max_examples=args.max_examples, wheel=args.wheel)
    except (GradingError, BundleError) as exc:
        print(f"gradprop gradescope-bundle: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment")
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
    p.add_argument("--strict", action="store_true",
                   help="strict findings (mutates-dout, aliases-output, ignores-dout) cost marks")
    p.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="seconds one call into a submission may take (default 10)")
    p.add_argument("--memory-mb", type=int, default=2048, metavar="MB",
                   help="address-space cap of a submission's process (default 2048)")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="generated examples per check (default: the grading profile's fixed budget). "
                        "Grades depend on it: keep it fixed across a course")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradprop", description="Property-based gradient checks for "
                                     "hand-written numpy layers; grading of student submissions.")
    parser.add_argument("--version", action="version", version=f"gradprop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = sub.add_parser("grade", help="grade submissions into results.json files and grades.csv",
                           description="Grade each PATH (a .py file or a folder in the book's layout) "
                                       "in an isolated process; write OUT/<name>/results.json "
                                       "(Gradescope's format) and OUT/grades.csv.")
    grade.add_argument("paths", nargs="+", metavar="PATH")
    grade.add_argument("--out", required=True, metavar="DIR")
    grade.add_argument("-j", "--jobs", type=int, default=0, metavar="N",
                       help="submissions graded in parallel (default: all cores)")
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
    which.add_argument("--chapter", type=int, choices=(5, 6, 7),
                       help="check the items of chapters up to N (a missing one fails)")
    check.add_argument("--strict", action="store_true",
                       help="strict findings (mutates-dout, aliases-output, ignores-dout) fail too")
    check.add_argument("--json", action="store_true", help="print one JSON document (for tools)")
    check.add_argument("-j", "--jobs", type=int, default=0, metavar="N",
                       help="processes checking items side by side (default: 2, or 1 on one core)")
    check.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                       help="seconds one call into your code may take (default 10)")
    check.add_argument("--memory-mb", type=int, default=2048, metavar="MB",
                       help="address-space cap of your code's process (default 2048)")
    check.set_defaults(run=_cmd_check)

    run = sub.add_parser("gradescope-run", help="(used by the bundle's run_autograder) grade ROOT/submission",
                         description="Grade ROOT/submission and write ROOT/results/results.json.")
    run.add_argument("--root", default=os.environ.get("GRADPROP_AUTOGRADER_ROOT", "/autograder"), metavar="ROOT")
    _grading_flags(run)
    run.set_defaults(run=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
