"""``gradprop gradcheck PATH``: the book's own gradient check, as its readers run it.

The book checks its networks by comparing ``network.gradient(x, t)`` (backprop) with
``network.numerical_gradient(x, t)`` (central differences of ``loss``) and printing, per
parameter, the mean absolute difference (``ch05/gradient_check.py``,
``ch06/batch_norm_gradient_check.py``, ``ch07/gradient_check.py``). This command does the same
on the user's own network, and says what the numbers mean:

- per parameter: the book's mean |gradient - numerical|, the largest difference, the relative
  error ``||g - n|| / (||g|| + ||n||)`` and a verdict (agree, close, differ);
- where the network is one of the book's (a registry network), a third opinion: ``jax.grad`` of
  the JAX reference at the network's own weights, which says which of the two is wrong;
- on generated data by default (small networks: seconds), or on MNIST with ``--mnist PATH``
  (the book's networks and batch, as its scripts build them). PATH is the book's ``mnist.pkl``,
  or a folder holding it or the IDX files (``train-images-idx3-ubyte[.gz]`` and
  ``train-labels-idx1-ubyte[.gz]``). Nothing is downloaded.

The user's code runs only in the sandbox (``SandboxSession``), as under ``check`` and ``grade``;
so does unpickling ``mnist.pkl`` (a pickle is code). IDX files are plain bytes, read here.

Exit status: 0 when gradient and numerical gradient agree (or are close) for every parameter of
every network checked; 1 when one differs, a call fails, or the file cannot be imported; 2 for a
usage error (no such path, no such network, no dataset files where MNIST was asked for).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

import numpy as np

from .i18n import _, use

#: gradprop's own central-difference step. The book's numerical_gradient takes 1e-4; in float64 a
#: smaller step crosses fewer kinks (ReLU at 0, a pooling window whose maximum changes), where any
#: numerical gradient is off, while its round-off (1e-16 * loss / h) stays near 1e-10
H = 1e-6
#: relative error ||g - n|| / (||g|| + ||n||) up to which the two agree, and up to which they are
#: close. Agree: the book's h = 1e-4 leaves about h^2 = 1e-8 of the gradient, and its delta = 1e-7
#: in the log adds 1e-7 / y to the numerical gradient that backprop's y - t leaves out (1e-6 at
#: y = 0.1, 1e-5 at y = 0.01). Close: a step that crosses a kink, or float32 data, leaves that much
AGREE, CLOSE = 1e-5, 1e-3
#: per entry, the size below which a gradient counts as 0 in the relative error (a bias before batch
#: norm has gradient 0, which backprop gives as 1e-16): the numerical gradient's own noise
FLOOR = 1e-9
#: entries of each parameter gradprop perturbs itself when the network has no numerical_gradient
ENTRIES = 100
SCHEMA = 1


class UsageError(ValueError):
    """A bad PATH, network name or dataset path: exit status 2, nothing checked."""


# --- what each network is checked on ---------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """How a network is built and fed for its check: constructor keywords, batch size, whether it
    takes images (N, C, H, W) and whether its labels are one-hot."""

    kwargs: Mapping[str, Any]
    batch: int
    image: bool = False
    one_hot: bool = True


_CONV_10 = {"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1}
#: small networks on generated data: every parameter's numerical gradient in a few seconds
GENERATED = {
    "TwoLayerNet": Setup({"input_size": 20, "hidden_size": 10, "output_size": 5}, 3),
    "MultiLayerNet": Setup({"input_size": 20, "hidden_size_list": [10, 10], "output_size": 5}, 3),
    "MultiLayerNetExtend": Setup({"input_size": 20, "hidden_size_list": [10, 10], "output_size": 5,
                                  "use_batchnorm": True}, 3),
    # ch07/gradient_check.py: a 10 x 10 image, 10 filters of 3 x 3, label indices
    "SimpleConvNet": Setup({"input_dim": (1, 10, 10), "conv_param": _CONV_10, "hidden_size": 10, "output_size": 10,
                            "weight_init_std": 0.01}, 1, image=True, one_hot=False),
}
#: on MNIST, the networks and batches of the book's scripts
MNIST = {
    "TwoLayerNet": Setup({"input_size": 784, "hidden_size": 50, "output_size": 10}, 3),  # ch05/gradient_check.py
    "MultiLayerNet": Setup({"input_size": 784, "hidden_size_list": [100, 100], "output_size": 10}, 1),
    "MultiLayerNetExtend": Setup({"input_size": 784, "hidden_size_list": [100, 100], "output_size": 10,
                                  "use_batchnorm": True}, 1),  # ch06/batch_norm_gradient_check.py
    "SimpleConvNet": Setup({"input_dim": (1, 28, 28), "conv_param": _CONV_10, "hidden_size": 10, "output_size": 10,
                            "weight_init_std": 0.01}, 1, image=True, one_hot=False),
}


# --- MNIST, from the book's files ------------------------------------------------------------------


@dataclass(frozen=True)
class Mnist:
    """The first ``n`` training images (float64 in [0, 1], 784 values each) and their labels."""

    images: np.ndarray
    labels: np.ndarray
    source: str


IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def find_mnist(path: str) -> tuple[str, list[Path]]:
    """("pickle", [mnist.pkl]) or ("idx", [images, labels]) for a path the user gave: the pickle
    itself, or a folder holding the IDX files (preferred: reading them runs no code) or mnist.pkl."""
    p = Path(os.path.expanduser(path))
    if p.is_file():
        if p.suffix == ".pkl":
            return "pickle", [p]
        if any(p.name.startswith(name) for name in IDX):  # one IDX file named: its partner beside it
            p = p.parent
        else:
            raise UsageError(_("{path} is neither the book's mnist.pkl nor an MNIST IDX file").format(path=path))
    if p.is_dir():
        idx = [next((f for f in (p / name, p / f"{name}.gz") if f.is_file()), None) for name in IDX]
        if all(idx):
            return "idx", idx  # type: ignore[return-value]
        if (p / "mnist.pkl").is_file():
            return "pickle", [p / "mnist.pkl"]
    raise UsageError(_(
        "no MNIST files at {path}: gradprop looks for the book's mnist.pkl, or for train-images-idx3-ubyte.gz and "
        "train-labels-idx1-ubyte.gz (the IDX files, gzipped or not). It does not download them: run the book's "
        "dataset/mnist.py once (it downloads the IDX files and writes mnist.pkl beside them), then point "
        "--mnist at that dataset folder.").format(path=path))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format: a magic number giving the type and rank, the sizes, the data)."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(_("{path} is not an IDX file of unsigned bytes").format(path=path))
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UsageError(_("{path} is cut short: {n} values for the shape {shape}").format(
            path=path, n=data.size, shape=shape))
    return data.reshape(shape)


def load_mnist(path: str, session: Any, n: int) -> Mnist:
    """The first ``n`` training examples. A pickle is unpickled in ``session``'s sandboxed child."""
    kind, files = find_mnist(path)
    if kind == "idx":
        images, labels = read_idx(files[0]), read_idx(files[1])
    else:
        doc = session.unpickle(files[0].read_bytes(), _("unpickling {file}").format(file=files[0].name))
        if not isinstance(doc, dict) or not {"train_img", "train_label"} <= set(doc):
            raise UsageError(_("{path} is not the book's mnist.pkl (a dict with train_img and train_label)").format(
                path=files[0]))
        images, labels = np.asarray(doc["train_img"]), np.asarray(doc["train_label"])
    images = images.reshape(len(images), -1)
    if images.shape[1] != 784 or len(labels) < n or len(images) < n:
        raise UsageError(_("{path}: expected at least {n} images of 28 x 28 with their labels").format(path=path, n=n))
    return Mnist(images[:n].astype(np.float64) / 255.0, labels[:n].astype(np.int64), str(files[0]))


def batch_for(setup: Setup, mnist: Mnist | None, batch: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, t) for a network: MNIST's first examples (normalised, as load_mnist(normalize=True)
    gives them), or generated ones, with one-hot or index labels as the book's script uses."""
    n = batch or setup.batch
    classes = setup.kwargs["output_size"]
    if mnist is not None:
        x, labels = mnist.images[:n], mnist.labels[:n]
    else:
        rng = np.random.default_rng(seed)
        size = setup.kwargs["input_dim"] if setup.image else (setup.kwargs["input_size"],)
        x, labels = rng.random((n, int(np.prod(size)))), rng.integers(0, classes, n)
    if setup.image:
        x = x.reshape(n, *setup.kwargs["input_dim"])
    return x, (np.eye(classes)[labels] if setup.one_hot else labels)


# --- the check -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamCheck:
    """One parameter: gradient against the numerical gradient (and the reference, where known)."""

    key: str
    shape: tuple[int, ...]
    mean_diff: float
    max_diff: float
    rel_error: float
    verdict: str  # agree / close / differ
    #: how many entries the numerical gradient covers (all, or a sample gradprop perturbed)
    entries: int
    #: the worst entry: (index, gradient, numerical)
    worst: tuple[tuple[int, ...], float, float] | None = None
    #: relative error of gradient and of the numerical gradient against the JAX reference
    ref_gradient: float | None = None
    ref_numerical: float | None = None


@dataclass(frozen=True)
class NetworkCheck:
    name: str
    call: str
    data: str
    numerical: str  # "yours" or "ours"
    params: tuple[ParamCheck, ...] = ()
    #: the network's own failure (a raise, a hang, a wrong return), or None
    error: str | None = None
    #: why the JAX reference could not be compared, or None (it was, or the network has none)
    reference_note: str | None = None
    reference: bool = False

    @property
    def ok(self) -> bool:
        """No parameter differs, unless the reference shows that gradient is the right one (the
        numerical gradient crossed a kink, or numerical_gradient is wrong: not backprop)."""
        return self.error is None and all(p.verdict != "differ" or backprop_confirmed(p) for p in self.params)


def backprop_confirmed(p: "ParamCheck") -> bool:
    return p.ref_gradient is not None and p.ref_gradient <= AGREE


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): 0 when equal, 1 when opposite or one is 0; gradients smaller
    than FLOOR per entry count as 0 (both 1e-16 and 0 are a zero gradient)."""
    den = max(float(np.linalg.norm(a) + np.linalg.norm(b)), FLOOR * np.sqrt(max(np.size(a), 1)))
    return float(np.linalg.norm(a - b)) / den


def verdict(rel: float) -> str:
    return "agree" if rel <= AGREE else "close" if rel <= CLOSE else "differ"


def _array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (np.ndarray, float, int, np.number)) and not isinstance(value, bool):
        return np.asarray(value, dtype=np.float64)
    raise ValueError(_("{what} should be a numpy array; it is {value!r}").format(what=what, value=value))


def _dict_of_arrays(value: Any, what: str) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or not value:
        raise ValueError(_("{what} should be a dict of arrays; it is {value!r}").format(what=what, value=value))
    return {str(k): _array(v, f"{what}['{k}']") for k, v in value.items()}


def _our_numerical(session: Any, net: Any, keys: Sequence[str], params: Mapping[str, np.ndarray], x, t,
                   train: Mapping[str, Any], entries: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Central differences as the book takes them (params perturbed in place, loss called; h = H), over at
    most ``entries`` entries of each parameter (chosen at random, the same on every run): per key,
    (the flat indices perturbed, their numerical derivatives)."""
    rng = np.random.default_rng(0)
    where, values = {}, {}
    for key in keys:
        size = params[key].size
        chosen = np.arange(size) if size <= entries else np.sort(rng.choice(size, entries, replace=False))
        asked = []
        for flat in chosen:
            e = np.zeros(params[key].shape)
            e.flat[flat] = H
            session.iadd(net, ("params", key), e)
            plus = session.later(net, "loss", x, t, **train)
            session.iadd(net, ("params", key), -2 * e)
            minus = session.later(net, "loss", x, t, **train)
            session.iadd(net, ("params", key), e)
            asked.append((plus, minus))
        values[key] = np.array([(float(np.asarray(p.value().value).reshape(-1)[0])
                                 - float(np.asarray(m.value().value).reshape(-1)[0])) / (2 * H) for p, m in asked])
        where[key] = chosen
    return where, values


def _reference(item: Any, setup: Setup, x, t, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """jax.grad of the book's network at the network's own weights."""
    from .properties import oracle
    from .properties.model import Case

    case = Case(dict(setup.kwargs), {"x": x, "t": t, **params}, 0)
    return oracle.vjp(item, case, 1.0)[1]


def check_network(session: Any, item: Any, setup: Setup, x: np.ndarray, t: np.ndarray, data: str,
                  numerical: str = "auto", entries: int = ENTRIES) -> NetworkCheck:
    """Build the network as the book's script does, then compare its gradient with a numerical one."""
    from .findings import SubmissionFault

    name = session.resolve(item.names)
    call = f"{name}({', '.join(f'{k}={v!r}' for k, v in setup.kwargs.items())})"
    session.seed(0)
    try:
        net = session.new(name, **setup.kwargs)
        params = _dict_of_arrays(session.get(net, "params"), f"{name}.params")
        grads = _dict_of_arrays(session.call(net, "gradient", x, t).value, f"{name}.gradient(x, t)")
        missing = [k for k in params if k not in grads]
        if missing:
            raise ValueError(_("{name}.gradient(x, t) has no entry for {keys}, which params has").format(
                name=name, keys=", ".join(missing)))
        has_own = _has_method(session, net, "numerical_gradient")
        if numerical == "yours" and not has_own:
            raise ValueError(_("{name} has no numerical_gradient method (drop --numerical yours to let gradprop "
                               "compute one)").format(name=name))
        mine = has_own and numerical != "ours"
        if mine:
            num = _dict_of_arrays(session.call(net, "numerical_gradient", x, t).value, f"{name}.numerical_gradient(x, t)")
            where = {k: np.arange(params[k].size) for k in params}
            values = {k: num[k].reshape(-1) if k in num else np.full(params[k].size, np.nan) for k in params}
        else:
            where, values = _our_numerical(session, net, list(params), params, x, t, item.train, entries)
    except (SubmissionFault, ValueError) as exc:
        text = exc.message if isinstance(exc, SubmissionFault) else str(exc)
        return NetworkCheck(item.name, call, data, numerical, error=text)
    expected, note = None, None
    try:
        expected = _reference(item, setup, x, t, params)
    except Exception as exc:  # noqa: BLE001 - a network unlike the book's: the reference says nothing
        note = _("the JAX reference of the book's {name} does not apply to this network ({error})").format(
            name=item.name, error=f"{type(exc).__name__}: {exc}"[:200])
    checks = []
    for key, p in params.items():
        g = grads[key].reshape(-1) if grads[key].size == p.size else None
        if g is None:
            checks.append(ParamCheck(key, p.shape, np.nan, np.nan, 1.0, "differ", 0))
            continue
        idx, n = where[key], values[key]
        diff = np.abs(g[idx] - n)
        rel = relative_error(g[idx], n) if np.all(np.isfinite(n)) else 1.0
        worst_i = int(np.nanargmax(diff)) if diff.size else 0
        worst = (np.unravel_index(int(idx[worst_i]), p.shape), float(g[idx][worst_i]), float(n[worst_i])) \
            if diff.size else None
        ref_g = ref_n = None
        if expected is not None and key in expected and np.size(expected[key]) == p.size:
            e = np.asarray(expected[key]).reshape(-1)
            ref_g, ref_n = relative_error(g, e), relative_error(n, e[idx])
        checks.append(ParamCheck(key, p.shape, float(np.mean(diff)), float(np.max(diff, initial=0.0)), rel,
                                 verdict(rel), int(len(idx)), worst, ref_g, ref_n))
    return NetworkCheck(item.name, call, data, "yours" if mine else "ours", tuple(checks), None, note,
                        expected is not None)


def _has_method(session: Any, net: Any, method: str) -> bool:
    from .findings import SubmissionFault

    try:
        session.get(net, method)
    except SubmissionFault:
        return False
    return True


# --- reporting -------------------------------------------------------------------------------------


def meaning(net: NetworkCheck) -> list[str]:
    """What the numbers say, in sentences."""
    if net.error is not None:
        return [_("✗ {name} could not be checked: {error}").format(name=net.name, error=net.error)]
    lines = []
    bad = [p for p in net.params if p.verdict == "differ"]
    close = [p for p in net.params if p.verdict == "close"]
    numerical = _("numerical_gradient") if net.numerical == "yours" else _("the numerical gradient")
    if not bad:
        lines.append(_("✓ gradient and {numerical} agree for every parameter: backprop is right (what is left is "
                       "the numerical gradient's own error: h², and the book's delta = 1e-7 in the log).").format(numerical=numerical))
        if close:
            lines.append(_("  {keys}: close, not equal: a step h that crosses a ReLU kink, or an input read as "
                           "float32, leaves this much.").format(keys=", ".join(p.key for p in close)))
        return lines
    for p in bad:
        head = ("⚠ " if backprop_confirmed(p) else "✗ ") + _("{key}: gradient and {numerical} differ").format(key=p.key, numerical=numerical)
        if p.worst is not None:
            head += _(" (worst entry {key}{index}: gradient {g}, numerical {n})").format(
                key=p.key, index=list(map(int, p.worst[0])), g=f"{p.worst[1]:.6g}", n=f"{p.worst[2]:.6g}")
        lines.append(head + ".")
        if p.ref_gradient is None:
            lines.append(_("  One of the two is wrong: backprop (gradient) when the forward pass is right, or "
                           "numerical_gradient when it does not perturb params in place."))
        elif backprop_confirmed(p):
            lines.append(_("  gradient agrees with jax.grad of the book's network: backprop is right, and the "
                           "numerical gradient is off. It is where a step of h crosses a kink (ReLU at 0, a "
                           "pooling window whose maximum changes); otherwise numerical_gradient itself is wrong "
                           "(does it perturb the very arrays of params, and put them back?)."))
        elif p.ref_numerical <= CLOSE < p.ref_gradient:
            lines.append(_("  the numerical gradient agrees with jax.grad of the book's network: backprop is wrong "
                           "for {key} (`gradprop check` names the layer).").format(key=p.key))
        else:
            lines.append(_("  neither agrees with jax.grad of the book's network: loss() itself computes "
                           "something else (`gradprop check` compares it with the book's)."))
    return lines


def render(nets: Sequence[NetworkCheck], color: bool = False) -> str:
    from .check import _Style

    style = _Style(color)
    out = []
    for net in nets:
        out.append(style("bold", f"{net.call}") + "  " + style("dim", _("on {data}").format(data=net.data)))
        if net.error is None:
            how = (_("numerical gradient: your network's numerical_gradient(x, t)") if net.numerical == "yours" else
                   _("numerical gradient: gradprop's central differences (h = 1e-6, params perturbed in place), "
                     "at most {n} entries of each parameter").format(n=max((p.entries for p in net.params), default=0)))
            out.append(style("dim", how))
            out.append(f"  {'param':<8} {'shape':<14} {'mean |diff|':>12} {'max |diff|':>12} {'rel. error':>11}  "
                       + _("verdict"))
            for p in net.params:
                kind = {"agree": "ok", "close": "warn", "differ": "bad"}[p.verdict]
                mark = {"agree": "✓", "close": "~", "differ": "✗"}[p.verdict]
                word = {"agree": _("agree"), "close": _("close"), "differ": _("differ")}[p.verdict]
                out.append(f"  {p.key:<8} {str(p.shape):<14} {p.mean_diff:>12.3g} {p.max_diff:>12.3g} "
                           f"{p.rel_error:>11.2g}  " + style(kind, f"{mark} {word}"))
            if net.reference:
                worst = max((p.ref_gradient or 0.0 for p in net.params), default=0.0)
                out.append(style("dim", _("reference: jax.grad of the book's {name} at your weights; gradient's "
                                          "largest relative error against it {err}").format(name=net.name,
                                                                                            err=f"{worst:.2g}")))
            elif net.reference_note:
                out.append(style("dim", net.reference_note))
        for line in meaning(net):
            kind = {"✗": "bad", "✓": "ok", "⚠": "warn"}.get(line[:1])
            out.append(style(kind, line) if kind else line)
        out.append("")
    if not nets:
        out.append(_("no network to check"))
    return "\n".join(out) + "\n"


def as_json(nets: Sequence[NetworkCheck]) -> dict[str, Any]:
    return {"schema": SCHEMA, "ok": all(n.ok for n in nets), "networks": [
        {"name": n.name, "call": n.call, "data": n.data, "numerical": n.numerical, "ok": n.ok, "error": n.error,
         "reference": n.reference, "reference_note": n.reference_note,
         "params": [{"key": p.key, "shape": list(p.shape), "mean_diff": p.mean_diff, "max_diff": p.max_diff,
                     "rel_error": p.rel_error, "verdict": p.verdict, "entries": p.entries,
                     "worst": None if p.worst is None else {"index": list(map(int, p.worst[0])),
                                                            "gradient": p.worst[1], "numerical": p.worst[2]},
                     "ref_gradient": p.ref_gradient, "ref_numerical": p.ref_numerical} for p in n.params]}
        for n in nets]}


# --- the command -----------------------------------------------------------------------------------


def networks(name: str | None) -> list[Any]:
    """The registry's networks, or the one named (in any case)."""
    from .properties.registry import ITEMS

    nets = [item for item in ITEMS if item.kind == "network"]
    if name is None:
        return nets
    chosen = [item for item in nets if name.lower() in (n.lower() for n in item.names)]
    if not chosen:
        raise UsageError(_("unknown network {name}; the networks are {known}").format(
            name=name, known=", ".join(item.name for item in nets)))
    return chosen


def add_parser(sub: Any) -> None:
    """The ``gradcheck`` subcommand (cli.build_parser calls this)."""
    p = sub.add_parser("gradcheck", help="the book's gradient check on your network: gradient vs numerical_gradient",
                       description="Compare your network's gradient(x, t) with numerical_gradient(x, t) per "
                                   "parameter, as the book's gradient_check scripts do, on generated data or on "
                                   "MNIST (--mnist). Exit status: 0 when they agree, 1 when they differ, 2 for a "
                                   "usage error.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--network", metavar="NAME", help="the network to check (default: every network PATH defines)")
    p.add_argument("--mnist", metavar="PATH", help="the book's mnist.pkl, or the folder holding it or the IDX files")
    p.add_argument("--batch", type=int, default=None, metavar="N", help="examples in the batch (default: the book's)")
    p.add_argument("--numerical", choices=("auto", "yours", "ours"), default="auto",
                   help="whose numerical gradient: your network's numerical_gradient, or gradprop's over a sample of "
                        "entries (default: yours when the network has one)")
    p.add_argument("--entries", type=int, default=ENTRIES, metavar="N",
                   help=f"entries of each parameter gradprop perturbs itself (default {ENTRIES})")
    p.add_argument("--json", action="store_true", help="print one JSON document (for tools)")
    p.add_argument("--lang", choices=("en", "ko", "ja"), default=None, help="language (default: the locale's)")
    p.add_argument("--time-limit", type=float, default=600.0, metavar="S",
                   help="seconds one call into your code may take (default 600: the book's numerical_gradient on "
                        "MNIST takes a while)")
    p.add_argument("--memory-mb", type=int, default=2048, metavar="MB", help="memory of your code's process")
    p.set_defaults(run=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    with use(args.lang):
        return _cmd_gradcheck(args, out or sys.stdout, err or sys.stderr)


def _cmd_gradcheck(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .check import use_color
    from .sandbox import SandboxSession

    try:
        path = os.path.expanduser(args.path)
        if not os.path.exists(path):
            raise UsageError(_("no such file or folder: {path}").format(path=args.path))
        if (args.batch is not None and args.batch < 1) or args.entries < 1 or args.time_limit <= 0:
            raise UsageError(_("--batch, --entries and --time-limit must be positive"))
        wanted = networks(args.network)
        if args.mnist is not None:
            find_mnist(args.mnist)  # before the sandbox starts: a missing file is a usage error
    except UsageError as exc:
        print(_("gradprop gradcheck: error: {error}").format(error=exc), file=err)
        return 2
    try:
        session = SandboxSession(os.path.abspath(path), time_limit=args.time_limit, memory_mb=args.memory_mb)
    except Exception as exc:  # noqa: BLE001 - ours, not the user's
        print(_("gradprop gradcheck: gradprop could not start the process your code runs in: {error}").format(
            error=exc), file=err)
        return 1
    with session:
        if session.import_error:
            out.write(_("✗ {path} could not be imported:").format(path=args.path) + "\n    "
                      + session.import_error.rstrip().replace("\n", "\n    ") + "\n")
            return 1
        defined = [item for item in wanted if session.resolve(item.names) is not None]
        if not defined:
            names = " / ".join(item.name for item in wanted)
            print(_("gradprop gradcheck: error: {path} defines no {names}").format(path=args.path, names=names),
                  file=err)
            return 2
        mnist = None
        if args.mnist is not None:
            try:
                need = max(args.batch or (MNIST[item.name].batch) for item in defined)
                mnist = load_mnist(args.mnist, session, need)
            except UsageError as exc:
                print(_("gradprop gradcheck: error: {error}").format(error=exc), file=err)
                return 2
            except Exception as exc:  # noqa: BLE001 - unpickling failed in the sandbox
                print(_("gradprop gradcheck: error: {error}").format(error=getattr(exc, "message", exc)), file=err)
                return 2
        results = []
        for item in defined:
            setup = (MNIST if mnist else GENERATED)[item.name]
            x, t = batch_for(setup, mnist, args.batch)
            data = (_("MNIST x_train[:{n}] ({source})").format(n=len(x), source=mnist.source) if mnist else
                    _("generated data, a batch of {n}").format(n=len(x)))
            results.append(check_network(session, item, setup, x, t, data, args.numerical, args.entries))
    if args.json:
        out.write(json.dumps(as_json(results), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render(results, use_color(out)))
    return 0 if all(r.ok for r in results) else 1
