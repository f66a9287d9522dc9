"""The generic properties. Each takes (target, case, explain) and raises a Finding when it fails.

A target is one item of one layer set, reached through a Session. ``explain`` is False while
Hypothesis searches and shrinks (the cheap form of each check); the runner calls the check once
more with ``explain=True`` on the smallest failing case, to localise the wrong entries.
"""
from __future__ import annotations

import functools
import inspect
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from gradprop import reference
from gradprop.findings import CORE, STRICT, Finding
from gradprop.i18n import N_, tr  # not _: this module uses _ for values it drops
from gradprop.session import InProcessSession, Later, Ref, Reply, Session, loose_lookup

from . import oracle
from .assertions import as_array, assert_close, describe, repro, reproduce_block
from .diagnosis import Evidence
from .model import Case, Item, Property

#: central-difference step; inputs are O(1) and stay >= 1e-3 from kinks
STEP = 1e-6


@dataclass(frozen=True)
class Target:
    session: Session
    item: Item
    #: the name the layer set defines it under (Relu or ReLU)
    name: str
    #: the module a student imports it from, for reproduction snippets
    origin: str
    #: (case, runs): while the screen puts one case through every property, the forward and
    #: backward runs on it, done once and read by every property that only reads them
    shared: tuple[Case, dict] | None = field(default=None, compare=False)


def _once(t: Target, case: Case, what: str, run):
    """``run()``, or what it gave (or raised) the first time on this case while shared."""
    if t.shared is None or case is not t.shared[0]:
        return run()
    runs = t.shared[1]
    if what not in runs:
        try:
            runs[what] = (run(), None)
        except Finding as finding:  # every property that reads this run meets the same fault
            runs[what] = (None, finding)
    value, finding = runs[what]
    if finding is not None:
        raise type(finding)(finding.tag, finding.message, finding.candidates, finding.hint)
    return value


# --- calling the layer set -------------------------------------------------------------------------


def _split(t: Target, values: Mapping[str, Any], **override: Any) -> tuple[tuple, dict[str, Any]]:
    """Arguments in call order: the required ones by position, the entry's optional ones
    (``train_flg``, ``momentum``...) by name, for the session to fit to the signature."""
    values = {**values, **override}
    return (tuple(v for k, v in values.items() if k not in t.item.optional),
            {k: v for k, v in values.items() if k in t.item.optional})


def _build(t: Target, case: Case) -> Ref:
    t.session.seed(case.seed % 2**31)
    args, kwargs = _split(t, case.init)
    return t.session.new(t.name, *args, **kwargs)


def _needs(t: Target, reply: Reply, what: str) -> None:
    """A check of a feature the layer's signature has no place for (an optional argument it left
    out): that check fails, saying so; the others stand."""
    if reply.dropped:
        raise Finding("wrong-forward", tr(
            "{name} takes no {args}, so {what} cannot be checked: the book's API has it "
            "({book}).").format(name=t.name, args=", ".join(reply.dropped), what=what,
                               book=t.item.api or t.name))


def _sharing(t: Target, case: Case) -> bool:
    return t.shared is not None and case is t.shared[0]


def _asked(t: Target, case: Case) -> tuple[Later, Any, dict[str, Later]] | None:
    """(backward, its dout, the gradient reads) the screen's forward run asked for, if it did."""
    return t.shared[1].get("backward asked") if _sharing(t, case) else None


def _forward(t: Target, case: Case, share: bool = False) -> tuple[Ref | None, Reply, Case]:
    """Build (for a layer) and call forward; the case comes back with what the entry reads off
    the output for its reference (a dropout mask). ``share``: the caller only reads the result
    (and will at most call backward with the case's dout), so the screen's run may serve; that
    run asks for backward and the gradient reads along with forward (one request, see
    ``Session.later``) when the dout does not depend on the output."""

    def run():
        asked = t.shared[1].pop("forward asked", None) if share and _sharing(t, case) else None
        layer, forward = asked or _ask(t, case, share)
        reply = forward.value()
        return layer, reply, _observed(t, case, reply)

    return _once(t, case, "forward", run) if share else run()


def _ask(t: Target, case: Case, share: bool) -> tuple[Ref | None, Later]:
    """Ask for the build and forward (and, for a shared run, backward and the gradient reads when
    the dout does not depend on the output), reading nothing yet."""
    layer, forward = _ask_forward(t, case)
    if layer is not None and share and _sharing(t, case) and t.item.observe is None:
        dout = _dout(t, case, _out_shape(t, case))
        t.shared[1]["backward asked"] = (t.session.later(layer, "backward", dout), dout, _ask_grads(t, layer))
    return layer, forward


def prefetch(t: Target, case: Case, props: Iterable[Property] = ()) -> None:
    """Ask now for the screen's shared run on ``case`` (``t.shared``), as a group of its own: the
    screen asks for every example's run before it reads any, so that they go to the sandbox in one
    request, and the answers of one are there when the next is checked. For a layer, the numerical
    and stale-state checks' calls too, where ``props`` has them and the case does not depend on the
    output (each on a fresh layer). For a network, the runs ``props`` read: the forward calls, the
    gradient and the mutation check's calls, each on a net of its own."""
    if not _sharing(t, case):
        return
    if t.item.kind == "network":
        checks = {p.check for p in props}
        for what, readers, ask in (("net forward asked", _NET_FORWARD_READERS, _ask_net_forward),
                                   ("gradient asked", _NET_GRADIENT_READERS, _ask_gradient),
                                   ("mutates asked", _NET_MUTATES_READERS, _ask_net_mutates)):
            if checks & readers:
                t.session.group()
                try:
                    t.shared[1][what] = ask(t, case)
                except Finding:  # asked again, and said, when the checks read it
                    pass
        return
    if t.item.kind not in ("layer", "function"):
        return
    t.session.group()
    try:
        t.shared[1]["forward asked"] = _ask(t, case, True)
    except Finding:  # asked again, and said, when the checks read it
        t.shared[1].pop("backward asked", None)
    if t.item.kind != "layer" or t.item.observe is not None:  # the case the others use is read off forward
        return
    checks = {p.check for p in props}
    for what, reader, ask in (("numerical asked", check_numerical,
                               lambda: _ask_objectives(t, case, _numerical_points(t, case)[2])),
                              ("stale-state asked", check_stale_state, lambda: _ask_stale(t, case, _earlier(case, t.item)))):
        if reader in checks:
            t.session.group()
            try:
                t.shared[1][what] = ask()
            except Finding:
                pass


def _ask_forward(t: Target, case: Case, echo: bool = True) -> tuple[Ref | None, Later]:
    """Build a fresh layer (for a layer) and ask for forward on the case's inputs (read later);
    ``echo`` False: only the value is read (``Session.later_value``)."""
    args, kwargs = _split(t, case.inputs)
    later = t.session.later if echo else t.session.later_value
    if t.item.kind == "function":
        return None, later(t.name, None, *args, **kwargs)
    layer = _build(t, case)
    return layer, later(layer, "forward", *args, **kwargs)


def _observed(t: Target, case: Case, reply: Reply) -> Case:
    return t.item.observe(case, reply.value) if t.item.observe else case


def _dout(t: Target, case: Case, shape: tuple[int, ...]) -> Any:
    """The upstream gradient: 1 for a loss layer (the book's call), else random normal, never ones."""
    if t.item.loss:
        return 1.0
    kept = case.memo.get(("dout", shape))
    if kept is None:  # the same for every submission: worked out once per case (never written to)
        rng = np.random.default_rng([case.seed, 0])
        kept = case.memo["dout", shape] = float(rng.standard_normal()) if shape == () else rng.standard_normal(shape)
    return kept


def _backward(t: Target, case: Case) -> tuple[Ref, Reply, Case, Any]:
    """Build, forward, then backward with the case's dout (shaped like the reference's output).
    Every caller only reads the result: one run per case serves them all in the screen."""

    def run():
        layer, forward, seen = _forward(t, case, share=True)  # its fault, if any, is backward's too
        asked = _asked(t, case)
        if asked is not None:
            backward, dout, _ = asked
            return layer, backward.value(), seen, dout
        dout = _dout(t, seen, _out_shape(t, seen))
        reply = t.session.call(layer, "backward", dout)
        if seen.extra.get("sure") is False:  # forward did not tell what the layer does: backward may
            seen = t.item.observe(seen, forward.value, (reply.value, dout))
        return layer, reply, seen, dout

    return _once(t, case, "backward", run)


def _backward_grads(t: Target, case: Case) -> tuple[Ref, Reply, Case, Any, dict[str, Any]]:
    """``_backward`` and the gradients it produced (read once per case in the screen)."""
    layer, reply, seen, dout = _backward(t, case)
    asked = _asked(t, case)
    reads = asked[2] if asked is not None else None
    return layer, reply, seen, dout, _once(t, case, "grads", lambda: _grads(t, layer, reply, reads))


def _ask_grads(t: Target, layer: Ref) -> dict[str, Later]:
    """The reads of the gradients the entry keeps as attributes, asked for now, read by ``_grads``."""
    return {g.wrt: t.session.later_get(layer, g.name) for g in t.item.grads if g.source == "attr"}


def _grads(t: Target, layer: Ref, reply: Reply, reads: Mapping[str, Later] | None = None) -> dict[str, Any]:
    """Each gradient the entry names, from backward's return value or the layer's attributes
    (read now, or from ``reads`` asked for along with backward)."""
    out: dict[str, Any] = {}
    for g in t.item.grads:
        if g.source == "return":
            out[g.wrt] = reply.value
        elif g.source.startswith("return["):
            i = int(g.source[7:-1])
            if not isinstance(reply.value, (tuple, list)) or len(reply.value) <= i:
                raise Finding("wrong-shape", tr("{name}.backward should return a pair ({grads}); it returned "
                                                "{value}.").format(name=t.name, value=describe(reply.value),
                                                                   grads=", ".join(x.name for x in t.item.grads)))
            out[g.wrt] = reply.value[i]
        elif g.source == "attr":
            out[g.wrt] = reads[g.wrt].value() if reads is not None else t.session.get(layer, g.name)
    return out


def _repro(t: Target, case: Case, look: str, dout: Any = None, twice: Mapping[str, Any] | None = None) -> str:
    if t.item.kind == "optimizer":
        return _optimizer_repro(t, case, "params")
    assign = dict(case.init) | dict(case.inputs)
    args = ", ".join(case.inputs)
    if t.item.kind == "function":
        return repro(t.origin, t.name, assign, [f"out = {t.name}({args})", f"print({look})"])
    steps = [f"layer = {t.name}({', '.join(case.init)})"]
    if t.item.observe is not None:  # a random layer: the mask the check saw comes from this seed
        steps.insert(0, f"np.random.seed({case.seed % 2**31})")
    if twice is not None:
        assign |= {f"{k}_first": v for k, v in twice.items()}
        steps.append(f"layer.forward({', '.join(f'{k}_first' for k in twice)})  " + tr("# an earlier batch"))
    steps.append(f"out = layer.forward({args})")
    if dout is not None:
        assign["dout"] = dout
        steps.append("grads = layer.backward(dout)")
    return repro(t.origin, t.name, assign, steps + [f"print({look})"])


def _look(t: Target, wrt: str) -> str:
    g = next(g for g in t.item.grads if g.wrt == wrt)
    return {"return": "grads", "attr": f"layer.{g.name}"}.get(g.source, f"grads{g.source[6:]}")


def _check_grads(t: Target, case: Case, got: Mapping[str, Any],
                 expected: Mapping[str, np.ndarray] | Callable[[], Mapping[str, np.ndarray]],
                 dout: Any, against: str, tag: str = "wrong-gradient",
                 twice: Mapping[str, Any] | None = None, quick: Mapping[str, np.ndarray] | None = None) -> None:
    """Each gradient against ``expected`` (the reference's, or a function giving them: asked only
    where a gradient is not within reach of gradprop's own answer ``quick``; ``assert_close``)."""
    earlier = None if twice is None else Case(case.init, twice, case.seed, case.extra)
    reference = _lazy(expected)

    def previous() -> Mapping[str, np.ndarray]:  # the answers at the earlier forward's input
        return _own_grads(t, earlier, dout) or oracle.vjp(t.item, earlier, dout)[1]

    for g in t.item.grads:
        evidence = (lambda which: Evidence(t.item.name, g.wrt, g.name, oracle.arguments(case),
                                           quick if which == "own" else reference(), dout, earlier and previous))
        assert_close(got[g.wrt], lambda: reference()[g.wrt], item=t.name, what=g.name, against=against,
                     rtol=t.item.rtol, atol=t.item.atol, tag=tag, evidence=evidence,
                     reproduce=lambda: _repro(t, case, _look(t, g.wrt), dout, twice), gradient=True,
                     quick=None if quick is None else quick.get(g.wrt))


def _lazy(value: Any) -> Callable[[], Any]:
    """``value``, or what the function ``value`` gives, worked out at most once."""
    if not callable(value):
        return lambda: value
    kept: list[Any] = []
    return lambda: kept[0] if kept else kept.append(value()) or kept[0]


# --- gradprop's own answers: the first oracle --------------------------------------------------------
#
# gradprop's own layers (numpy, trusted: the suite holds them to the JAX reference on every item)
# give the answer to each question in microseconds. A submission's value within a quarter of the
# tolerance of it passes there (``assertions.assert_close``); only a value that is wrong or close
# to wrong is held against the JAX reference, traced and compiled for its shape. A class of
# correct submissions is then graded without tracing or compiling a program at all.


@functools.cache
def own_session() -> InProcessSession:
    """gradprop's own layers, in this process (kept for the process: their answers are kept
    with the cases)."""
    import gradprop.layers as layers

    return InProcessSession(dict(vars(layers)))


def _own(t: Target) -> Target | None:
    """gradprop's own version of ``t``'s item, where its answers stand for the reference's: not
    for an item whose reference reads randomness off the submission's output (Dropout's mask),
    nor for gradprop's own layers themselves (the suite holds those to the reference)."""
    if t.item.observe is not None or t.item.kind not in ("layer", "function", "network"):
        return None
    own = own_session()
    name = own.resolve(t.item.names)
    if name is None or own.holds(t.session, t.name, name):
        return None
    return Target(own, t.item, name, "gradprop.layers")


def _own_answer(t: Target, case: Case, key: tuple, run: Callable[[Target], Any]) -> Any:
    """``run`` on gradprop's own version of the item, kept with the case; None where there is
    none, or where it does not answer (the reference does then)."""
    own = _own(t)  # first: gradprop's own layers are never answered by what is kept (or shipped) for them
    if own is None:
        return None
    mark = ("own", t.item.name, *key)
    if mark not in case.memo:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                case.memo[mark] = run(own)
        except Exception:  # noqa: BLE001 - no first answer: the reference is asked
            case.memo[mark] = None
    return case.memo[mark]


def _own_out(t: Target, case: Case) -> np.ndarray | None:
    return _own_answer(t, case, ("out",), lambda own: np.asarray(_ask_forward(own, case)[1].value().value, dtype=float))


def _own_grads(t: Target, case: Case, dout: Any) -> dict[str, np.ndarray] | None:
    d = np.asarray(dout)

    def run(own: Target) -> dict[str, np.ndarray]:
        if own.item.kind == "network":
            return {k: np.asarray(v, dtype=float) for k, v in _net_gradient(own, case)[1].items()}
        layer, forward = _ask_forward(own, case)
        forward.value()
        return {k: np.asarray(v, dtype=float)
                for k, v in _grads(own, layer, own.session.call(layer, "backward", dout)).items()}

    return _own_answer(t, case, ("grads", d.dtype.str, d.shape, d.tobytes()), run)


def _out_shape(t: Target, case: Case) -> tuple[int, ...]:
    """The shape of the item's output on the case (for the dout): gradprop's own, else the reference's."""
    own = _own_out(t, case)
    return own.shape if own is not None else oracle.forward(t.item, case).shape


def _against(t: Target, dout: Any) -> str:
    how = tr("dout = 1 (as the book calls loss layers)") if t.item.loss else tr("the same random dout")
    return tr("jax.vjp of reference.{ref} with {how}").format(ref=t.item.reference.__name__, how=how)


def reproduction(t: Target, case: Case) -> str:
    """The whole call sequence for a case (build, forward, backward), for findings that are not
    about one value: an exception, a timeout."""
    if t.item.kind == "network":
        return _net_repro(t, case, ["grads = net.gradient(x, t)"])
    if t.item.kind == "optimizer":
        return _optimizer_repro(t, case, "params")
    if t.item.kind == "function":
        return _repro(t, case, "out")
    try:
        dout = _dout(t, case, _out_shape(t, case))
    except Exception:  # noqa: BLE001 - the reference needs what only the layer's output tells
        dout = _dout(t, case, np.shape(case.inputs.get("x", ())))
    return _repro(t, case, "grads", dout)


# --- layer and function properties -----------------------------------------------------------------


def check_forward(t: Target, case: Case, explain: bool = False) -> None:
    if t.item.kind == "network":
        return check_net_forward(t, case, explain)
    _, reply, case = _forward(t, case, share=True)
    own = _own_out(t, case)
    assert_close(reply.value, lambda: oracle.forward(t.item, case), item=t.name, what=tr("forward output"),
                 against=f"reference.{t.item.reference.__name__}", rtol=t.item.rtol, atol=t.item.atol,
                 tag="wrong-forward", reproduce=lambda: _repro(t, case, "out"), gradient=False,
                 evidence=lambda which: Evidence(t.item.name, "out", "out", oracle.arguments(case),
                                                 {"out": own if which == "own" else oracle.forward(t.item, case)}),
                 quick=own)


def check_backward(t: Target, case: Case, explain: bool = False) -> None:
    if t.item.kind == "network":
        return check_net_gradient(t, case, explain)
    _, _, case, dout, got = _backward_grads(t, case)
    _check_grads(t, case, got, lambda: oracle.vjp(t.item, case, dout)[1], dout, _against(t, dout),
                 quick=_own_grads(t, case, dout))


def check_regime(t: Target, case: Case, explain: bool = False) -> None:
    """Forward, and backward where there is one, on the inputs of one regime."""
    check_forward(t, case, explain)
    if t.item.kind != "function":
        check_backward(t, case, explain)


def _own_objectives(t: Target, case: Case, points: list[Mapping[str, Any]], v: Any) -> list[float]:
    """<v, forward(args)> at each of ``points``, computed by the layer set itself, each on a fresh
    layer; the calls are asked for together (one request), read in order."""
    return _objectives(t, _ask_objectives(t, case, points), v)


def _ask_objectives(t: Target, case: Case, points: list[Mapping[str, Any]]) -> list[Later]:
    """The forward calls of ``_own_objectives``, asked for, read by ``_objectives``."""
    return [_ask_forward(t, Case({k: args[k] for k in case.init}, {k: args[k] for k in case.inputs}, case.seed),
                         echo=False)[1] for args in points]


def _objectives(t: Target, asked: list[Later], v: Any) -> list[float]:
    values = []
    for later in asked:
        out = as_array(later.value().value, f"{t.name}: forward output", "wrong-forward")
        if out.size != np.size(v):
            raise Finding("wrong-forward", tr("{name}: forward output has shape {shape}, expected {expected}.")
                          .format(name=t.name, shape=out.shape, expected=np.shape(v)))
        values.append(float(np.sum(np.asarray(v) * out.reshape(np.shape(v)))))
    return values


def _shape_checked(t: Target, case: Case, got: Mapping[str, Any], dout: Any) -> dict[str, np.ndarray]:
    args = oracle.arguments(case)
    arrays = {}
    for g in t.item.grads:
        a = as_array(got[g.wrt], f"{t.name}: {g.name}", "wrong-gradient")
        want = np.shape(args[g.wrt])
        if a.shape != want:
            raise Finding("wrong-shape", tr("{name}: {grad} has shape {shape}, but {wrt} has shape {want}: a gradient "
                                           "has the shape of what it differentiates.").format(
                                               name=t.name, grad=g.name, shape=a.shape, wrt=g.wrt, want=want)
                                         + reproduce_block(_repro(t, case, _look(t, g.wrt), dout)))
        arrays[g.wrt] = a
    return arrays


def check_numerical(t: Target, case: Case, explain: bool = False) -> None:
    """backward vs the central difference of the item's own forward, along a random direction.

    One projection costs two forward calls whatever the size: <u, backward(v)> must equal
    d/dh <v, forward(args + h u)>. Only when that fails (and explain is set) is the gradient
    rebuilt entry by entry, to say which entries are wrong.
    """
    if t.item.kind == "network":
        return check_net_numerical(t, case, explain)
    _, _, case, v, grads = _backward_grads(t, case)
    got = _shape_checked(t, case, grads, v)
    args, u, points = _numerical_points(t, case)
    up, down = _objectives(t, _shared_ask(t, case, "numerical asked") or _ask_objectives(t, case, points), v)
    numeric = (up - down) / (2 * STEP)
    analytic = sum(float(np.sum(u[k] * got[k])) for k in u)
    scale = sum(float(np.sum(np.abs(u[k] * got[k]))) for k in u) + abs(numeric)
    if abs(analytic - numeric) <= t.item.num_rtol * scale + 1e-9:
        return
    if explain:
        for k in u:  # entry by entry: which gradient, which entry
            assert_close(got[k], _entrywise(t, case, args, v, k), item=t.name,
                         what=next(g.name for g in t.item.grads if g.wrt == k),
                         against=tr("the central difference of your own forward, entry by entry"),
                         rtol=t.item.num_rtol, atol=1e-9, tag="wrong-gradient",
                         reproduce=lambda: _repro(t, case, _look(t, k), v), gradient=True)
    raise Finding("wrong-gradient", (
        tr("{name}: backward disagrees with the derivative of your own forward along a random direction u: "
          "sum(u * grads) = {analytic}, central difference = {numeric}.").format(
              name=t.name, analytic=repr(analytic), numeric=repr(numeric))
        + reproduce_block(_repro(t, case, "grads", v))))


def _numerical_points(t: Target, case: Case) -> tuple[dict[str, Any], dict[str, np.ndarray], list[dict[str, Any]]]:
    """(the case's arguments, the random direction u, the points args + STEP u and args - STEP u)."""
    args = oracle.arguments(case)
    rng = np.random.default_rng([case.seed, 7])
    u = {k: rng.standard_normal(np.shape(args[k])) for k in t.item.wrt}
    plus = {**args, **{k: np.asarray(args[k], dtype=float) + STEP * u[k] for k in u}}
    minus = {**args, **{k: np.asarray(args[k], dtype=float) - STEP * u[k] for k in u}}
    return args, u, [plus, minus]


def _entrywise(t: Target, case: Case, args: Mapping[str, Any], v: Any, wrt: str) -> np.ndarray:
    base = np.asarray(args[wrt], dtype=float)
    points = []
    for idx in np.ndindex(base.shape):
        e = np.zeros_like(base)
        e[idx] = STEP
        points += [{**args, wrt: base + e}, {**args, wrt: base - e}]
    values = np.array(_own_objectives(t, case, points, v), dtype=float)
    return ((values[0::2] - values[1::2]) / (2 * STEP)).reshape(base.shape)


def check_shapes(t: Target, case: Case, explain: bool = False) -> None:
    if t.item.kind == "network":
        return check_net_shapes(t, case, explain)
    _, _, case, dout, got = _backward_grads(t, case)
    _shape_checked(t, case, got, dout)


def _unchanged(t: Target, case: Case, sent: Mapping[str, Any], after: tuple, call: str, tag: str, look: str,
               dout: Any = None) -> None:
    for (name, before), now in zip(sent.items(), after):
        if not isinstance(before, np.ndarray):
            continue
        now = np.asarray(now)
        if now.shape == before.shape and np.array_equal(now, before, equal_nan=True):
            continue
        changed = int(np.sum(now != before)) if now.shape == before.shape else before.size
        idx = np.unravel_index(int(np.argmax(now != before)), before.shape) if now.shape == before.shape else None
        example = (tr(" e.g. {entry} was {before}, now {now}.").format(
            entry=f"{name}{list(map(int, idx))}", before=repr(float(before[idx])), now=repr(float(now[idx])))
                   if idx is not None else tr(" its shape became {shape}.").format(shape=now.shape))
        fix = tr("work on a copy (x = x.copy()) or build a new array") if tag == "mutates-input" else \
            tr("compute dx as a new array (np.where(mask, 0, dout) or dout * mask) instead of writing into dout")
        raise Finding(tag, tr("{call} changed its argument {name} in place ({changed} entries);{example} "
                             "The caller still needs it: {fix}.").format(
                                 call=call, name=name, changed=changed, example=example, fix=fix)
                      + reproduce_block(_repro(t, case, look, dout)))


def check_mutates_input(t: Target, case: Case, explain: bool = False) -> None:
    if t.item.kind == "network":
        return check_net_mutates_input(t, case, explain)
    _, reply, _ = _forward(t, case, share=True)
    call = t.name if t.item.kind == "function" else f"{t.name}.forward"
    _unchanged(t, case, case.inputs, reply.args_after, call, "mutates-input", ", ".join(case.inputs))


def _earlier(case: Case, item: Item) -> dict[str, Any]:
    """Other inputs of the same shapes: the differentiable inputs, reversed entry order."""
    return {k: (np.asarray(v)[::-1] if k in item.wrt and np.ndim(v) else v) for k, v in case.inputs.items()}


def _ask_stale(t: Target, case: Case, first: Mapping[str, Any]) -> tuple:
    """Build, forward(first), forward(the case's inputs) and, when the dout does not depend on the
    output (no mask to read off it), backward and the gradient reads: asked for, read by
    ``_stale_answers``."""
    layer = _build(t, case)
    args, kwargs = _split(t, first)
    earlier = t.session.later_value(layer, "forward", *args, **kwargs)
    args, kwargs = _split(t, case.inputs)
    forward = t.session.later_value(layer, "forward", *args, **kwargs)
    asked, dout = None, None
    if t.item.observe is None:
        dout = _dout(t, case, _out_shape(t, case))
        asked = (t.session.later_value(layer, "backward", dout), _ask_grads(t, layer))
    return layer, earlier, forward, asked, dout


def _stale_answers(t: Target, case: Case, pending: tuple) -> tuple[dict[str, Any], Callable[[], Any], Any, Any]:
    """(the gradients, the reference's (lazily), the dout, gradprop's own) of what ``_ask_stale`` asked."""
    layer, earlier, forward, asked, dout = pending
    earlier.value()
    seen = _observed(t, case, forward.value())
    if asked is None:
        dout = _dout(t, case, _out_shape(t, seen))
        asked = (t.session.later_value(layer, "backward", dout), None)
    got = _grads(t, layer, asked[0].value(), asked[1])
    return got, (lambda: oracle.vjp(t.item, seen, dout)[1]), dout, _own_grads(t, seen, dout)


def check_stale_state(t: Target, case: Case, explain: bool = False) -> None:
    """forward(earlier batch), forward(batch), backward: the gradient at the second batch."""

    def after(first: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
        return _stale_answers(t, case, _ask_stale(t, case, first))

    earlier = _earlier(case, t.item)
    got, expected, dout, quick = _stale_answers(t, case, _shared_ask(t, case, "stale-state asked")
                                                or _ask_stale(t, case, earlier))
    try:
        _check_grads(t, case, got, expected, dout, _against(t, dout), tag="stale-state", twice=earlier, quick=quick)
    except Finding as finding:
        if finding.tag != "stale-state":
            raise
        # The same two calls with the batch itself first: if that is wrong too, backward is simply
        # wrong (the other properties say so); only a difference is stale state. Same number of
        # calls, so a Dropout draws the same masks in both runs.
        try:
            got, expected, _, quick = after(case.inputs)
            _check_grads(t, case, got, expected, dout, _against(t, dout), quick=quick)
        except Finding:
            return
        raise Finding("stale-state", finding.message.replace(
            tr("is wrong at"), tr("is wrong after an earlier forward call, at"), 1)) from None


def check_mutates_dout(t: Target, case: Case, explain: bool = False) -> None:
    _, reply, case, dout = _backward(t, case)
    _unchanged(t, case, {"dout": dout}, reply.args_after, f"{t.name}.backward", "mutates-dout", "dout", dout)


def check_aliases_output(t: Target, case: Case, explain: bool = False) -> None:
    _, reply, _, _ = _backward(t, case)
    for out, other in reply.aliases:
        what = tr("dout itself") if other == "arg[0]" else tr("the same array as {other}").format(other=other)
        raise Finding("aliases-output", tr(
            "{name}.backward returned {what} as {out}: a caller that updates one gradient in place silently "
            "changes the other. Return a new array (dout * 1, dout.copy()).").format(name=t.name, what=what, out=out))


def check_ignores_dout(t: Target, case: Case, explain: bool = False) -> None:
    """A loss layer in the middle of a graph gets dout != 1: backward must scale with it."""
    layer, _, case = _forward(t, case)
    dout = 0.5 + float(np.random.default_rng([case.seed, 3]).random()) * 2.0
    got = _grads(t, layer, t.session.call(layer, "backward", dout))
    _check_grads(t, case, got, lambda: oracle.vjp(t.item, case, dout)[1], dout,
                 tr("jax.vjp of reference.{ref} with {how}").format(ref=t.item.reference.__name__, how=f"dout = {dout!r}"),
                 tag="ignores-dout", quick=_own_grads(t, case, dout))


# --- the networks ----------------------------------------------------------------------------------


def _keys(t: Target, case: Case) -> tuple[str, ...]:
    """The names of the network's parameters in this case (W1, b1, ...: their number depends on
    the depth drawn)."""
    return t.item.differentiated(case)


def _net(t: Target, case: Case) -> Ref:
    """Build the net, then write the case's weights into its params in place (the book's own way
    of changing them: the layers see the change only if they share the arrays)."""
    return _net_answers(t, case, _ask_net(t, case, lambda net: None))[0]


def _ask_net(t: Target, case: Case, ask: Callable[[Ref], Any]) -> tuple:
    """Ask for the net with the case's weights and for ``ask(net)``'s calls, reading nothing yet.
    The weights go in with one ``later_put``, sent with the calls in one request (where the
    session defers); where params are not plain arrays of the right shapes, that changes nothing
    and faults, so the calls after it are not run (``_net_answers`` goes on)."""
    net = _build(t, case)
    put = t.session.later_put(net, ("params",), {k: case.inputs[k] for k in _keys(t, case)})
    deferred = t.session.defers
    return net, put, deferred, ask(net) if deferred else None, ask


def _net_answers(t: Target, case: Case, asked: tuple) -> tuple[Ref, Any]:
    """(net, what ``ask`` gave) for what ``_ask_net`` asked. Where the one-step put faulted, the
    weights go in as before: params read, checked and updated one by one (``_set_params``),
    with the findings that gives, then the calls are asked again."""
    net, put, deferred, answers, ask = asked
    if deferred:  # sent along with the calls: read after asking for them
        if _put(put):
            return net, answers
    elif _put(put):  # run already: the calls come after it
        return net, ask(net)
    _set_params(t, net, case)
    return net, ask(net)


def _shared_ask(t: Target, case: Case, what: str) -> Any:
    """What the screen's ``prefetch`` asked for this case under ``what``, taken (once), or None."""
    return t.shared[1].pop(what, None) if _sharing(t, case) else None


def _put(later: Later) -> bool:
    try:
        later.value()
    except Finding:
        return False
    return True


def _set_params(t: Target, net: Ref, case: Case) -> None:
    keys = _keys(t, case)
    params = _params(t, net, keys)
    for k in keys:
        current = as_array(params[k], f"{t.name}: params['{k}']", "wrong-forward")
        want = case.inputs[k]
        if current.shape != want.shape:
            raise Finding("wrong-shape", tr("{name}: params['{key}'] has shape {shape}, expected {want} for "
                                            "{init}.").format(name=t.name, key=k, shape=current.shape,
                                                              want=want.shape, init=dict(case.init)))
        t.session.iadd(net, ("params", k), want - current)
    return net


def _params(t: Target, net: Ref, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """``net.params`` in one read; key by key (and so with the same findings) when it is not a
    dict holding every key."""
    try:
        value = t.session.get(net, "params")
    except Finding:
        value = None
    if isinstance(value, dict) and all(k in value for k in keys):
        return value
    return {k: t.session.get(net, "params", k) for k in keys}


def _seeded(t: Target, case: Case) -> None:
    """The same np.random state before every call that may draw (a network's dropout masks), so
    that loss and gradient see the same masks (the book's gradient check relies on it)."""
    t.session.seed((case.seed + 1) % 2**31)


def _train_args(t: Target) -> str:
    return "".join(f", {k}={v!r}" for k, v in t.item.train.items())


def _net_repro(t: Target, case: Case, steps: list[str]) -> str:
    init = ", ".join(f"{k}={v!r}" for k, v in case.init.items())
    keys = _keys(t, case)
    setup = [f"net = {t.name}({init})",
             "for key, value in {" + ", ".join(f"'{k}': {k}" for k in keys) + "}.items():",
             "    net.params[key][...] = value  " + tr("# in place, as the book's numerical_gradient does")]
    if any(case.init.get(k) for k in ("use_dropout",)):
        setup.append(f"np.random.seed({(case.seed + 1) % 2**31})  " + tr("# before each call: the same dropout masks"))
    return repro(t.origin, t.name, dict(case.inputs), setup + steps)


def _eval_is_train(case: Case) -> bool:
    """Whether eval mode computes what train mode does: not with batch norm (eval uses the running
    statistics) or dropout (eval scales): ``accuracy``, which predicts in eval mode, is compared
    with the (train-mode) reference only then."""
    return not (case.init.get("use_batchnorm") or case.init.get("use_dropout"))


def _own_net_forward(t: Target, case: Case) -> dict[str, np.ndarray] | None:
    """gradprop's own network's ``predict`` and ``loss`` on the case (see ``_own``)."""
    def run(own: Target) -> dict[str, np.ndarray]:
        net, out = _net(own, case), {}
        for method, args in (("predict", (case.inputs["x"],)), ("loss", (case.inputs["x"], case.inputs["t"]))):
            _seeded(own, case)
            out[method] = np.asarray(own.session.call(net, method, *args, **own.item.train).value, dtype=float)
        return out

    return _own_answer(t, case, ("net-forward",), run)


def _ask_net_forward(t: Target, case: Case) -> tuple[list, dict, tuple]:
    """(the methods checked with their expected values, gradprop's own answers, what
    ``_ask_net`` asked) for ``check_net_forward``."""
    x, tt = case.inputs["x"], case.inputs["t"]
    own = _own_net_forward(t, case) or {}
    predicted = _lazy(lambda: oracle.companion(t.item.predict, t.item, case))
    checks = [("predict", (x,), predicted), ("loss", (x, tt), lambda: oracle.forward(t.item, case))]

    def ask(net: Ref) -> list[Later]:
        if len(checks) == 2:
            # the scores that decide whether accuracy is checked (a clear argmax): gradprop's own,
            # which agree with the reference's to round-off, or the reference's
            scores = own["predict"] if "predict" in own else predicted()
            top2 = np.sort(scores, axis=1)[:, -2:] if scores.shape[1] > 1 else None
            clear = top2 is None or np.all(top2[:, 1] - top2[:, 0] > 1e-9)
            if clear and _eval_is_train(case) and t.item.accuracy:  # accuracy only where argmax is clear
                labels = tt.argmax(axis=1) if tt.ndim == 2 else tt
                checks.append(("accuracy", (x, tt), np.float64(np.mean(scores.argmax(axis=1) == labels))))
        asked = []
        for method, args, _ in checks:  # one request, with the weights
            _seeded(t, case)
            asked.append(t.session.later_value(net, method, *args, **({} if method == "accuracy" else t.item.train)))
        return asked

    return checks, own, _ask_net(t, case, ask)


def check_net_forward(t: Target, case: Case, explain: bool = False) -> None:
    checks, own, asked = _shared_ask(t, case, "net forward asked") or _ask_net_forward(t, case)
    _, asked = _net_answers(t, case, asked)
    for (method, args, expected), later in zip(checks, asked):
        reply = later.value()
        extra = "" if method == "accuracy" else _train_args(t)
        call = f"net.{method}({', '.join(['x', 't'][:len(args)])}{extra})"
        assert_close(reply.value, expected, item=t.name, what=tr("{method} output").format(method=method),
                     against=tr("the JAX reference network"),
                     rtol=t.item.rtol, atol=t.item.atol, tag="wrong-forward", gradient=False,
                     reproduce=lambda: _net_repro(t, case, [f"print({call})"]), quick=own.get(method))


def check_net_gradient(t: Target, case: Case, explain: bool = False) -> None:
    _, grads = _net_gradient(t, case)
    expected = _lazy(lambda: oracle.vjp(t.item, case, 1.0)[1])
    own = _own_grads(t, case, 1.0)
    for k in _keys(t, case):
        assert_close(grads[k], lambda: expected()[k], item=t.name, what=f"gradient()['{k}']",
                     against=tr("jax.grad of the reference loss"),
                     rtol=t.item.rtol, atol=t.item.atol, tag="wrong-gradient", gradient=True,
                     evidence=lambda which: Evidence(t.item.name, k, f"grads['{k}']", oracle.arguments(case, t.item),
                                                     own if which == "own" else expected(), 1.0),
                     reproduce=lambda: _net_repro(t, case, ["grads = net.gradient(x, t)", f"print(grads['{k}'])"]),
                     quick=None if own is None else own.get(k))


def _ask_gradient(t: Target, case: Case) -> tuple:
    """What ``_ask_net`` asks for ``_net_gradient``: the net and its ``gradient(x, t)``."""
    def ask(net: Ref) -> Later:
        _seeded(t, case)
        return t.session.later_value(net, "gradient", case.inputs["x"], case.inputs["t"])

    return _ask_net(t, case, ask)


def _net_gradient(t: Target, case: Case) -> tuple[Ref, Mapping[str, Any]]:
    """Build the net with the case's weights and call ``gradient(x, t)``: (net, the dict it
    returned). One run per case serves the screen's gradient, numerical and shape checks (the
    numerical check moves params and puts them back; the others only read the dict)."""

    def run():
        net, gradient = _net_answers(t, case, _shared_ask(t, case, "gradient asked") or _ask_gradient(t, case))
        return net, gradient.value().value

    net, value = _once(t, case, "gradient", run)
    keys = _keys(t, case)
    if isinstance(value, dict):  # B1 for b1, w1 for W1: as the session reads params
        found = {k: loose_lookup(value, k) for k in keys}
        value = {k: value[v] for k, v in found.items() if v is not None}
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise Finding("wrong-gradient", tr("{name}.gradient should return a dict with keys {keys}; it "
                                          "returned {value}.").format(name=t.name, keys=", ".join(keys),
                                                                      value=describe(value)))
    return net, value


def _net_loss(t: Target, net: Ref, case: Case) -> Later:
    """``net.loss(x, t)`` (in training mode where the network has modes), asked for now;
    ``_loss_value`` reads it."""
    _seeded(t, case)
    return t.session.later_value(net, "loss", case.inputs["x"], case.inputs["t"], **t.item.train)


def _loss_value(t: Target, later: Later) -> float:
    return float(as_array(later.value().value, f"{t.name}: loss", "wrong-forward").reshape(-1)[0])


def check_net_numerical(t: Target, case: Case, explain: bool = False) -> None:
    """The book's check: perturb ``params`` in place, call ``loss``; here along a random direction."""
    net, grads = _net_gradient(t, case)
    keys = _keys(t, case)
    got = {k: as_array(grads[k], f"{t.name}: gradient()['{k}']", "wrong-gradient") for k in keys}
    if any(got[k].shape != case.inputs[k].shape for k in keys):
        return check_net_shapes(t, case, explain)
    rng = np.random.default_rng([case.seed, 7])
    u = {k: rng.standard_normal(case.inputs[k].shape) for k in keys}

    def moved(sign: float) -> Later:
        for k in keys:
            t.session.iadd(net, ("params", k), sign * STEP * u[k])
        loss = _net_loss(t, net, case)
        for k in keys:
            t.session.iadd(net, ("params", k), -sign * STEP * u[k])
        return loss

    up, down = moved(1.0), moved(-1.0)  # one request
    numeric = (_loss_value(t, up) - _loss_value(t, down)) / (2 * STEP)
    analytic = sum(float(np.sum(u[k] * got[k])) for k in keys)
    scale = sum(float(np.sum(np.abs(u[k] * got[k]))) for k in keys) + abs(numeric)
    if abs(analytic - numeric) <= t.item.num_rtol * scale + 1e-9:
        return
    if explain:
        for k in keys:
            expected = np.zeros_like(u[k])
            for idx in np.ndindex(u[k].shape):
                e = np.zeros_like(u[k])
                e[idx] = STEP
                t.session.iadd(net, ("params", k), e)
                plus = _net_loss(t, net, case)
                t.session.iadd(net, ("params", k), -2 * e)
                minus = _net_loss(t, net, case)
                t.session.iadd(net, ("params", k), e)
                expected[idx] = (_loss_value(t, plus) - _loss_value(t, minus)) / (2 * STEP)
            assert_close(got[k], expected, item=t.name, what=f"gradient()['{k}']",
                         against=tr("the book's numerical gradient of your loss (params perturbed in place)"),
                         rtol=t.item.num_rtol, atol=1e-9, tag="wrong-gradient", gradient=True,
                         reproduce=lambda: _net_repro(t, case, ["grads = net.gradient(x, t)",
                                                        "numerical = net.numerical_gradient(x, t)",
                                                        f"print(grads['{k}'] - numerical['{k}'])"]))
    raise Finding("wrong-gradient", tr(
        "{name}: gradient() disagrees with the change of loss() when params move in place along a random "
        "direction u: sum(u * grads) = {analytic}, central difference = {numeric}. If params are copies of the "
        "layers' arrays, moving them changes nothing.").format(name=t.name, analytic=repr(analytic),
                                                                numeric=repr(numeric)))


def check_net_shapes(t: Target, case: Case, explain: bool = False) -> None:
    _, grads = _net_gradient(t, case)
    for k in _keys(t, case):
        shape = np.shape(as_array(grads[k], f"{t.name}: gradient()['{k}']", "wrong-gradient"))
        if shape != case.inputs[k].shape:
            raise Finding("wrong-shape", tr("{name}: gradient()['{key}'] has shape {shape}, but params['{key}'] has "
                                           "shape {want}.").format(name=t.name, key=k, shape=shape,
                                                                   want=case.inputs[k].shape))


def _ask_net_mutates(t: Target, case: Case) -> tuple:
    """What ``_ask_net`` asks for ``check_net_mutates_input``: a net, its loss and its gradient."""
    return _ask_net(t, case, lambda net: {
        method: t.session.later(net, method, case.inputs["x"], case.inputs["t"],
                                **(t.item.train if method == "loss" else {}))
        for method in ("loss", "gradient")})


def check_net_mutates_input(t: Target, case: Case, explain: bool = False) -> None:
    data = {"x": case.inputs["x"], "t": case.inputs["t"]}
    _, asked = _net_answers(t, case, _shared_ask(t, case, "mutates asked") or _ask_net_mutates(t, case))
    for method, later in asked.items():
        reply = later.value()
        _unchanged(t, case, data, reply.args_after, f"{t.name}.{method}", "mutates-input", "x, t")


def check_net_regime(t: Target, case: Case, explain: bool = False) -> None:
    check_net_forward(t, case, explain)
    check_net_gradient(t, case, explain)


def check_net_dropout(t: Target, case: Case, explain: bool = False) -> None:
    """With dropout on: in training mode the masks are unknown, but the same seed before each call
    gives the same masks, so ``gradient`` must agree with the change of ``loss`` (the book's own
    check); in eval mode, ``predict`` must equal the reference network with each dropout a scale,
    ``1 - dropout_ration`` (the book's Dropout) or 1 (inverted dropout)."""
    check_net_numerical(t, case, explain)
    net = _net(t, case)
    _seeded(t, case)
    reply = t.session.call(net, "predict", case.inputs["x"], train_flg=False)
    ratio = case.init["dropout_ration"]
    options = [oracle.companion(t.item.predict, t.item, Case(case.init, case.inputs, case.seed, {"dropout_scale": s}))
               for s in (1.0 - ratio, 1.0)]
    got = as_array(reply.value, f"{t.name}: predict output", "wrong-forward")
    expected = min(options, key=lambda o: float(np.max(np.abs(o - got))) if o.shape == got.shape else np.inf)
    assert_close(got, expected, item=t.name, what=tr("predict output with train_flg=False"),
                 against=tr("the reference network with each dropout scaling by 1 - dropout_ration (or by 1: "
                            "inverted dropout)"),
                 rtol=t.item.rtol, atol=t.item.atol, tag="wrong-forward", gradient=False,
                 reproduce=lambda: _net_repro(t, case, ["print(net.predict(x, train_flg=False))"]))


#: the checks that read the screen's prefetched network runs (``prefetch``; the generic ones hand
#: a network to the ``check_net_*`` of the same name)
_NET_FORWARD_READERS = {check_forward, check_net_forward, check_net_regime}
_NET_GRADIENT_READERS = {check_backward, check_numerical, check_shapes, check_net_gradient, check_net_numerical,
                         check_net_shapes, check_net_regime, check_net_dropout}
_NET_MUTATES_READERS = {check_mutates_input, check_net_mutates_input}


# --- which properties apply to an item -------------------------------------------------------------


def properties_for(item: Item) -> list[Property]:
    """Every property of the item, core first, in a fixed order (pytest ids, grading weights)."""
    # ``about`` is translated where it is shown (item_feedback): N_ only marks it
    if item.kind == "optimizer":
        return _optimizer_properties(item)
    props = [Property("forward", CORE, check_forward, N_("forward agrees with the JAX reference"))]
    if item.kind != "function":
        props += [
            Property("backward", CORE, check_backward, N_("backward agrees with jax.vjp of the reference")),
            Property("numerical", CORE, check_numerical,
                     N_("backward agrees with the numerical gradient of your forward")),
            Property("shapes", CORE, check_shapes, N_("every gradient has the shape of what it differentiates")),
        ]
    props.append(Property("mutates-input", CORE, check_mutates_input, N_("forward leaves its inputs unchanged")))
    if item.kind == "layer":
        props.append(Property("stale-state", CORE, check_stale_state,
                              N_("forward twice, then backward: the gradient at the second input")))
    regime_check = check_net_regime if item.kind == "network" else check_regime
    for name, kwargs in item.regimes.items():
        props.append(Property(name, CORE, regime_check, f"correct on the '{name}' inputs", kwargs))
    for name, ext in item.extensions.items():  # a finding here costs the extension, never the item
        props.append(Property(name, CORE, regime_check, ext.about, ext.regime, ext.chapter))
    if item.kind == "layer":
        if not item.loss:
            props.append(Property("mutates-dout", STRICT, check_mutates_dout, N_("backward leaves dout unchanged")))
        props.append(Property("aliases-output", STRICT, check_aliases_output,
                              N_("backward returns new arrays, not dout itself or one array twice")))
        if item.loss:
            props.append(Property("ignores-dout", STRICT, check_ignores_dout, N_("backward scales with dout")))
    return props + list(item.properties)


# --- item-specific properties (named by their registry entries) ------------------------------------


def _with_inputs(case: Case, **inputs: Any) -> Case:
    return Case(case.init, {**case.inputs, **inputs}, case.seed, case.extra)


def _big_batch(case: Case) -> np.ndarray:
    """2000 entries in [0.5, 1.5]: enough that a drop rate is measurable and some entry is kept."""
    return np.random.default_rng([case.seed, 11]).uniform(0.5, 1.5, size=(40, 50))


def check_dropout_rate(t: Target, case: Case, explain: bool = False) -> None:
    """On a 2000-entry batch the kept share is 1 - dropout_ratio within 6 standard deviations."""
    ratio = case.init["dropout_ratio"]
    x = _big_batch(case)
    _, reply, _ = _forward(t, _with_inputs(case, x=x))
    out = as_array(reply.value, f"{t.name}: forward output", "wrong-forward")
    kept = float(np.mean(out != 0)) if out.shape == x.shape else float("nan")
    sigma = np.sqrt(ratio * (1 - ratio) / x.size)
    if not abs(kept - (1 - ratio)) <= 6 * sigma:
        raise Finding("wrong-forward", tr(
            "{call}: forward kept {kept} of {size} entries in train mode; expected about {want} (each entry "
            "dropped with probability dropout_ratio).").format(call=f"{t.name}(dropout_ratio={ratio})",
                                                              kept=f"{kept:.3f}", size=x.size, want=f"{1 - ratio:.3f}"))


def check_dropout_eval(t: Target, case: Case, explain: bool = False) -> None:
    """Eval output = the expected train output (book: x * (1 - ratio); inverted dropout: x), and it
    depends on no mask: another seed gives the same output."""
    ratio = case.init["dropout_ratio"]
    # the train convention, read off a batch large enough that some entries are surely kept
    _, _, train = _forward(t, _with_inputs(case, x=_big_batch(case), train_flg=True))
    ev = _with_inputs(case, train_flg=False)
    _, reply, _ = _forward(t, ev)
    _needs(t, reply, tr("eval mode (train_flg=False)"))
    scale = train.extra["scale"]
    if not train.extra["sure"]:  # a train forward that is neither convention: eval may be either
        got = np.asarray(reply.value, dtype=float) if isinstance(reply.value, np.ndarray) else None
        x = np.asarray(case.inputs["x"])
        if got is not None and got.shape == x.shape:
            scale = min((1.0, 1.0 / (1.0 - ratio)), key=lambda s: float(np.abs(got - x * (1 - ratio) * s).max()))
    expected = np.asarray(case.inputs["x"]) * (1 - ratio) * scale
    convention = "x * (1 - dropout_ratio)" if scale == 1.0 else tr("x (inverted dropout)")
    assert_close(reply.value, expected, item=t.name, what=tr("forward output with train_flg=False"),
                 against=tr("the expected train output, {convention}").format(convention=convention),
                 rtol=t.item.rtol, atol=t.item.atol,
                 tag="wrong-forward", reproduce=lambda: _repro(t, ev, "out"), gradient=False)
    _, again, _ = _forward(t, Case(ev.init, ev.inputs, ev.seed + 1))
    assert_close(again.value, expected, item=t.name, what=tr("forward output with train_flg=False (another seed)"),
                 against=tr("the same call under another np.random seed: eval mode uses no mask"),
                 rtol=t.item.rtol, atol=t.item.atol, tag="wrong-forward", reproduce=lambda: _repro(t, ev, "out"),
                 gradient=False)


def check_batchnorm_eval(t: Target, case: Case, explain: bool = False) -> None:
    """Eval mode normalises with the running statistics given to the constructor."""
    ev = _with_inputs(case, train_flg=False)
    _, reply, ev = _forward(t, ev)
    _needs(t, reply, tr("eval mode (train_flg=False, with the running statistics it was given)"))
    assert_close(reply.value, lambda: oracle.forward(t.item, ev), item=t.name,
                 what=tr("forward output with train_flg=False"), quick=_own_out(t, ev),
                 against=tr("reference.batch_normalization_eval with the running statistics"), rtol=t.item.rtol,
                 atol=t.item.atol, tag="wrong-forward", reproduce=lambda: _repro(t, ev, "out"), gradient=False)


def check_batchnorm_constant(t: Target, case: Case, explain: bool = False) -> None:
    """Train mode on a batch where some feature has variance 0: the output there is beta (x minus
    its mean is 0, whatever eps), and the output and every gradient are finite: eps must be inside
    the square root, or the layer divides by 0."""
    _, _, case, dout, grads = _backward_grads(t, case)
    out = _forward(t, case, share=True)[1].value
    values = [("out", out, "out")] + [(g.name, grads[g.wrt], _look(t, g.wrt)) for g in t.item.grads]
    for name, value, shown in values:
        a = as_array(value, f"{t.name}: {name}", "wrong-gradient" if name != "out" else "wrong-forward")
        if not np.all(np.isfinite(a)):
            raise Finding("non-finite", tr(
                "{name}: {what} has NaN or inf on a batch where a feature has the same value in every example "
                "(variance 0): the normalisation divides by sqrt(var). Put a small eps inside the square root, "
                "as the book does: `np.sqrt(var + 10e-7)`.").format(name=t.name, what=name)
                          + reproduce_block(_repro(t, case, shown, dout)))
    x = np.asarray(case.inputs["x"]).reshape(len(case.inputs["x"]), -1)
    flat = as_array(out, f"{t.name}: forward output", "wrong-forward").reshape(len(x), -1)
    still = np.ptp(x, axis=0) == 0
    beta = np.broadcast_to(np.asarray(case.init["beta"]).reshape(-1), flat.shape[1:])
    assert_close(flat[:, still], np.broadcast_to(beta[still], flat[:, still].shape), item=t.name,
                 what=tr("forward output where the feature is constant"), against=tr("beta (x minus its mean is 0)"),
                 rtol=t.item.rtol, atol=t.item.atol, tag="wrong-forward", gradient=False,
                 reproduce=lambda: _repro(t, case, "out"))


def check_running_stats(t: Target, case: Case, explain: bool = False) -> None:
    """Train mode moves running_mean/var by momentum towards the batch's; eval mode leaves them."""
    layer = _build(t, case)
    x = np.asarray(case.inputs["x"]).reshape(len(case.inputs["x"]), -1)
    m, mean0, var0 = case.init["momentum"], case.init["running_mean"], case.init["running_var"]
    want = {"running_mean": m * mean0 + (1 - m) * x.mean(axis=0),
            "running_var": m * var0 + (1 - m) * x.var(axis=0)}
    args, kwargs = _split(t, case.inputs, train_flg=True)
    _needs(t, t.session.call(layer, "forward", *args, **kwargs), tr("the running statistics"))
    # (each ``what`` starts with the value's name: assert_close names the worst entry by it)
    for when in (N_("{name} after forward(x, train_flg=True)"),
                 N_("{name} after a further forward(x, train_flg=False)")):
        for name, expected in want.items():
            assert_close(t.session.get(layer, name), expected, item=t.name, what=tr(when).format(name=name),
                         against=tr("momentum * {name} + (1 - momentum) * the batch's {stat}").format(
                             name=name, stat=name.split("_")[1]),
                         rtol=t.item.rtol, atol=t.item.atol, tag="wrong-forward", gradient=False,
                         reproduce=lambda: _repro(t, case, f"layer.{name}"))
        args, kwargs = _split(t, case.inputs, x=np.asarray(case.inputs["x"])[::-1] * 2.0, train_flg=False)
        _needs(t, t.session.call(layer, "forward", *args, **kwargs), tr("the running statistics"))


# --- the optimizers --------------------------------------------------------------------------------


def _steps(case: Case) -> list[dict[str, np.ndarray]]:
    """The gradients of each step: ``case.inputs['grads']`` holds them stacked per key."""
    grads = case.inputs["grads"]
    return [{k: g[i] for k, g in grads.items()} for i in range(len(next(iter(grads.values()))))]


def _optimizer_repro(t: Target, case: Case, look: str) -> str:
    assign = {**case.init, "params": dict(case.inputs["params"]), "grads": _steps(case)}
    return repro(t.origin, t.name, assign, [
        f"optimizer = {t.name}({', '.join(case.init)})",
        "for step, g in enumerate(grads, 1):  " + tr("# one update per step, on the same params"),
        "    optimizer.update(params, g)",
        f"    print(step, {look})"])


def _trajectory(t: Target, case: Case) -> list[tuple[dict, dict, Reply]]:
    """Build the optimizer and call ``update(params, grads)`` once per step, each time on the params
    the previous call left: (params sent, grads sent, the reply) per step. One run per case serves
    every optimizer property in the screen."""

    def run():
        opt = _build(t, case)
        params = {k: np.array(v, dtype=float) for k, v in case.inputs["params"].items()}
        calls = []
        for grads in _steps(case):
            reply = t.session.call(opt, "update", params, grads)
            calls.append((params, grads, reply))
            after = reply.args_after[0] if reply.args_after else None
            if not isinstance(after, dict):
                raise Finding("wrong-update", tr("{name}.update left params as {value}, not a dict of arrays.")
                              .format(name=t.name, value=describe(after)))
            params = after
        return calls

    return _once(t, case, "trajectory", run)


def check_update(t: Target, case: Case, explain: bool = False) -> None:
    """params after each step against the reference trajectory, as moves from where they started:
    the tolerance is relative to how far the step went, not to the size of the parameters."""
    calls = _trajectory(t, case)
    expected = oracle.forward(t.item, case)
    start = case.inputs["params"]
    ref_name = t.item.reference.__name__
    args = {**_defaults(t.item.reference), **case.init, **case.inputs}  # what a slip computes from
    for i, (_, _, reply) in enumerate(calls):
        after = reply.args_after[0]
        # a NaN or inf first: it says the most (a 0 / 0 where an eps is missing)
        for k, p0 in sorted(start.items(), key=lambda kv: _finite(after.get(kv[0]))):
            got = as_array(after.get(k), f"{t.name}: params['{k}'] after update", "wrong-update")
            if got.shape != p0.shape:
                raise Finding("wrong-update", tr("{name}.update changed the shape of params['{key}'] from {was} to "
                                                 "{shape}.").format(name=t.name, key=k, was=p0.shape, shape=got.shape))
            assert_close(got - p0, expected[k][i] - p0, item=t.name,
                         what=tr("params['{key}'] - its start, after step {step}").format(key=k, step=i + 1),
                         against=tr("the trajectory of reference.{ref} (the book's formulas)").format(ref=ref_name),
                         rtol=t.item.rtol, atol=t.item.atol, tag="wrong-update", gradient=False,
                         reproduce=lambda: _optimizer_repro(t, case, f"params['{k}']"),
                         evidence=Evidence(t.item.name, f"{k}@{i}", f"params['{k}']", args,
                                           {f"{k}@{i}": expected[k][i] - p0}))


def _defaults(fn) -> dict[str, Any]:
    """The default arguments of a reference (an optimizer's book hyperparameters)."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def _finite(value: Any) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=float))))
    except (TypeError, ValueError):
        return True


_REBOUND = re.compile(r"^arg\[0\]\['(.*)'\]$")


def check_in_place(t: Target, case: Case, explain: bool = False) -> None:
    """Each update changes the arrays of params in place: a network's layers hold those very arrays."""
    for params, _, reply in _trajectory(t, case):
        rebound = [m.group(1) for fact, other in reply.aliases if other == "rebound"
                   for m in [_REBOUND.match(fact)] if m]
        after = reply.args_after[0]
        unchanged = all(np.array_equal(np.asarray(after.get(k)), v) for k, v in params.items())
        if rebound:
            why = tr("{name}.update put a new array into params['{key}'] instead of changing the array in it "
                     "(params[key] = params[key] - ... rebinds; params[key] -= ... changes it in place).").format(
                         name=t.name, key=rebound[0])
        elif unchanged and isinstance(reply.value, dict):
            why = tr("{name}.update returned new params and left the ones it was given unchanged.").format(name=t.name)
        else:
            continue
        raise Finding("not-in-place", why + " " + tr(
            "A network's layers hold the very arrays of its params dict: the trainer calls "
            "optimizer.update(network.params, grads) and the layers must see the change, so update changes the "
            "arrays of params in place.") + reproduce_block(_optimizer_repro(t, case, "params")))


def check_update_mutates_grads(t: Target, case: Case, explain: bool = False) -> None:
    for _, grads, reply in _trajectory(t, case):
        after = reply.args_after[1] if len(reply.args_after) > 1 and isinstance(reply.args_after[1], dict) else {}
        _unchanged(t, case, {f"grads['{k}']": v for k, v in grads.items()}, tuple(after.get(k) for k in grads),
                   f"{t.name}.update", "mutates-input", "grads")


def _optimizer_properties(item: Item) -> list[Property]:
    props = [
        Property("update", CORE, check_update, N_("update moves params as the reference does, step after step")),
        Property("in-place", CORE, check_in_place, N_("update changes the arrays of params in place")),
        Property("mutates-input", CORE, check_update_mutates_grads, N_("update leaves grads unchanged")),
    ]
    for name, kwargs in item.regimes.items():
        props.append(Property(name, CORE, check_update, f"correct on the '{name}' inputs", kwargs))
    return props + list(item.properties)


# --- im2col and col2im -----------------------------------------------------------------------------


def check_adjoint(t: Target, case: Case, explain: bool = False) -> None:
    """<im2col(x), col> == <x, col2im(col)> for a random x: col2im is the adjoint of im2col (each
    entry of col goes back to the pixel im2col read it from, overlapping windows adding up). The
    im2col is the reference's, so that a wrong col2im is named as such whatever the layer set's
    own im2col does (its own item checks that)."""
    a = case.inputs
    shape, col = tuple(a["input_shape"]), np.asarray(a["col"])
    x = np.random.default_rng([case.seed, 5]).standard_normal(shape)
    back = as_array(t.session.call(t.name, None, *a.values()).value, f"{t.name}: output", "wrong-forward")
    if back.shape != shape:
        raise Finding("wrong-shape", tr("{name}(col, input_shape, ...) returned shape {shape}; it must return "
                                        "input_shape {want}.").format(name=t.name, shape=back.shape, want=shape)
                      + reproduce_block(_repro(t, case, "out.shape")))
    window = {k: a[k] for k in ("filter_h", "filter_w", "stride", "pad")}
    cols = oracle.companion(reference.im2col, t.item, Case({}, {"input_data": x, **window}, case.seed))
    lhs, rhs = float(np.sum(cols * col)), float(np.sum(x * back))
    scale = float(np.sum(np.abs(cols * col))) + float(np.sum(np.abs(x * back)))
    if abs(lhs - rhs) <= 1e-9 * scale + 1e-12:
        return
    if explain:  # which pixels, and which slip
        expected = oracle.forward(t.item, case)
        assert_close(back, expected, item=t.name, what=tr("col2im output"),
                     against=tr("the adjoint of im2col: <im2col(x), col> == <x, col2im(col)> for every x"),
                     rtol=t.item.rtol, atol=t.item.atol, tag="wrong-forward", gradient=False,
                     reproduce=lambda: _repro(t, case, "out"),
                     evidence=Evidence(t.item.name, "out", "out", oracle.arguments(case), {"out": expected}))
    raise Finding("wrong-forward", tr(
        "{name} is not the adjoint of im2col: for a random x, <im2col(x), col> = {lhs} but <x, col2im(col)> = "
        "{rhs}. col2im must send every entry of col back to the pixel im2col read it from, adding up where "
        "windows overlap (stride smaller than the filter).").format(name=t.name, lhs=repr(lhs), rhs=repr(rhs))
                  + reproduce_block(_repro(t, case, "out")))
