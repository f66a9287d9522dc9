"""The on-disk store gives back exactly what was computed, and never fails a run."""
from __future__ import annotations

import contextlib
import inspect
import os
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from gradprop.properties import oracle, runner, store as S
from gradprop.properties.registry import REGISTRY

VALUES = [
    np.float64(2.5), np.int64(-3), np.asarray(3.0), np.arange(6.0).reshape(2, 3).T, np.zeros((0, 3)),
    np.eye(3, dtype=np.int64)[[2, 0]], np.array([True, False]),
    (np.asarray(1.0), {"x": np.ones((2, 1)), "W": np.full((1, 2), -0.0)}),
    {"init": {"dropout_ratio": 0.5, "stride": 2}, "inputs": {"x": np.ones(2), "train_flg": True}, "seed": 2**32 - 1,
     "extra": {}, "none": None, "list": [1, -0.0, 1e-300, "s"]},
]


def same(a, b) -> bool:
    """Equal values of the same types, dtypes and shapes, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            return False
        return a.dtype.kind != "f" or np.array_equal(np.signbit(a), np.signbit(b))  # -0.0 stays -0.0
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b and str(a) == str(b)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_pack_round_trips_values_types_and_shapes(value):
    assert same(S.unpack(S.pack(value)), value)


def test_same_sees_differences():
    """The comparison above is not vacuous."""
    assert not same(np.asarray(3.0), np.asarray([3.0]))
    assert not same(np.float64(1.0), 1.0)
    assert not same(np.asarray(-0.0), np.asarray(0.0))
    assert not same((1, 2), [1, 2])


@pytest.mark.parametrize("value", [object(), np.array([None]), {1: 2}, {"@a": 0}, {1.5}])
def test_what_needs_pickle_is_refused(value):
    with pytest.raises(TypeError):
        S.pack(value)


def test_a_store_gives_back_what_was_put_in_another_process(tmp_path):
    first = S.Store(tmp_path / "s.sqlite")
    first.put("oracle", b"k", VALUES[7])
    first.flush()
    again = S.Store(tmp_path / "s.sqlite")  # what a fresh process opens
    assert same(again.get("oracle", b"k"), VALUES[7])
    assert again.get("oracle", b"other") is None and again.get("examples", b"k") is None


def test_a_broken_store_turns_itself_off(tmp_path):
    bad = tmp_path / "s.sqlite"
    bad.write_bytes(b"not a database" * 100)
    store = S.Store(bad)
    assert store.get("oracle", b"k") is None
    store.put("oracle", b"k", np.ones(2))
    store.flush()
    assert store.path is None  # off for the rest of the process, and nothing raised


def test_the_store_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GRADPROP_STORE", "off")
    assert S.folder() is None


def test_examples_and_answers_from_the_store_are_the_ones_computed(tmp_path, monkeypatch):
    """A fresh process (empty memos) reading a store meets the same cases and the same reference
    values as the process that drew and computed them."""
    monkeypatch.setattr(S, "_STORE", S.Store(tmp_path / "s.sqlite"))
    monkeypatch.setattr(runner, "_EXAMPLES", {})
    monkeypatch.setattr(oracle, "_MEMO", {})
    item = REGISTRY["Affine"]
    ci = settings(settings.get_profile("ci"), max_examples=5)
    drawn = runner.examples(item, {}, ci)
    answers = [oracle.vjp(item, case, np.ones((len(case.inputs["x"]), case.init["W"].shape[1]))) for case in drawn]
    S._STORE.flush()

    monkeypatch.setattr(S, "_STORE", S.Store(tmp_path / "s.sqlite"))
    monkeypatch.setattr(runner, "_EXAMPLES", {})
    monkeypatch.setattr(oracle, "_MEMO", {})
    computed = []
    monkeypatch.setattr(oracle, "_jitted", lambda *a: computed.append(a))  # any JAX call would show here
    again = runner.examples(item, {}, ci)
    fields = lambda c: {k: v for k, v in c.__dict__.items() if k != "memo"}  # noqa: E731 - memo: worked out, not drawn
    assert [S.pack(fields(c)) for c in again] == [S.pack(fields(c)) for c in drawn]
    for case, answer in zip(again, answers):
        assert same(oracle.vjp(item, case, np.ones((len(case.inputs["x"]), case.init["W"].shape[1]))), answer)
    assert computed == []


def test_a_store_past_its_size_limit_starts_again_empty(tmp_path, monkeypatch):
    first = S.Store(tmp_path / "s.sqlite")
    first.put("oracle", b"k", np.ones(1000))
    first.flush()
    monkeypatch.setattr(S, "_LIMIT_BYTES", 1000)
    again = S.Store(tmp_path / "s.sqlite")
    assert again.get("oracle", b"k") is None
    again.put("oracle", b"k", np.ones(2))
    again.flush()
    monkeypatch.undo()  # back to the real limit: what was written after the fresh start is kept
    assert same(S.Store(tmp_path / "s.sqlite").get("oracle", b"k"), np.ones(2))


#: twelve processes open a new store at the same moment, as a run's workers do; twenty times
TOGETHER = """
import multiprocessing, sys
from pathlib import Path
import numpy as np
from gradprop.properties import store as S

def open_and_put(path, start, answers):
    start.wait()
    store = S.Store(Path(path))
    store.put("oracle", b"k", np.ones(2))
    store.flush()
    answers.put(store.path is not None)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")  # from this small process: a fork costs little
    kept = []
    for trial in range(20):
        start, answers = ctx.Barrier(12), ctx.Queue()
        procs = [ctx.Process(target=open_and_put, args=(f"{sys.argv[1]}/store-{trial}.sqlite", start, answers))
                 for _ in range(12)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        kept += [answers.get() for _ in procs]
    print(kept.count(False), len(kept))
"""


def test_processes_opening_a_new_store_together_all_keep_it(tmp_path):
    """Before a new store was made aside and linked into place, about one process in seventy
    found it "locked", turned its store off and lost what it computed (the next run computed it
    again): 3-4 of these 240."""
    script = tmp_path / "together.py"
    script.write_text(TOGETHER)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lost, opened = map(int, done.stdout.split())
    assert (lost, opened) == (0, 240), f"{lost} of {opened} processes lost their store"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing made aside is left


def test_threads_opening_a_new_store_together_all_keep_it(tmp_path):
    """Twelve threads of one process at once: each makes its new file aside under a name of its
    own (named by the pid alone, they removed each other's and lost nearly every store)."""
    kept = []

    def open_and_put(path: Path, start: threading.Barrier) -> None:
        start.wait()
        store = S.Store(path)
        store.put("oracle", b"k", np.ones(2))
        store.flush()
        kept.append(store.path is not None)

    for trial in range(5):
        start = threading.Barrier(12)
        threads = [threading.Thread(target=open_and_put, args=(tmp_path / f"store-{trial}.sqlite", start))
                   for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert kept == [True] * 60


def test_a_new_version_keeps_the_stores_of_the_versions_used_last_and_removes_older_ones(tmp_path):
    """Each release or edit of the suite makes a new store file; without pruning, the cache folder
    grows by one file per version for good. Kept: the new one and the two used last (opened by
    another venv, say); removed with their -wal/-shm: the rest. Nothing else in the folder goes."""
    now = time.time()
    for age, name in enumerate(["a", "b", "c", "d"]):
        with contextlib.closing(sqlite3.connect(tmp_path / f"store-{name}.sqlite")) as db, db:  # as a run left it
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE memo (kind TEXT, key BLOB, value BLOB, PRIMARY KEY (kind, key))")
        for suffix in ("", "-wal", "-shm"):
            path = tmp_path / f"store-{name}.sqlite{suffix}"
            path.touch()
            os.utime(path, (now - 100 * (age + 1),) * 2)
    (tmp_path / "jax").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    S.Store(tmp_path / "store-c.sqlite").get("oracle", b"k")  # an old version opened again: used now
    assert sorted(p.name for p in tmp_path.glob("store-*.sqlite")) == [f"store-{n}.sqlite" for n in "abcd"]
    S.Store(tmp_path / "store-new.sqlite").get("oracle", b"k")  # a new version's first run
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "jax", "notes.txt", "store-a.sqlite", "store-a.sqlite-shm", "store-a.sqlite-wal",
        "store-c.sqlite", "store-c.sqlite-shm", "store-c.sqlite-wal",
        "store-new.sqlite", "store-new.sqlite-shm", "store-new.sqlite-wal"]


def test_only_a_torn_compile_cache_entry_is_kept_quiet():
    """The one race of JAX's compile cache that costs nothing but a compile is not warned about;
    another cache error (a folder one may not read) still is."""
    torn = ("Error reading persistent compilation cache entry for 'jit_run': error: Error -5 while "
            "decompressing data: incomplete or truncated stream")
    denied = "Error reading persistent compilation cache entry for 'jit_run': PermissionError: [Errno 13]"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", oracle.TORN_ENTRY, UserWarning)
        warnings.warn(torn, UserWarning)
        warnings.warn(denied, UserWarning)
    assert [str(w.message) for w in seen] == [denied]


def test_the_grader_imports_jax_only_when_it_has_to_trace():
    """A worker whose answers are all in the store never pays for importing JAX: the suite and
    the references load without it, and it comes (with float64 on) on the first trace."""
    code = ("import sys\n"
            "import gradprop.cli, gradprop.grading\n"
            "from gradprop.properties import checks, oracle, registry, runner\n"
            "assert 'jax' not in sys.modules, 'jax imported with the suite'\n"
            "from gradprop import reference\n"
            "out = reference.softmax(__import__('numpy').zeros(3))\n"
            "assert 'jax' in sys.modules and str(out.dtype) == 'float64', out.dtype\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


DRAW = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "yes":
    import constants_here  # a local module full of constants, as a test file or a notebook may be
from hypothesis import settings
from gradprop.properties import profiles, runner
from gradprop.properties.registry import REGISTRY
h = hashlib.sha256()
for name in ("Affine", "softmax"):
    for case in runner.examples(REGISTRY[name], {}, settings.get_profile("grading")):
        for value in (*case.init.values(), *case.inputs.values()):
            h.update(repr(value).encode())
print(h.hexdigest())
"""


def test_the_cases_drawn_do_not_depend_on_what_else_is_imported(tmp_path):
    """Hypothesis draws now and then a constant from the source of the local modules loaded: the
    cases (and so the grades) would depend on what the process imported and on how gradprop was
    installed. They must not."""
    (tmp_path / "constants_here.py").write_text("VALUES = [" + ", ".join(
        f"{i}.{i:03d}5, -{i * 7}.25, {i * 1000003}" for i in range(1, 200)) + "]\n")
    env = {**os.environ, "GRADPROP_STORE": "off"}
    digests = [subprocess.run([sys.executable, "-c", DRAW, str(tmp_path), extra], capture_output=True, text=True,
                              env=env, timeout=300) for extra in ("no", "yes")]
    assert all(d.returncode == 0 for d in digests), [d.stderr[-2000:] for d in digests]
    assert digests[0].stdout == digests[1].stdout


def test_the_quick_compile_gives_the_answers_xla_defaults_give(monkeypatch):
    """QUICK_COMPILE changes how XLA compiles, not what it computes: on a derandomized case of
    every item, the oracle's outputs and gradients match those of XLA's default pipeline to
    round-off. Networks excepted: their references are made of the layers' (compared here), and
    compiling them with XLA's defaults took four fifths of this test."""
    assert oracle.compiler_options() == oracle.QUICK_COMPILE  # this jaxlib knows every option
    monkeypatch.setattr(S, "_STORE", S.Store(None))  # every answer computed, none read
    ci = settings(settings.get_profile("ci"), max_examples=1)
    cases = []
    for item in (item for item in REGISTRY.values() if item.kind != "network"):
        case = runner.examples(item, {}, ci)[0]
        required = {n for n, p in inspect.signature(item.reference).parameters.items()
                    if p.default is p.empty and p.kind != p.VAR_KEYWORD}
        if required <= set(oracle.arguments(case, item)):  # else its check supplies the rest (Dropout's mask)
            cases.append((item, case))
    assert {i.name for i in REGISTRY.values() if i.kind != "network"} - {item.name for item, _ in cases} == {"Dropout"}

    def answers() -> list:
        monkeypatch.setattr(oracle, "_MEMO", {})
        found = []
        for item, case in cases:
            out = oracle._forward(item, case)  # past the case's own memo
            # an optimizer's answer is a trajectory per parameter
            found.extend((item.name, o) for o in (out.values() if isinstance(out, dict) else [out]))
            if item.differentiated(case):
                dout = np.random.default_rng(0).standard_normal(np.shape(out))
                found.extend((item.name, g) for g in oracle._vjp(item, case, dout)[1].values())
        return found

    def recompile() -> None:
        for cached in (oracle.compiler_options, oracle._jit, oracle._jitted):
            cached.cache_clear()

    quick = answers()
    monkeypatch.setattr(oracle, "QUICK_COMPILE", {})
    recompile()
    try:
        assert oracle.compiler_options() == {}
        plain = answers()
    finally:
        recompile()  # the next caller compiles with the real options again
    assert len(quick) == len(plain)
    for (name, a), (_, b) in zip(quick, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=name)


def test_compile_options_this_jaxlib_refuses_fall_back_to_xlas_defaults(monkeypatch):
    monkeypatch.setattr(oracle, "QUICK_COMPILE", {**oracle.QUICK_COMPILE, "xla_no_such_option": True})
    oracle.compiler_options.cache_clear()
    try:
        assert oracle.compiler_options() == {}
    finally:
        oracle.compiler_options.cache_clear()


def test_a_correct_file_is_graded_without_tracing_the_reference(tmp_path):
    """gradprop's own layers settle a correct value (and a far wrong one): a class of correct
    chapter-5 files, graded on a machine whose caches are empty, never imports JAX; a value close
    to the tolerance is still held against the reference (properties.assertions.SURE_PASS/FAIL)."""
    code = ("import sys\nfrom gradprop.grading import GradeOptions, grade_submission\n"
            f"r = grade_submission({str(Path(__file__).resolve().parent.parent / 'examples' / 'book_correct.py')!r}, "
            "GradeOptions(max_examples=3))\n"
            "print(float(r.score), float(r.max_score), 'jax' in sys.modules)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "GRADPROP_STORE": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    score, max_score, jax = done.stdout.split()
    assert score == max_score and jax == "False"


def test_near_the_tolerance_the_reference_decides():
    from gradprop.properties.assertions import SURE_FAIL, SURE_PASS, agrees

    own = np.array([1.0, 2.0])
    tol = 1e-12 + 1e-9 * 2.0
    assert agrees(own + 0.2 * tol, own, 1e-9, 1e-12)                        # a sure pass
    assert not agrees(own + 0.5 * tol, own, 1e-9, 1e-12)                    # between: the reference
    assert agrees(own + 0.5 * tol, own, 1e-9, 1e-12, SURE_FAIL)
    assert not agrees(own + 3 * tol, own, 1e-9, 1e-12, SURE_FAIL)           # a sure failure
    assert SURE_PASS < 1 < SURE_FAIL  # a pass within the tolerance, a failure beyond it
