"""The registry's vocabulary: a generated case, a gradient, a property, an item."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from hypothesis import strategies as st


@dataclass(frozen=True)
class Case:
    """One generated example: constructor arguments, forward inputs (both in call order), and a
    seed from which the random ``dout`` and the random projection directions are drawn."""

    init: Mapping[str, Any]
    inputs: Mapping[str, Any]
    seed: int
    #: arguments for the reference only, read off the layer's own output (a dropout mask)
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: what is worked out from this case alone (the reference's answers, the dout), kept with
    #: it: the cases are drawn once per process and met again by every submission
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Property:
    """One generic or item-specific check: ``check(target, case, explain)`` raises a Finding."""

    name: str
    tier: str
    check: Callable[..., None]
    about: str
    #: keyword arguments for the item's ``cases`` (a regime), or none
    regime: Mapping[str, Any] = field(default_factory=dict)
    #: for an extension, the chapter that adds the requirement; None for the item's own (core) checks
    chapter: int | None = None


@dataclass(frozen=True)
class Grad:
    """A gradient the item produces: its name, the argument it differentiates, and where it is.

    ``source`` is ``"return"`` (backward's return value), ``"return[i]"`` (the i-th of a returned
    tuple), ``"attr"`` (an attribute named ``name`` set by backward) or ``"dict"`` (the entry
    ``wrt`` of the dict a network's ``gradient`` returns).
    """

    name: str
    wrt: str
    source: str


@dataclass(frozen=True)
class Extension:
    """A requirement the book adds after the item's first appearance (label indices, rank > 2
    input, padding): the chapter that adds it, the keyword arguments for ``cases`` that exercise it,
    and what it asks. The item's chapter-text form need not meet it; it is always checked and
    reported, and costs marks only when a rubric or ``--chapter`` counts it."""

    chapter: int
    regime: Mapping[str, Any]
    about: str


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per item
class Item:
    name: str
    #: a layer (forward/backward), a function, a network (params, loss, gradient) or an optimizer
    #: (``update(params, grads)`` in place)
    kind: Literal["layer", "function", "network", "optimizer"]
    #: the pure JAX function, called with the case's inputs and init arguments by name
    reference: Callable[..., Any]
    #: ``cases(**regime)`` -> strategy of Case
    cases: Callable[..., st.SearchStrategy[Case]]
    grads: tuple[Grad, ...] = ()
    #: other names the item may be defined under
    aliases: tuple[str, ...] = ()
    #: the chapter of the book where the item first appears in the form graded here
    chapter: int = 5
    #: extra regimes, each a set of keyword arguments for ``cases``: "batch-1": {"batch": 1}
    regimes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: requirements later chapters add, by name: "rank>2": Extension(7, {...}, "...")
    extensions: Mapping[str, Extension] = field(default_factory=dict)
    #: a loss layer: called with dout=1; strict check that it scales with dout
    loss: bool = False
    #: |yours - expected| <= atol + rtol * max|expected|, against the JAX reference
    rtol: float = 1e-9
    atol: float = 1e-12
    #: the same, against the central-difference derivative of the item's own forward
    num_rtol: float = 1e-6
    why: str = ""
    notes: str = ""
    #: reads reference-only arguments off the layer's forward output: ``observe(case, out) -> case``
    observe: Callable[[Case, Any], Case] | None = None
    #: checks only this item needs (BatchNormalization's running statistics)
    properties: tuple[Property, ...] = ()
    #: constructor arguments and forward inputs a correct signature may lack (a Dropout without
    #: ``train_flg``): passed by name, fitted to the signature (``session.fit_arguments``), and
    #: left out where it has no place for them; only the checks of that feature then fail
    optional: tuple[str, ...] = ()
    #: the book's signature, for messages about what a signature lacks
    api: str = ""
    #: a network: the reference of its ``predict`` (its ``reference`` is the loss)
    predict: Callable[..., Any] | None = None
    #: a network: keyword arguments of its ``predict`` and ``loss`` calls (``train_flg=True``: the
    #: book's MultiLayerNetExtend predicts in eval mode unless told)
    train: Mapping[str, Any] = field(default_factory=dict)
    #: a network: whether ``accuracy(x, t)`` is compared (the book's SimpleConvNet counts whole
    #: batches of 100 only, and so gives 0 for fewer examples)
    accuracy: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def wrt(self) -> tuple[str, ...]:
        return tuple(g.wrt for g in self.grads)

    def differentiated(self, case: Case) -> tuple[str, ...]:
        """The arguments the item's gradients differentiate in ``case``: its grads' ``wrt``; for a
        network whose parameters depend on the case (a depth drawn with it, no ``grads``), every
        input but the data ``x`` and ``t``."""
        if self.grads or self.kind != "network":
            return self.wrt
        return tuple(k for k in case.inputs if k not in ("x", "t"))
