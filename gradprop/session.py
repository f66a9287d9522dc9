"""Sessions: the one door through which checks reach a layer set.

A check never touches a layer object directly. It asks a session to build an item, call a method
or read an attribute, and gets back copies of what came out, plus the facts a check needs about
the call (the arguments as the callee left them, and which outputs are the same object as an
argument or as each other). Two sessions implement the same interface:

- ``InProcessSession``: the layer set runs here. For the project's own (trusted) layers and fixtures.
- ``gradprop.sandbox.SandboxSession``: the layer set runs in a child process with time and memory
  limits; only plain numbers and numeric arrays come back. For submissions.
"""
from __future__ import annotations

import abc
import copy
import difflib
import inspect
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .findings import SubmissionFault
from .i18n import _
from .loader import load, match_name, module_name
from .notebook import where as where_in


@dataclass(frozen=True)
class Ref:
    """A handle to an object living in the session (a layer instance)."""

    id: int
    item: str


@dataclass
class Reply:
    """What came back from one call."""

    value: Any
    #: the positional arguments as the callee left them (to see in-place writes)
    args_after: tuple[Any, ...] = ()
    #: identity facts, e.g. ("return[0]", "arg[0]"): the first returned value *is* the first argument
    aliases: tuple[tuple[str, str], ...] = ()
    #: what the call printed (truncated)
    output: str = ""
    #: optional arguments the callee's signature (or, since the last call, a constructor's) has no
    #: place for, and which were left out (``fit_arguments``)
    dropped: tuple[str, ...] = ()


class Later:
    """The reply of a call (or the value of a read) asked for now and read later.

    A session may send every call asked for this way, in order, along with the next request
    whose reply is needed (the sandbox does: one round trip for a build, forward, backward and
    the gradient reads). ``value()`` gives the Reply or value, or raises the call's fault; when a
    call faults, the later ones of the same request are not run and raise that fault too.
    """

    __slots__ = ("_resolve", "_done", "_value", "_fault")

    def __init__(self, resolve: Callable[[], Any] | None = None):
        self._resolve = resolve
        self._done = False
        self._value: Any = None
        self._fault: SubmissionFault | None = None

    @classmethod
    def now(cls, fn: Callable[[], Any]) -> "Later":
        """A Later settled right away with what ``fn()`` gives or raises (a SubmissionFault)."""
        later = cls.on_demand(fn)
        later.settle_now()
        return later

    @classmethod
    def on_demand(cls, fn: Callable[[], Any]) -> "Later":
        """A Later settled, when first read, with what ``fn()`` gives or raises."""
        later = cls()

        def resolve() -> None:
            try:
                later.settle(fn())
            except SubmissionFault as fault:
                later.fail(fault)

        later._resolve = resolve
        return later

    def settle_now(self) -> None:
        """Settle it now, if it is not yet, without raising its fault."""
        if not self._done and self._resolve is not None:
            self._resolve()

    def settle(self, value: Any) -> None:
        self._done, self._value = True, value

    def fail(self, fault: SubmissionFault) -> None:
        self._done, self._fault = True, fault

    def value(self) -> Any:
        self.settle_now()
        if self._fault is not None:
            raise type(self._fault)(self._fault.tag, self._fault.message)
        if not self._done:  # pragma: no cover - a session bug, not the submission's
            raise RuntimeError("a later call was never sent")
        return self._value


class Opaque:
    """Stands for a returned value of a type that does not cross the session boundary."""

    def __init__(self, type_name: str, text: str = ""):
        self.type_name = type_name
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


class Session(abc.ABC):
    """Access to one layer set. Every method may raise ``SubmissionFault``."""

    #: why the layer set could not be loaded, or None
    import_error: str | None = None
    #: defined name of an item -> the file it was taken from, relative to the submission
    origins: dict[str, str] = {}
    #: what loading said to the student: cells or files skipped, two files defining one item
    load_notes: tuple[str, ...] = ()
    #: every callable the layer set defines -> is it a class (for loose name matching)
    kinds: dict[str, bool] = {}
    #: the course's files (``--support``) among ``origins``' files: not the submission's own
    support_files: frozenset[str] = frozenset()

    def from_support(self, names: Iterable[str]) -> str | None:
        """The course's file the item (by ``names``) is taken from, or None when the submission
        defines it itself (or does not define it)."""
        name = self.resolve(names)
        origin = self.origins.get(name) if name else None
        return origin if origin in self.support_files else None

    @abc.abstractmethod
    def defines(self, name: str) -> bool:
        """Is ``name`` a callable defined by the layer set?"""

    @abc.abstractmethod
    def new(self, item: str, *args: Any, **kwargs: Any) -> Ref:
        """Construct ``item(*args, **kwargs)``. A session may construct it lazily, with the next
        request (the sandbox does): a constructor's fault then comes from that request."""

    @abc.abstractmethod
    def call(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Reply:
        """Call the function ``target`` (method None) or ``target.method`` on a Ref."""

    @abc.abstractmethod
    def get(self, ref: Ref, *path: str) -> Any:
        """Read ``ref.path[0]`` then index by the rest: ``get(net, "params", "W1")``."""

    @abc.abstractmethod
    def iadd(self, ref: Ref, path: tuple[str, ...], delta: np.ndarray) -> None:
        """Add ``delta`` in place to the array at ``path`` (as the book's numerical_gradient does)."""

    @abc.abstractmethod
    def seed(self, seed: int) -> None:
        """Seed ``np.random`` where the layer set runs (Dropout masks, TwoLayerNet weights)."""

    def later(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Later:
        """``call``, with its reply read later (``Later.value``). Here it runs at once; a session
        that pays a round trip per request sends it with the next call whose reply is read."""
        return Later.now(lambda: self.call(target, method, *args, **kwargs))

    def later_get(self, ref: Ref, *path: str) -> Later:
        """``get``, read later (see ``later``)."""
        return Later.now(lambda: self.get(ref, *path))

    def later_value(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Later:
        """``later`` for a caller that reads only the value (and what was printed and left out): a
        session may then not send the arguments back (the sandbox does not: its Reply's
        ``args_after`` and ``aliases`` are empty). Here, ``later``."""
        return self.later(target, method, *args, **kwargs)

    #: whether ``later`` and its kin wait for a later request (the sandbox) or run at once (here)
    defers = False

    def later_put(self, ref: Ref, path: tuple[str, ...], values: dict[str, np.ndarray]) -> Later:
        """Set each array ``ref.path[key]`` to ``values[key]`` in place, in one step, where every
        one is a plain array of its value's shape (``put_plain``); a fault otherwise, and nothing
        changed: the caller then reads and updates them one by one (``get``, ``iadd``), with the
        findings those give. A session that does not offer it faults at once."""
        return Later.now(lambda: _no_put(ref, path))

    def group(self) -> None:
        """What is asked from now on is one example's calls: a session that sends several examples'
        calls in one request keeps a fault of one from the others (the sandbox does). Here, nothing."""

    def resolve(self, names: Iterable[str]) -> str | None:
        """The name the layer set defines the item under: the first of ``names`` it defines
        (``Relu`` or its alias ``ReLU``), else the one case or underscore variant (``ReLu``)."""
        names = tuple(names)
        for name in names:
            if self.defines(name):
                return name
        return match_name(names, self.kinds) if names else None

    def origin(self, name: str, fallback: str) -> str:
        """What a reproduction snippet imports ``name`` from: the module of the file that defines
        it, as written from the submission's folder (``ch05.layer_naive``); for a notebook, or a
        file whose name cannot be imported, a comment saying where to run the snippet."""
        rel = self.origins.get(name)
        if rel is None:
            return fallback
        if rel.endswith(".ipynb"):
            return _("# run this in a new cell at the end of {file}, after its definition cells").format(file=rel)
        return module_name(rel) or _("# run this after the definitions of {file} (its name cannot be "
                                     "imported)").format(file=rel)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- what the layer set is called with, and what is read from it (both sessions, and the child) -----


def fit_arguments(fn: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict, tuple[str, ...]]:
    """``args`` and the optional arguments ``kwargs`` as ``fn``'s signature takes them.

    An optional argument (``train_flg``, ``momentum``, ``weight_init_std``) goes by name where the
    signature names it (or takes ``**kwargs``). One left without a name goes into the one free
    positional place, as the book passes ``forward(x, train_flg)`` to a ``forward(self, x,
    train=True)``; any other is left out and named (``def forward(self, x)``, a constructor
    without ``running_mean``), so that a layer without the feature loses only the checks that
    need it.
    """
    if not kwargs:
        return args, kwargs, ()
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin, or a signature Python cannot read: as it is
        return args, kwargs, ()
    kind = inspect.Parameter
    if any(p.kind in (kind.VAR_KEYWORD, kind.VAR_POSITIONAL) for p in params):
        return args, kwargs, ()
    named = {p.name for p in params if p.kind in (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)}
    by_name = {k: v for k, v in kwargs.items() if k in named}
    rest = [k for k in kwargs if k not in by_name]
    places = [p for p in params if p.kind in (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD)][len(args):]
    if len(rest) == 1 and len(places) == 1 and places[0].name not in by_name:
        return (*args, kwargs[rest[0]]), by_name, ()
    return args, by_name, tuple(rest)


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def loose_lookup(names: Iterable[Any], wanted: str) -> Any:
    """The one of ``names`` that is ``wanted``, or else the one that differs from it only in case
    and underscores (``dw`` for ``dW``, ``B1`` for ``b1``); None when there is none, or two (no
    guessing between them). The same rule as ``loader.match_name`` for item names."""
    names = [n for n in names if isinstance(n, str)]
    if wanted in names:
        return wanted
    hits = [n for n in names if _key(n) == _key(wanted)]
    return hits[0] if len(hits) == 1 else None


def read_path(obj: Any, path: tuple[str, ...]) -> Any:
    """``obj.path[0][path[1]]...``: an attribute, then keys, each matched as ``loose_lookup`` does."""
    name = path[0]
    if not hasattr(obj, name):
        found = loose_lookup(_attributes(obj), name)
        if found is not None:
            name = found
    value = getattr(obj, name)
    for key in path[1:]:
        if isinstance(value, dict) and key not in value:
            found = loose_lookup(value.keys(), key)
            key = found if found is not None else key
        value = value[key]
    return value


def put_plain(obj: Any, path: tuple[str, ...], values: dict[str, np.ndarray]) -> bool:
    """``obj.path[key] += values[key] - obj.path[key]`` for every key, in place (the arithmetic of
    a read, then ``iadd`` of the difference, as the book's in-place updates do), where
    ``obj.path`` is a dict holding every key, each a writable float64 array of its value's shape.
    Otherwise nothing is changed and the answer is False. Every difference is taken before any
    array is changed, as it is when the arrays are read first (two keys may share one array)."""
    held = read_path(obj, path)
    if type(held) not in (dict, OrderedDict):
        return False
    for key, want in values.items():
        a = dict.get(held, key)
        if type(a) is not np.ndarray or a.dtype != np.float64 or a.shape != np.shape(want) or not a.flags.writeable:
            return False
    deltas = [(key, want - dict.__getitem__(held, key)) for key, want in values.items()]
    for key, delta in deltas:
        target = read_path(obj, (*path, key))
        np.add(target, delta, out=target)
    return True


def _no_put(ref: Ref, path: tuple[str, ...]) -> None:
    raise SubmissionFault("exception", reading(ref.item, path))


def _attributes(obj: Any) -> list[str]:
    try:
        return list(vars(obj)) + [n for n in dir(type(obj)) if not n.startswith("__")]
    except TypeError:
        return []


#: the method names the book's API calls, and the typos students make of them
_API = ("forward", "backward", "__init__", "predict", "loss", "gradient", "accuracy", "update")


def typo_note(obj: Any, wanted: str) -> str:
    """`` (Affine defines foward: a typo of forward?)`` when ``obj`` (or its class) defines a name
    one or two letters away from ``wanted``, else ""."""
    cls = obj if isinstance(obj, type) else type(obj)
    own = {n for klass in cls.__mro__[:-1] for n in vars(klass)} - set(dir(object)) - {"__dict__", "__weakref__"}
    if wanted in own:
        return ""
    close = difflib.get_close_matches(wanted, sorted(own), n=1, cutoff=0.7)
    if not close:
        return ""
    return " " + _("({name} defines {close}: a typo of {wanted}?)").format(name=cls.__name__, close=close[0],
                                                                          wanted=wanted)


# --- what a check was doing, in the student's words (both sessions; the child fills them in) -------


def importing() -> str:
    """Where an exception of the load was raised: ``importing the file raised ...``."""
    return _("importing the file")


def reading(item: str, path: tuple[str, ...]) -> str:
    """``reading Affine.dW``: a read of an attribute (``Session.get``)."""
    return _("reading {name}").format(name=".".join((item, *path)))


def updating(item: str, path: tuple[str, ...]) -> str:
    """``updating TwoLayerNet.params.W1 in place`` (``Session.iadd``)."""
    return _("updating {name} in place").format(name=".".join((item, *path)))


def raised(where: str, exc: BaseException, text: str) -> str:
    """``Affine.backward raised AttributeError: ...``; ``text`` is the exception's own (Python's or
    the submission's), filled in as it is."""
    return _("{where} raised {type}: {message}").format(where=where, type=type(exc).__name__, message=text)


def at_line(where: str, code: str) -> str:
    """The line of the submission that was running, under a message: ``  at line 3 of f.py: y = x.T``."""
    return _("  at {where}: {code}").format(where=where, code=code)


def not_defined(name: str) -> str:
    return _("{item} is not defined").format(item=name)


def no_method(where: str, obj: Any, method: str) -> str:
    """``Affine.backward: Affine has no method backward``, and a likely typo."""
    return _("{where}: {type} has no method {method}").format(where=where, type=type(obj).__name__,
                                                              method=method) + typo_note(obj, method)


def exception_tag(exc: BaseException) -> str:
    """The finding a layer set's exception makes: a use of a forbidden module (the rubric's
    forbid), a missing module (an import that failed when called, or a display-only stand-in
    used), else a raise."""
    from . import _standins

    if _standins.is_forbidden(exc):
        return "forbidden-import"
    if isinstance(exc, ImportError):
        return "import-error"
    return "exception"


def entries(args: tuple[Any, ...]) -> list[tuple[int, Any, Any]]:
    """(position, key, value) of every entry of the dicts among ``args``, taken before a call, so
    that ``alias_facts`` can tell which entries the call replaced (an optimizer's ``update``)."""
    return [(i, k, v) for i, a in enumerate(args) if type(a) is dict for k, v in a.items()]


def alias_facts(args: tuple[Any, ...], value: Any,
                before: list[tuple[int, Any, Any]] = ()) -> tuple[tuple[str, str], ...]:
    """Which returned values are the very objects passed in, or returned twice; and, given the
    dict entries from ``entries`` before the call, which of them the call replaced by another
    object (``("arg[0]['W1']", "rebound")``) instead of changing them in place."""
    outs = list(value) if isinstance(value, (tuple, list)) else [value]
    names = [f"return[{i}]" for i in range(len(outs))] if isinstance(value, (tuple, list)) else ["return"]
    facts = []
    for i, out in enumerate(outs):
        if not isinstance(out, np.ndarray):
            continue
        for j, arg in enumerate(args):
            if out is arg:
                facts.append((names[i], f"arg[{j}]"))
        for k in range(i):
            if outs[k] is out:
                facts.append((names[i], names[k]))
    for i, key, was in before:
        if args[i].get(key, was) is not was:
            facts.append((f"arg[{i}][{key!r}]", "rebound"))
    return tuple(facts)


def describe_exception(exc: BaseException, where: str, files: tuple[str, ...] = ()) -> str:
    """``AttributeError: ... (line 12 of notes.py: dx = ...)``: the last frame in the layer set."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not files or any(f.filename.endswith(x) for x in files)]
    text = raised(where, exc, str(exc))
    if mine:
        f = mine[-1]
        text += "\n" + at_line(where_in(f.filename, f.lineno), (f.line or "").strip())
    return text


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)


class InProcessSession(Session):
    """Runs a trusted layer set in this process, with the same copy semantics as the sandbox."""

    def __init__(self, namespace: dict[str, Any] | None = None, path: str | None = None):
        self.path = path
        self._objects: dict[int, Any] = {}
        self._ids = 0
        #: optional constructor arguments left out since the last call (reported with it)
        self._dropped: tuple[str, ...] = ()
        if namespace is None:
            assert path is not None
            try:
                loaded = load(path)
                namespace = loaded.namespace
                self.origins, self.load_notes = loaded.origins, tuple(loaded.notes)
            except BaseException as exc:  # noqa: BLE001 - SystemExit at import is an import error too
                self.import_error = describe_exception(exc, importing())
                namespace = {}
        self._ns = namespace
        self.kinds = {k: isinstance(v, type) for k, v in namespace.items() if callable(v)}

    def defines(self, name: str) -> bool:
        return callable(self._ns.get(name))

    def holds(self, session: Session, theirs: str, mine: str) -> bool:
        """Whether ``session`` runs this session's very ``mine`` as its ``theirs`` (another session
        made from the same module: the checks must not take one's answers for the other's)."""
        return session is self or (isinstance(session, InProcessSession)
                                   and session._ns.get(theirs) is self._ns.get(mine) is not None)

    def _run(self, where: str, fn, *args, **kwargs):
        try:
            # a layer's RuntimeWarnings (overflow in exp) are not findings: non-finite results are
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the layer set's failure is a finding
            raise SubmissionFault(exception_tag(exc), describe_exception(exc, where)) from None

    def new(self, item: str, *args: Any, **kwargs: Any) -> Ref:
        if not self.defines(item):
            raise SubmissionFault("not-found", not_defined(item))
        args, kwargs, dropped = fit_arguments(self._ns[item], _copy(args), _copy(kwargs))
        try:
            obj = self._run(f"{item}(...)", self._ns[item], *args, **kwargs)
        except SubmissionFault as fault:
            raise type(fault)(fault.tag, fault.message + typo_note(self._ns[item], "__init__")) from None
        self._ids += 1
        self._objects[self._ids] = obj
        self._dropped += dropped
        return Ref(self._ids, item)

    def call(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Reply:
        if isinstance(target, Ref):
            obj, where = self._objects[target.id], f"{target.item}.{method}"
            if not hasattr(obj, method):
                raise SubmissionFault("exception", no_method(where, obj, method))
            fn = self._run(where, getattr, obj, method)
        else:
            if not self.defines(target):
                raise SubmissionFault("not-found", not_defined(target))
            fn, where = self._ns[target], target
        args, kwargs, dropped = fit_arguments(fn, _copy(args), _copy(kwargs))
        dropped, self._dropped = self._dropped + dropped, ()
        before = entries(args)
        value = self._run(where, fn, *args, **kwargs)
        facts = alias_facts(args, value, before)
        return Reply(value=_copy(value), args_after=_copy(args), aliases=facts, dropped=dropped)

    def get(self, ref: Ref, *path: str) -> Any:
        return _copy(self._run(reading(ref.item, path), read_path, self._objects[ref.id], path))

    def iadd(self, ref: Ref, path: tuple[str, ...], delta: np.ndarray) -> None:
        def add():
            target = read_path(self._objects[ref.id], path)
            np.add(target, delta, out=target)

        self._run(updating(ref.item, path), add)

    def later_put(self, ref: Ref, path: tuple[str, ...], values: dict[str, np.ndarray]) -> Later:
        def put() -> None:
            where = reading(ref.item, path)
            if not self._run(where, put_plain, self._objects[ref.id], path, values):
                raise SubmissionFault("exception", where)

        return Later.now(put)

    def seed(self, seed: int) -> None:
        np.random.seed(seed)
