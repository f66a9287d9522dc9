"""The sandbox: a submission runs in a child process; faults become findings, never crashes here."""
from __future__ import annotations

import os
import re
import struct
import textwrap
import time

import numpy as np
import pytest

from gradprop import wire
from gradprop.findings import SubmissionFault
from gradprop.isolation import CHILD_MODULES
from gradprop.sandbox import SandboxSession
from gradprop.session import InProcessSession, Opaque, Ref

GOOD = '''
import numpy as np

class MulLayer:
    def __init__(self):
        self.x = None
        self.y = None

    def forward(self, x, y):
        self.x = x
        self.y = y
        return x * y

    def backward(self, dout):
        print("backward of MulLayer")
        return dout * self.y, dout * self.x

class Inplace:
    def forward(self, x):
        x *= 2          # writes into its input
        return x        # and returns it

def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)

def pair(x):
    return x, x

def mixed(x):
    return {"n": 3, "f": np.float64(2.5), "b": np.bool_(True), "t": (1, [2.0, None]), "s": "hi"}

def returns_object(x):
    return object()

class FakeJax:
    """Array-like with a numeric dtype, like a jax array."""
    dtype = np.dtype("float32")
    def __array__(self, dtype=None, copy=None):
        return np.arange(3, dtype=np.float32)

def returns_array_like(x):
    return FakeJax()

def returns_object_array(x):
    return np.array([1, "a"], dtype=object)

def raises(x):
    y = x.original_x_shape
    return y

class Net:
    def __init__(self, kind="plain"):
        self.params = {"W": np.ones((2, 3)), "b": np.zeros(3)}
        if kind == "float32":
            self.params["b"] = np.zeros(3, dtype=np.float32)
        elif kind == "shape":
            self.params["b"] = np.zeros((1, 3))
        elif kind == "missing":
            del self.params["b"]
        elif kind == "read-only":
            self.params["b"].flags.writeable = False
        elif kind == "list":
            self.params["b"] = [0.0, 0.0, 0.0]
        elif kind == "shared":
            self.params["b"] = self.params["W"]

def modules(x):
    import sys
    return sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "hypothesis", "pytest", "gradprop"))
'''


def write(tmp_path, text: str, name: str = "sub.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = write(tmp_path_factory.mktemp("good"), GOOD)
    with SandboxSession(path, time_limit=5) as s:
        yield s, path


# --------------------------------------------------------------------------- a correct layer set


def same(a, b) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    else:
        assert a == b


def test_same_replies_as_in_process(good):
    s, path = good
    ip = InProcessSession(path=path)
    assert s.import_error is None
    assert s.defines("MulLayer") and s.defines("softmax") and not s.defines("Relu") and not s.defines("np")
    assert s.resolve(["ReLU", "MulLayer"]) == "MulLayer"
    rng = np.random.default_rng(0)
    x, y, dout = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    replies = []
    for sess in (s, ip):
        m = sess.new("MulLayer")
        assert isinstance(m, Ref) and m.item == "MulLayer"
        fwd = sess.call(m, "forward", x, y)
        bwd = sess.call(m, "backward", dout)
        sm = sess.call("softmax", None, x)
        ip_ = sess.call(sess.new("Inplace"), "forward", x.copy())
        pr = sess.call("pair", None, x)
        replies.append((fwd, bwd, sm, ip_, pr, sess.get(m, "x")))
    for got, want in zip(*replies):
        if isinstance(got, np.ndarray):
            same(got, want)
            continue
        same(got.value, want.value)
        same(got.args_after, want.args_after)
        assert got.aliases == want.aliases
    fwd, bwd, sm, inplace, pr, _ = replies[0]
    assert bwd.output == "backward of MulLayer\n"
    assert inplace.aliases == (("return", "arg[0]"),)
    same(inplace.args_after[0], x * 2)  # the in-place write is visible
    assert ("return[1]", "return[0]") in pr.aliases and ("return[0]", "arg[0]") in pr.aliases
    assert (x == replies[0][0].args_after[0]).all()  # the caller's arrays are never touched


def test_calls_asked_for_later_go_in_one_request_and_answer_like_calls(good):
    """``later``: build, forward, backward and a read in one request, in order, with the same
    replies as one call at a time (and in-process); a fault stops the rest of its request."""
    s, path = good
    rng = np.random.default_rng(1)
    x, y, dout = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    requests = []
    flush = s._flush
    s._flush = lambda: (requests.append(len(s._waiting)), flush())[1]
    try:
        for sess in (s, InProcessSession(path=path)):
            m = sess.new("MulLayer")
            asked = [sess.later(m, "forward", x, y), sess.later(m, "backward", dout), sess.later_get(m, "x")]
            fwd, bwd, seen = (a.value() for a in asked)
            same(fwd.value, x * y)
            same(bwd.value, (dout * y, dout * x))
            same(seen, x)
            assert bwd.output == ("backward of MulLayer\n" if sess is s else "")  # in-process prints go to stdout
        assert requests == [3]  # three replies, one request
        requests.clear()
        m = s.new("MulLayer")
        asked = [s.later(m, "forward", x, y), s.later("raises", None, x), s.later(m, "backward", dout)]
        same(asked[0].value().value, x * y)
        for later in asked[1:]:  # the fault, and the call after it was not run: the same fault
            with pytest.raises(SubmissionFault) as e:
                later.value()
            assert e.value.tag == "exception" and "AttributeError" in e.value.message
        assert requests == [3]
        assert s.call("softmax", None, np.zeros(2)).value.tolist() == [0.5, 0.5]  # and the child goes on
    finally:
        s._flush = flush


@pytest.mark.parametrize("kind", ["plain", "float32", "shape", "missing", "read-only", "list", "shared"])
def test_put_sets_plain_params_in_one_step_and_nothing_else(good, kind):
    """``later_put``: params that are a dict of writable float64 arrays of the right shapes are set
    as a read followed by ``iadd`` of the difference would set them, with the calls after it in
    the same request; anything else is left as it is and faults, and the calls after it (its
    group) are not run. In-process alike."""
    s, path = good
    rng = np.random.default_rng(2)
    want = {"W": rng.normal(size=(2, 3)), "b": rng.normal(size=(3,))}
    if kind == "shared":
        want["b"] = rng.normal(size=(2, 3))
    for sess in (s, InProcessSession(path=path)):
        net = sess.new("Net", kind)
        before = sess.get(net, "params")
        put = sess.later_put(net, ("params",), want)
        after = sess.later_get(net, "params")
        if kind in ("plain", "shared"):
            put.value()
            got = after.value()
            # the arithmetic of reading first: every difference is taken before any array changes
            expected = {k: before[k] + (want[k] - before[k]) for k in want}
            if kind == "shared":
                expected["W"] = expected["b"] = before["W"] + (want["W"] - before["W"]) + (want["b"] - before["b"])
            for k in want:
                np.testing.assert_array_equal(got[k], expected[k])
            continue
        with pytest.raises(SubmissionFault):
            put.value()
        if sess is s:  # the read after it was in its group: not run
            with pytest.raises(SubmissionFault):
                after.value()
        left = sess.get(net, "params")
        assert left.keys() == before.keys()
        for k in left:
            np.testing.assert_array_equal(left[k], before[k])


@pytest.mark.parametrize("b1", ["np.zeros(hidden_size)", "np.zeros(hidden_size, dtype=np.float32)",
                                "np.zeros((1, hidden_size))", "list(np.zeros(hidden_size))"])
def test_a_network_is_graded_alike_with_its_weights_put_in_one_step_or_one_by_one(tmp_path, monkeypatch, b1):
    """The network checks put the case's weights in with one ``later_put`` where params are plain,
    and read, check and update them one by one where they are not: the outcomes are the same as
    one by one every time."""
    from hypothesis import settings

    from gradprop.properties.registry import ITEMS
    from gradprop.properties.runner import evaluate_item
    from gradprop.session import Session

    source = open(os.path.join(os.path.dirname(__file__), "..", "examples", "book_correct.py")).read()
    assert "self.params['b1'] = np.zeros(hidden_size)" in source
    path = write(tmp_path, source.replace("self.params['b1'] = np.zeros(hidden_size)", f"self.params['b1'] = {b1}"))
    item = next(i for i in ITEMS if i.name == "TwoLayerNet")
    lean = settings(settings.get_profile("grading"), max_examples=3)  # gradprop check's (shipped) examples

    def outcomes() -> list:
        with SandboxSession(path, time_limit=10) as sess:
            return [(o.prop, o.passed, o.tag, o.message) for o in evaluate_item(sess, item, "sub", lean, until="any")]

    put = outcomes()
    monkeypatch.setattr(SandboxSession, "later_put", Session.later_put)  # faults at once: one by one
    assert outcomes() == put
    if b1 == "np.zeros(hidden_size)":
        assert all(passed for _, passed, _, _ in put)
    if "(1, hidden_size)" in b1:
        assert ("forward", False, "wrong-shape") in [o[:3] for o in put]


def test_a_fault_of_quiet_ops_left_before_a_group_stays_in_their_group(good):
    """An update nothing read after (a check stopped between it and its call) faults in the
    child: the fault is answered in its own group, and the next group's replies still reach the
    calls that asked for them."""
    s, _ = good
    m = s.new("MulLayer")
    s.iadd(m, ("nope",), np.ones(3))  # faults: MulLayer has no attribute nope
    s.group()
    m2 = s.new("MulLayer")
    fwd = s.later(m2, "forward", np.ones(3), np.full(3, 2.0))
    s.group()
    soft = s.later("softmax", None, np.zeros(2))
    same(fwd.value().value, np.full(3, 2.0))
    assert soft.value().value.tolist() == [0.5, 0.5]


def test_a_call_asked_for_its_value_alone_sends_no_arguments_back(good):
    """``later_value``: the same value, printed output and left-out arguments as ``later``, without
    the arguments as the call left them (nothing reads them): fewer arrays on the wire."""
    s, path = good
    x = np.arange(6.0).reshape(2, 3)
    for sess in (s, InProcessSession(path=path)):
        full = sess.later(sess.new("Inplace"), "forward", x.copy()).value()
        lean = sess.later_value(sess.new("Inplace"), "forward", x.copy()).value()
        same(lean.value, full.value)
        assert (lean.output, lean.dropped) == (full.output, full.dropped)
    assert full.args_after and full.aliases  # in-process: the arguments come back all the same
    sizes = []
    frame = s._child.recv
    s._child.recv = lambda deadline, keys: (sizes.append(keys), frame(deadline, keys))[1]
    try:
        m = s.new("MulLayer")
        s.later(m, "forward", x, x).value()
        reply = s.later_value(m, "backward", x).value()
    finally:
        s._child.recv = frame
    assert sizes == [("value", "args"), ("value",)] and reply.args_after == () and reply.aliases == ()


def test_values_iadd_seed(good):
    s, _ = good
    v = s.call("mixed", None, 0).value
    assert v == {"n": 3, "f": 2.5, "b": True, "t": (1, [2.0, None]), "s": "hi"}
    assert type(v["f"]) is float and type(v["b"]) is bool
    m = s.new("MulLayer")
    s.call(m, "forward", np.ones(3), np.zeros(3))
    s.iadd(m, ("x",), np.full(3, 0.5))
    same(s.get(m, "x"), np.full(3, 1.5))
    with pytest.raises(SubmissionFault) as e:
        s.get(m, "nope")
    assert e.value.tag == "exception" and "AttributeError" in e.value.message


def test_opaque_and_array_likes(good):
    s, _ = good
    v = s.call("returns_object", None, 1).value
    assert isinstance(v, Opaque) and v.type_name == "object"
    same(s.call("returns_array_like", None, 1).value, np.arange(3, dtype=np.float32))
    assert isinstance(s.call("returns_object_array", None, 1).value, Opaque)
    assert isinstance(s.get(s.new("MulLayer"), "backward"), Opaque)  # a bound method


def test_the_child_stays_light(good):
    s, _ = good
    loaded = s.call("modules", None, 0).value
    assert set(loaded) <= {"gradprop", *(f"gradprop.{m}" for m in CHILD_MODULES)}, loaded


def test_faults_not_found_and_exception(good):
    s, _ = good
    with pytest.raises(SubmissionFault) as e:
        s.new("Affine")
    assert e.value.tag == "not-found"
    with pytest.raises(SubmissionFault) as e:
        s.call("nope", None)
    assert e.value.tag == "not-found"
    with pytest.raises(SubmissionFault) as e:
        s.call("raises", None, np.ones(2))
    msg = e.value.message
    assert e.value.tag == "exception"
    assert "AttributeError: 'numpy.ndarray' object has no attribute 'original_x_shape'" in msg
    assert "y = x.original_x_shape" in msg and "sub.py" in msg
    s.call("softmax", None, np.ones(2))  # still fine


def test_a_constructor_fault_is_reported_by_the_next_call(tmp_path):
    """new() travels with the next request (a round trip saved): its fault is that call's fault."""
    path = write(tmp_path, "class Broken:\n    def __init__(self, W):\n        self.W = W.T.T.nope\n"
                           "    def forward(self, x):\n        return x\n")
    with SandboxSession(path, time_limit=5) as s:
        ref = s.new("Broken", np.ones((2, 2)))
        with pytest.raises(SubmissionFault) as e:
            s.call(ref, "forward", np.ones(2))
        assert e.value.tag == "exception" and "Broken(...)" in e.value.message and "nope" in e.value.message


def test_seed_is_deterministic(tmp_path):
    path = write(tmp_path, """
        import numpy as np
        def draw(n):
            return np.random.rand(n)
    """)
    with SandboxSession(path) as s:
        first = s.call("draw", None, 2).value
        s.seed(3)
        a = s.call("draw", None, 4).value
        s.seed(3)
        b = s.call("draw", None, 4).value
    same(a, b)
    same(a, np.random.RandomState(3).rand(4))
    with SandboxSession(path) as s:  # deterministic even without seed()
        same(s.call("draw", None, 2).value, first)


# --------------------------------------------------------------------------- import errors


@pytest.mark.parametrize("source, expect", [
    ("def f(:\n    pass\n", "SyntaxError"),
    ("x = 1\nraise ValueError('boom at import')\n", "ValueError: boom at import"),
    ("import sys\nsys.exit(4)\n", "SystemExit: 4"),
    ("exit(2)\n", "SystemExit: 2"),
    ("import os\nos._exit(3)\n", "exited with status 3"),
    ("import time\nwhile True:\n    time.sleep(0.01)\n", "did not finish within"),
])
def test_import_errors(tmp_path, source, expect):
    path = write(tmp_path, source, "notes.py")
    with SandboxSession(path, time_limit=1) as s:
        assert s.import_error is not None and expect in s.import_error, s.import_error
        assert not s.defines("f") and s.resolve(["f", "MulLayer"]) is None
        with pytest.raises(SubmissionFault) as e:
            s.new("MulLayer")
        assert e.value.tag == "not-found"
    if "raise" in source:
        assert "line 2 of notes.py" in s.import_error
    if "while" in source:
        assert "line 3 of notes.py" in s.import_error  # where it was stuck


# --------------------------------------------------------------------------- hangs and crashes

FAULTY = '''
import os, sys, time
import numpy as np

class Hangs:
    def forward(self, x):
        while True:
            pass

class Exits:
    def forward(self, x):
        os._exit(3)

class SysExits:
    def forward(self, x):
        sys.exit(5)

class Fine:
    def forward(self, x):
        return x + 1

class Segfaults:
    def forward(self, x):
        import ctypes
        return ctypes.string_at(0)

class Counted:
    alive = 0
    def __init__(self):
        Counted.alive += 1
    def __del__(self):
        Counted.alive -= 1

def alive(x):
    return Counted.alive

def flood(x):
    while True:
        print("x" * 1000)

def big_print(x):
    for _ in range(50_000):
        print("y" * 1000)
    return x

def fd_flood(x):
    for _ in range(20_000):
        os.write(1, b"z" * 1000)
        os.write(2, b"z" * 1000)
    return x

def huge(x):
    return np.ones(10**11)

def slow(seconds):
    time.sleep(seconds)
    return seconds

def grow(x):
    keep = []
    while True:
        keep.append(bytes(10**7))
'''


@pytest.fixture
def faulty(tmp_path):
    path = write(tmp_path, FAULTY)
    with SandboxSession(path, time_limit=1.0, memory_mb=768) as s:
        yield s


def test_each_call_of_a_request_has_the_time_limit_to_itself(faulty):
    """Calls sent together are timed one by one: three slow-but-in-time calls pass where their
    sum is over the limit; a hang among them is the fault of the rest of its request."""
    s = faulty
    slow = [s.later("slow", None, 0.45) for _ in range(3)]  # 1.35 s together, 0.45 s each: within 1 s
    assert [later.value().value for later in slow] == [0.45] * 3
    h = s.new("Hangs")
    asked = [s.later("slow", None, 0.1), s.later(h, "forward", 1), s.later("slow", None, 0.1)]
    assert asked[0].value().value == 0.1
    for later in asked[1:]:
        with pytest.raises(SubmissionFault) as e:
            later.value()
        assert e.value.tag == "timeout" and "Hangs.forward did not return within 1 s" in e.value.message
    assert s.call("slow", None, 0.1).value == 0.1  # a fresh child serves the next request


def test_timeout_then_other_items_work_and_same_item_fails_fast(faulty):
    s = faulty
    fine = s.new("Fine")
    h = s.new("Hangs")
    t = time.monotonic()
    with pytest.raises(SubmissionFault) as e:
        s.call(h, "forward", np.ones(2))
    assert 0.9 < time.monotonic() - t < 5
    assert e.value.tag == "timeout"
    assert "Hangs.forward did not return within 1 s" in e.value.message
    # where it was stuck: the loop's line or its body
    assert re.search(r"running line (7 of sub.py: while True:|8 of sub.py: pass)", e.value.message)
    # the same item fails at once, without running anything
    for op in (lambda: s.new("Hangs"), lambda: s.call(h, "forward", np.ones(2))):
        t = time.monotonic()
        with pytest.raises(SubmissionFault) as again:
            op()
        assert again.value.tag == "timeout" and time.monotonic() - t < 0.1
    # other items work (the child was restarted); objects from before the restart are gone
    with pytest.raises(SubmissionFault) as lost:
        s.call(fine, "forward", np.ones(2))
    assert lost.value.tag == "exception" and "lost when the previous call was stopped" in lost.value.message
    same(s.call(s.new("Fine"), "forward", np.ones(2)).value, np.full(2, 2.0))
    assert s.restarts == 1


def test_exit_in_a_method_is_an_exception_and_the_next_op_works(faulty):
    s = faulty
    with pytest.raises(SubmissionFault) as e:
        s.call(s.new("Exits"), "forward", np.ones(2))
    assert e.value.tag == "exception"
    assert "the process exited with status 3 while running Exits.forward" in e.value.message
    same(s.call(s.new("Fine"), "forward", np.ones(2)).value, np.full(2, 2.0))
    with pytest.raises(SubmissionFault) as e:
        s.call(s.new("SysExits"), "forward", np.ones(2))
    assert e.value.tag == "exception" and "SystemExit: 5" in e.value.message
    with pytest.raises(SubmissionFault) as e:
        s.call(s.new("Segfaults"), "forward", np.ones(2))
    assert e.value.tag == "exception" and "killed by SIGSEGV while running Segfaults.forward" in e.value.message
    assert "of sub.py: return ctypes.string_at(0)" in e.value.message
    # not sticky: an exit is not a timeout
    with pytest.raises(SubmissionFault) as e:
        s.call(s.new("Exits"), "forward", np.ones(2))
    assert e.value.tag == "exception"


def test_dropped_refs_are_freed_in_the_child(faulty):
    s = faulty
    keep = s.new("Counted")
    for _ in range(50):
        s.new("Counted")  # dropped at once
    assert s.call("alive", None, 0).value <= 2
    assert s.call(keep, "__init__").value is None  # still there


def test_print_floods_are_truncated(faulty):
    s = faulty
    with pytest.raises(SubmissionFault) as e:
        s.call("flood", None, 1)
    assert e.value.tag == "timeout"
    r = s.call("big_print", None, 7)
    assert r.value == 7
    assert len(r.output) < 10_000 and r.output.startswith("y" * 1000)
    assert "more characters of output not shown" in r.output
    assert s.call("fd_flood", None, 8).value == 8  # writes to fds 1 and 2 go nowhere


def test_memory_blowups_are_exceptions(faulty):
    s = faulty
    with pytest.raises(SubmissionFault) as e:
        s.call("huge", None, 1)
    assert e.value.tag == "exception" and "MemoryError" in e.value.message
    with pytest.raises(SubmissionFault) as e:
        s.call("grow", None, 1)
    assert e.value.tag == "exception"
    same(s.call(s.new("Fine"), "forward", np.ones(1)).value, np.full(1, 2.0))


def test_patching_numpy_at_import_does_not_reach_the_parent(tmp_path):
    real_allclose, real_assert = np.allclose, np.testing.assert_allclose
    path = write(tmp_path, """
        import builtins, numpy, numpy.testing
        numpy.allclose = lambda *a, **k: True
        numpy.testing.assert_allclose = lambda *a, **k: None
        builtins.isinstance = lambda *a: True
        builtins.abs = lambda x: 0
        def check(x):
            return numpy.allclose(x, x + 1)
    """)
    with SandboxSession(path) as s:
        assert s.import_error is None
        assert s.call("check", None, np.zeros(2)).value is True  # patched in the child only
    assert np.allclose is real_allclose and np.testing.assert_allclose is real_assert
    assert not np.allclose(np.zeros(2), np.ones(2))
    assert isinstance(1, int) and not isinstance(1, str) and abs(-2) == 2


def live_processes_mentioning(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in "ZX":
            found.append(int(entry))
    return found


def test_close_kills_every_process_the_submission_started(tmp_path):
    path = write(tmp_path, """
        import os, time
        def spawn(x):
            if os.fork() == 0:          # a daemon: its own session, double-forked, parent gone
                os.setsid()
                if os.fork() == 0:
                    time.sleep(1000)
                os._exit(0)
            if os.fork() == 0:          # and a plain child in the same group
                time.sleep(1000)
            time.sleep(0.3)
            return 1
    """)
    s = SandboxSession(path)
    proc = s._child.proc
    box, stage = s._child.box, s.stage.root
    assert s.call("spawn", None, 0).value == 1
    assert len(live_processes_mentioning(box.tag)) >= 3  # the child, its child, the daemon
    s.close()
    s.close()  # twice is fine
    assert proc.returncode is not None  # reaped: no zombie
    deadline = time.monotonic() + 5
    while live_processes_mentioning(box.tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes_mentioning(box.tag) == [], "a process the submission started survived close()"
    assert not os.path.exists(stage) and not (box.scratch and os.path.exists(box.scratch))
    with pytest.raises(SubmissionFault):
        s.call("spawn", None, 0)


def test_folder_submission(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "__init__.py").write_text("")
    (tmp_path / "common" / "functions.py").write_text("import numpy as np\ndef relu(x):\n    return np.maximum(0, x)\n")
    (tmp_path / "common" / "layers.py").write_text(
        "from common.functions import *\nclass Relu:\n    def forward(self, x):\n        return relu(x)\n")
    with SandboxSession(str(tmp_path)) as s:
        assert s.import_error is None
        assert s.defines("Relu") and s.defines("relu")
        same(s.call(s.new("Relu"), "forward", np.array([-1.0, 2.0])).value, np.array([0.0, 2.0]))


# --------------------------------------------------------------------------- the wire format


def frame(header: dict, payload: bytes = b"") -> bytes:
    import json
    h = json.dumps(header).encode()
    return struct.pack("<4sQQ", wire.MAGIC, len(h), len(payload)) + h + payload


def test_wire_round_trip():
    value = (np.arange(6, dtype=np.int32).reshape(2, 3), [1.5, float("nan")], {"k": np.float32(2)},
             np.zeros((0, 4)), np.array(True), np.arange(3.0)[::2])
    bufs = wire.encode_reply({"ok": True}, {"value": value})
    doc, vals = wire.decode_frame(b"".join(bytes(b) for b in bufs))
    got = vals["value"]
    same(got[0], value[0])
    assert got[1][0] == 1.5 and np.isnan(got[1][1])
    assert got[2] == {"k": 2.0}
    same(got[3], value[3])
    same(got[4], value[4])
    same(got[5], np.array([0.0, 2.0]))
    assert got[0].flags.writeable


@pytest.mark.parametrize("header, payload", [
    ({"ok": True, "value": {"a": ["|O8", [1]]}}, bytes(16)),  # object dtype
    ({"ok": True, "value": {"a": ["O", [1]]}}, bytes(16)),
    ({"ok": True, "value": {"a": ["<c16", [1]]}}, bytes(16)),  # complex
    ({"ok": True, "value": {"a": ["f8,f8", [1]]}}, bytes(16)),  # structured
    ({"ok": True, "value": {"a": ["<f8", [4]]}}, bytes(16)),  # claims more data than sent
    ({"ok": True, "value": {"a": ["<f8", [-1]]}}, bytes(16)),
    ({"ok": True, "value": {"a": ["<f8", [1]]}}, bytes(64)),  # trailing data
    ({"ok": True, "value": {"x": 1}}, b""),  # unknown tag
    ({"ok": True, "value": {"o": ["a", 1]}}, b""),
    ({"ok": True, "value": {"d": [[1, 2]]}}, b""),  # non-str key
])
def test_wire_refuses_bad_headers(header, payload):
    with pytest.raises(wire.WireError):
        wire.decode_frame(frame(header, payload))


def test_wire_refuses_truncated_and_oversized_frames():
    good = b"".join(bytes(b) for b in wire.encode_reply({"ok": True}, {"value": np.arange(4.0)}))
    wire.decode_frame(good)
    for cut in (3, wire.FRAME_SIZE, wire.FRAME_SIZE + 5, len(good) - 1):
        with pytest.raises(wire.WireError):
            wire.decode_frame(good[:cut])
    with pytest.raises(wire.WireError):
        wire.decode_frame(struct.pack("<4sQQ", wire.MAGIC, 2, wire.MAX_PAYLOAD + 1) + b"{}")
    with pytest.raises(wire.WireError):
        wire.decode_frame(struct.pack("<4sQQ", b"XXXX", 2, 0) + b"{}")
    with pytest.raises(wire.WireError):  # nested deeper than the decoder allows
        wire.decode_frame(frame({"ok": True, "value": _nest(200)}))
    deep = b'{"value":' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # deeper than json can parse
    with pytest.raises(wire.WireError):
        wire.decode_frame(struct.pack("<4sQQ", wire.MAGIC, len(deep), 0) + deep)


def _nest(n: int):
    v = None
    for _ in range(n):
        v = [v]
    return v


def test_wire_encoder_never_fails():
    a = []
    a.append(a)  # a cycle
    bufs = wire.encode_reply({"ok": True}, {"value": (a, object(), 1 + 2j, np.array([1 + 1j]), {1: 2}, 10 ** 5000)})
    _, vals = wire.decode_frame(b"".join(bytes(b) for b in bufs), opaque=Opaque)
    v = vals["value"]
    assert all(isinstance(x, Opaque) for x in v[1:])
    depth, node = 0, v[0]
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert isinstance(node, Opaque) and depth <= wire.MAX_DEPTH


def test_startup_and_round_trip_are_fast(good):
    s, _ = good
    x = np.ones(3)
    s.call("softmax", None, x)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        s.call("softmax", None, x)
        times.append(time.perf_counter() - t)
    times.sort()
    assert times[len(times) // 2] < 0.02  # about 0.1 ms on an idle machine; loose for a loaded CI
    assert s.startup_seconds < 30


# --- cgroups: nothing left behind ------------------------------------------------------------------


def _cgroups_of(pid: int) -> list[str]:
    from gradprop.isolation import probe

    return [os.path.join(parent, n) for _, parent in probe().cgroup for n in os.listdir(parent)
            if n.startswith(f"gradprop-{pid}-")]


def test_a_stale_cgroup_with_our_name_is_reclaimed(tmp_path, monkeypatch):
    """A killed process leaves its cgroups; when its pid comes round again, the new process's box
    takes the name over instead of failing to start."""
    import itertools

    from gradprop import isolation

    if "cgroup" not in isolation.probe().on:
        pytest.skip("no cgroup layer on this machine")
    monkeypatch.setattr(isolation, "_serial", itertools.count(10_000))
    stale = [os.path.join(parent, f"gradprop-{os.getpid()}-{n}") for _, parent in isolation.probe().cgroup
             for n in range(10_000, 10_004)]  # the box's names are among the next serials
    for folder in stale:
        os.mkdir(folder)  # as a dead namesake left them
    try:
        path = write(tmp_path, "def f(x):\n    return x + 1\n")
        with SandboxSession(path, time_limit=5) as s:
            assert s.import_error is None and s.call("f", None, 1).value == 2
        isolation.reap_cgroups(wait=True)
        # the names the box took are gone with it; the others are still there
        assert len([f for f in stale if os.path.isdir(f)]) == len(stale) - len(isolation.probe().cgroup)
    finally:
        for folder in stale:
            isolation._empty_cgroup(folder)


def test_checking_processes_leave_no_cgroup_behind(monkeypatch):
    """A worker ends with os._exit (no atexit handlers): the cgroups its boxes leave to be removed
    later are removed before it ends."""
    from gradprop import check, isolation, workers

    if "cgroup" not in isolation.probe().on:
        pytest.skip("no cgroup layer on this machine")
    from gradprop.properties.registry import REGISTRY

    pids = []
    real_start = workers.start

    def start(*args):
        proc = real_start(*args)
        pids.append(proc.pid)
        return proc

    monkeypatch.setattr(workers, "start", start)
    book = os.path.join(os.path.dirname(__file__), "..", "examples", "book_correct.py")
    items = [REGISTRY[n] for n in ("MulLayer", "AddLayer", "Relu", "Sigmoid")]
    checked, error, _ = check._in_parallel(book, items, check.Options(asked=True), 2, lambda *a: None)
    assert error is None and [c.status for c in checked] != []
    assert len(pids) == 2 and [_cgroups_of(pid) for pid in pids] == [[], []]


def _report_where(conn) -> None:  # a worker's target: importable by name
    conn.send((os.environ.get("GRADPROP_TEST_MARK"), os.getcwd()))


def test_a_worker_runs_in_the_environment_and_folder_of_its_start(tmp_path, monkeypatch):
    """Workers are forks (of this process, or of a fork server started once per process); each
    still gets the caller's environment and folder as they are when it starts, as a spawned
    process would."""
    from multiprocessing import Pipe

    from gradprop import workers

    def where() -> tuple:
        ours, theirs = Pipe(duplex=False)
        proc = workers.start(_report_where, theirs)
        theirs.close()
        try:
            return ours.recv()
        finally:
            proc.join()

    monkeypatch.delenv("GRADPROP_TEST_MARK", raising=False)
    assert where() == (None, os.getcwd())  # the server is up now, without the mark
    monkeypatch.setenv("GRADPROP_TEST_MARK", "set later")
    monkeypatch.chdir(tmp_path)
    assert where() == ("set later", str(tmp_path))


def test_the_command_lines_workers_are_forks_of_it_and_start_from_its_state(tmp_path):
    """The command line's process (one thread, no JAX) forks its workers itself: no fork server
    is started (its imports would be made twice), a worker gets the environment and folder of its
    start, and ``grade``'s SIGTERM handler is not a worker's. Where JAX is imported, the fork
    server is used instead."""
    import subprocess
    import sys

    script = textwrap.dedent(f"""
        import os, signal, sys
        from multiprocessing import Pipe, forkserver
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from gradprop import workers
        from test_sandbox import _default_sigterm, _report_where

        def run(target=_report_where):
            ours, theirs = Pipe(duplex=False)
            proc = workers.start(target, theirs)
            theirs.close()
            got = ours.recv()
            proc.join()
            return got

        signal.signal(signal.SIGTERM, lambda *a: None)
        workers.prestart()
        os.environ["GRADPROP_TEST_MARK"] = "direct"
        os.chdir({str(tmp_path)!r})
        print(run(), run(_default_sigterm), forkserver._forkserver._forkserver_pid is None)
        import jax  # noqa: F401 - its threads: the fork server from now on
        print(workers._direct(), run(), forkserver._forkserver._forkserver_pid is None)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HYPOTHESIS_NO_PLUGINS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [f"('direct', '{tmp_path}') True True", f"False ('direct', '{tmp_path}') False"]


def _default_sigterm(conn) -> None:  # a worker's target: importable by name
    import signal

    conn.send(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
