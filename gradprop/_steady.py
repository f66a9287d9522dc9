"""A steady world for the sandbox child: clocks and entropy that give the same answers every run.

Grades must not depend on when or where a submission runs. The child seeds ``np.random`` and
``random`` before every load (and the checks seed them before each call that draws), and a
fresh scratch copy means no file survives from an earlier run. What is left are clocks and the
operating system's entropy, which a submission may read on purpose (``if time.time() % 2``) or
by accident (``np.random.default_rng()`` with no seed). Here they are replaced, for Python code,
by deterministic stand-ins:

- ``time.time``, ``time.monotonic``, ``time.perf_counter``, ``time.process_time``,
  ``time.thread_time`` (and their ``_ns`` forms), ``time.clock_gettime(_ns)`` of any clock,
  ``datetime.datetime.now/today/utcnow``: a clock that starts at 2001-09-09 01:46:40 UTC and
  advances 1 ms per reading;
- ``os.urandom``, ``os.getrandom``, ``random.SystemRandom``, ``secrets``, ``uuid.uuid4``, and the
  entropy numpy's ``SeedSequence()`` draws for an unseeded ``default_rng()``: a fixed pseudo-random
  stream; the files ``/dev/urandom`` and ``/dev/random`` read as zeros (``isolation.Box``).

This makes an honest submission's grade reproducible; it is not a security boundary (a
submission can reach the real clock through ctypes). ``time.sleep`` still sleeps.
"""
from __future__ import annotations

import datetime
import os
import random
import time

EPOCH = 1_000_000_000.0
TICK_NS = 1_000_000

_state = {"ticks": 0, "entropy": random.Random(0)}


def _now_ns() -> int:
    _state["ticks"] += 1
    return int(EPOCH * 1e9) + _state["ticks"] * TICK_NS


def _urandom(n: int) -> bytes:
    return _state["entropy"].randbytes(n)


class _SteadyDateTime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls.fromtimestamp(_now_ns() / 1e9, tz)

    @classmethod
    def today(cls):
        return cls.now()

    @classmethod
    def utcnow(cls):
        return cls.fromtimestamp(_now_ns() / 1e9, datetime.timezone.utc).replace(tzinfo=None)


class _SteadySystemRandom(random.Random):
    """``random.SystemRandom`` drawing from the fixed stream."""

    def random(self) -> float:
        return _state["entropy"].random()

    def getrandbits(self, k: int) -> int:
        return _state["entropy"].getrandbits(k)

    def randbytes(self, n: int) -> bytes:
        return _urandom(n)

    def seed(self, *args, **kwargs) -> None:
        return None


def reset(seed: int) -> None:
    """Start the clock and the entropy stream again (before each load of the submission)."""
    _state["ticks"] = 0
    _state["entropy"] = random.Random(seed)


def install() -> None:
    """Replace the clocks and entropy sources for everything imported from now on (and numpy)."""
    seconds = lambda: _now_ns() / 1e9  # noqa: E731
    for name in ("time", "monotonic", "perf_counter", "process_time", "thread_time"):
        setattr(time, name, seconds)
        setattr(time, name + "_ns", _now_ns)
    time.clock_gettime = lambda clock_id: seconds()  # any clock: CLOCK_REALTIME, CLOCK_MONOTONIC...
    time.clock_gettime_ns = lambda clock_id: _now_ns()
    # the calendar of "now": localtime(), gmtime(), ctime(), strftime("%H") with no time given
    real = {name: getattr(time, name) for name in ("localtime", "gmtime", "ctime")}
    for name, fn in real.items():
        setattr(time, name, lambda secs=None, _fn=fn: _fn(seconds() if secs is None else secs))
    strftime, asctime = time.strftime, time.asctime
    time.strftime = lambda fmt, t=None: strftime(fmt, time.localtime() if t is None else t)
    time.asctime = lambda t=None: asctime(time.localtime() if t is None else t)
    os.getrandom = lambda size, flags=0: _urandom(size)  # type: ignore[attr-defined]
    datetime.datetime = _SteadyDateTime  # type: ignore[misc]
    os.urandom = _urandom
    random.SystemRandom = _SteadySystemRandom  # type: ignore[misc]
    import secrets

    secrets._sysrand = _SteadySystemRandom()  # type: ignore[attr-defined]
    secrets.randbits = secrets._sysrand.getrandbits  # type: ignore[attr-defined]
    secrets.choice = secrets._sysrand.choice  # type: ignore[attr-defined]
    secrets.token_bytes = lambda nbytes=None: _urandom(32 if nbytes is None else nbytes)  # type: ignore[assignment]
    try:
        import numpy.random.bit_generator as bit_generator

        bit_generator.randbits = _SteadySystemRandom().getrandbits  # SeedSequence() with no seed
    except (ImportError, AttributeError):
        pass
