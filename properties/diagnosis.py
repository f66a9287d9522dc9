"""Diagnosis: which classic slip explains a wrong value.

The checker holds the expected value and every quantity the layer saw (its inputs, ``dout``, its
output). Each candidate here is what one well-known wrong line computes from them: the transpose
of dW, the sign flipped, a missing 1/N, sigmoid's y(1 + y), ReLU's mask taken from dout, ... When
a value is wrong, it is compared with every candidate of its item, within the item's tolerance.

A wrong hint is worse than none, so a hint is given only when the match is unambiguous: exactly one
kind of slip matches, and that slip gives a different value from the right one on this input (at
batch size 1, "forgot / N" changes nothing, so it explains nothing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from gradprop.i18n import LANGUAGES, N_, _, translations

#: the line a finding message gets; its head ("Hint") in every language is how hints_in finds it
HINT_LINE = N_("Hint [{id}]: {text}")

#: hint id -> the sentence a student reads. {name} is the value (dW, grads['W2']), {other} another
#: value's name, {shape} a shape. Code stays in English.
HINTS: dict[str, str] = {
    "transposed": N_("{name} is the transpose of the right one: the factors of the product are in the wrong "
                     "order, as in `np.dot(dout.T, self.x)` where `np.dot(self.x.T, dout)` is meant."),
    "sign-flipped": N_("{name} has the right size but the opposite sign: a difference taken the wrong way "
                       "round, as in `(self.t - self.y)` where `(self.y - self.t)` is meant."),
    "times-batch": N_("{name} is N times the right value (N: the batch size): the loss is a mean over the "
                      "batch, so its gradient carries 1/N, as in `dx = (self.y - self.t) / batch_size`."),
    "divided-by-batch": N_("{name} is the right value divided by N (the batch size): dout already carries "
                           "the 1/N of the mean loss, so `self.dW = np.dot(self.x.T, dout)` and "
                           "`self.db = np.sum(dout, axis=0)` need no `/ batch_size`."),
    "doubled": N_("{name} is twice the right value: the same contribution is added twice, or a factor 2 "
                  "is there that the derivative does not have."),
    "halved": N_("{name} is half the right value: each input of a sum receives all of dout, "
                 "`dx = dout * 1`, not a share of it."),
    "missing-dout": N_("{name} is the local derivative alone: the chain rule multiplies it by the upstream "
                       "gradient, as in `dx = dout * self.y`."),
    "swapped": N_("{name} is what {other} should be: the two gradients are swapped. For x * y, "
                  "`dx = dout * self.y` and `dy = dout * self.x`."),
    "mul-rule": N_("{name} follows MulLayer's rule: for x + y both gradients are dout itself, "
                   "`dx = dout * 1`."),
    "wrong-key": N_("{name} holds the gradient of {other}: check which layer each line reads, as in "
                    "`grads['W2'] = self.layers['Affine2'].dW`."),
    "db-first-row": N_("{name} is the first row of dout only: db sums over the batch, "
                       "`self.db = np.sum(dout, axis=0)`."),
    "db-sum-all": N_("{name} is the sum of all of dout, a single number: sum over the batch axis only, "
                     "`self.db = np.sum(dout, axis=0)`."),
    "not-reshaped": N_("{name} has the right numbers in the shape {shape}: reshape it back to the shape of "
                       "what it differentiates, as in `dx = dx.reshape(*self.original_x_shape)`."),
    "dw-unflattened-x": N_("{name} was computed from x before it was flattened: keep the flattened one, "
                           "`self.original_x_shape = x.shape` then `self.x = x.reshape(x.shape[0], -1)`."),
    "sigmoid-one-plus-y": N_("{name} uses y(1 + y) where the derivative of the sigmoid is y(1 - y): "
                             "`dx = dout * (1.0 - self.out) * self.out`."),
    "sigmoid-missing-y": N_("{name} uses (1 - y) alone where the derivative of the sigmoid is y(1 - y): "
                            "`dx = dout * (1.0 - self.out) * self.out`."),
    "sigmoid-missing-one-minus-y": N_("{name} uses y alone where the derivative of the sigmoid is y(1 - y): the "
                                      "factor (1 - y) is missing, `dx = dout * (1.0 - self.out) * self.out`."),
    "arguments-swapped": N_("{name} is what the function gives with its two arguments the other way round: the "
                            "book's order is `cross_entropy_error(y, t)`, the prediction first and the labels "
                            "second."),
    "sigmoid-uses-x": N_("{name} puts the input x into y(1 - y): the formula needs the output, "
                         "`dx = dout * (1.0 - self.out) * self.out`, with `self.out` saved in forward."),
    "relu-mask-inverted": N_("{name} passes dout where x <= 0 and zeroes it where x > 0: the mask is inverted. "
                             "With `self.mask = (x <= 0)`, write `dx = dout.copy(); dx[self.mask] = 0`."),
    "relu-mask-from-dout": N_("{name} zeroes the entries where dout <= 0: the mask must come from forward's x, "
                              "`self.mask = (x <= 0)` saved in forward."),
    "label-index-as-one-hot": N_("with label indices, {name} matches the one-hot formula applied to the label "
                                 "numbers: label indices need their own branch, as the book's "
                                 "`if t.size == y.size:` separates them."),
    "label-index-columns": N_("with label indices, {name} matches `y[:, t]`, which picks whole columns: "
                              "one entry per row is `y[np.arange(batch_size), t]`."),
    "softmax-axis-0": N_("{name} is normalised down the columns (axis 0, the batch axis): each row is one "
                         "example, so `np.sum(exp_x, axis=-1, keepdims=True)`."),
    "softmax-whole-batch": N_("{name} is normalised over the whole batch at once: the sum must be per row, "
                              "`np.sum(exp_x, axis=-1, keepdims=True)`."),
    "weight-decay-missing": N_("{name} lacks the weight decay's share: the loss adds 0.5 * lambda * sum(W ** 2), "
                               "so each dW gets lambda * W, as in `grads['W1'] = self.layers['Affine1'].dW + "
                               "self.weight_decay_lambda * self.layers['Affine1'].W`."),
    "col2im-divided-by-overlap": N_("{name} divides each pixel by the number of windows that cover it: col2im "
                                    "is not an average. The gradient of a pixel read by several windows is the "
                                    "sum of their gradients: `img[:, :, y:y_max:stride, x:x_max:stride] += "
                                    "col[:, :, y, x, :, :]`, and nothing after it."),
    "col2im-assigned": N_("{name} keeps only the last window's value where windows overlap: the line that puts "
                          "col back into img assigns (`=`) where it must add (`+=`), as in "
                          "`img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]`."),
    "eps-missing": N_("{name} is the step without the 1e-7 that keeps the division away from zero: "
                      "`params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)`."),
    "eps-inside-root": N_("{name} has the 1e-7 inside the square root: the book adds it outside, "
                          "`np.sqrt(self.h[key]) + 1e-7`, and where gradients are tiny the two differ a lot."),
    "adam-no-bias-correction": N_("{name} is Adam's step without the bias correction: m and v start at 0, so "
                                  "the book scales the step by `lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** "
                                  "self.iter) / (1.0 - self.beta1 ** self.iter)`."),
    "adam-bias-corrected-twice": N_("{name} corrects Adam's bias twice: the book's lr_t already holds the "
                                    "correction, so m and v are used as they are (or m_hat and v_hat with the "
                                    "plain lr, as the paper does; not both)."),
    "stale": N_("{name} is the gradient at the input of the previous forward call: backward uses something "
                "saved only once (as in `if self.x is None: self.x = x`); save it on every forward."),
}

#: items whose gradients carry a batch mean, or sum over a batch: ×N and ÷N are their classic
#: slips. Never with x 2 and / 2: at batch size 2 they would coincide.
BATCHED = frozenset({"Affine", "SoftmaxWithLoss", "cross_entropy_error", "TwoLayerNet",
                     "BatchNormalization", "Convolution", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet"})
#: the networks: their gradients are the entries of one dict, which a wrong key mixes up
NETWORKS = frozenset({"TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet"})
#: items where a factor 2 is a classic slip (half of dout to each input of a sum; the power rule
#: of x * x). Elsewhere a factor 2 has no one explanation (Dropout at ratio 0.5 unscaled).
FACTOR_2 = frozenset({"AddLayer", "MulLayer"})


@dataclass(frozen=True)
class Evidence:
    """What the checker knows about one wrong value."""

    item: str
    #: the argument the value differentiates ("x", "W", "W1"), or "out" for a forward output
    wrt: str
    #: the name the student sees ("dW", "grads['W2']", "out")
    name: str
    #: the reference's arguments: forward inputs and constructor arguments
    args: Mapping[str, Any]
    #: every expected value of the same call, by ``wrt`` (a gradient may match another's)
    expected: Mapping[str, np.ndarray]
    dout: Any = None
    #: the expected values at the previous forward's input, for the stale-state check
    previous: Callable[[], Mapping[str, np.ndarray]] | None = field(default=None, compare=False)


def _softmax(x: np.ndarray, axis: int | None = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _batch(ev: Evidence) -> int | None:
    x = np.asarray(ev.args.get("x", ev.args.get("y")))
    return int(x.shape[0]) if x.ndim >= 2 else None


def _generic(ev: Evidence, expected: np.ndarray) -> Iterator[tuple[str, Any, str]]:
    """Slips any gradient can have; a forward output only misses (or doubles) a batch mean."""
    n = _batch(ev)
    if ev.item in BATCHED and n and n > 1:
        yield "times-batch", expected * n, ""
        yield "divided-by-batch", expected / n, ""
    if ev.wrt == "out":
        return
    yield "sign-flipped", -expected, ""
    if expected.ndim == 2:
        yield "transposed", expected.T, ""
    if ev.item in FACTOR_2:
        yield "doubled", expected * 2, ""
        yield "halved", expected / 2, ""
    for other, value in ev.expected.items():
        if other != ev.wrt:
            if ev.item in NETWORKS:
                yield "wrong-key", value, other
            else:
                yield "swapped", value, f"d{other}"
    yield "not-reshaped", expected.reshape(-1), ""
    if expected.ndim > 2:
        yield "not-reshaped", expected.reshape(expected.shape[0], -1), ""
        yield "not-reshaped", expected.reshape(expected.shape[0], -1).T, ""  # im2col's (C*FH*FW, FN)
    if ev.previous is not None:
        yield "stale", ev.previous()[ev.wrt], ""


def _specific(ev: Evidence) -> Iterator[tuple[str, Any]]:
    """What the classic wrong lines of this item compute."""
    a, dout, item, wrt = ev.args, ev.dout, ev.item, ev.wrt
    if item == "MulLayer":
        yield "missing-dout", np.asarray(a["y" if wrt == "x" else "x"], dtype=float)
    elif item == "AddLayer":
        yield "mul-rule", dout * np.asarray(a["y" if wrt == "x" else "x"])
    elif item == "Sigmoid":
        x = np.asarray(a["x"])
        y = 1 / (1 + np.exp(-x))
        yield "sigmoid-one-plus-y", dout * y * (1 + y)
        yield "sigmoid-missing-y", dout * (1 - y)
        yield "sigmoid-missing-one-minus-y", dout * y
        yield "sigmoid-uses-x", dout * x * (1 - x)
        yield "missing-dout", y * (1 - y)
    elif item == "Relu":
        x = np.asarray(a["x"])
        yield "relu-mask-inverted", np.where(x > 0, 0.0, dout)
        yield "relu-mask-from-dout", np.where(dout > 0, dout, 0.0)
    elif item == "Affine":
        x = np.asarray(a["x"])
        if wrt == "b":
            yield "db-first-row", dout[0]
            yield "db-sum-all", np.sum(dout)
        elif wrt == "W" and x.ndim > 2:
            yield "dw-unflattened-x", np.dot(x.T, dout)
    elif item == "softmax" and np.ndim(a["x"]) == 2:
        x = np.asarray(a["x"])
        yield "softmax-axis-0", _softmax(x, axis=0)
        yield "softmax-whole-batch", _softmax(x, axis=None)
    elif item == "cross_entropy_error" and np.ndim(a["t"]) == np.ndim(a["y"]):  # one-hot
        y, t = np.asarray(a["y"], dtype=float), np.asarray(a["t"], dtype=float)
        if y.ndim == 1:
            y, t = y.reshape(1, -1), t.reshape(1, -1)
        # the book's function called as cross_entropy_error(t, y): the labels inside the log
        yield "arguments-swapped", -np.sum(y * np.log(t + 1e-7)) / y.shape[0]
    elif item == "cross_entropy_error" and np.ndim(a["t"]) < np.ndim(a["y"]):  # label indices
        y, t = np.asarray(a["y"]), np.asarray(a["t"])
        if y.ndim == 1:  # the book's reshape for one example
            y, t = y.reshape(1, -1), t.reshape(1, t.size)
        if _broadcasts(t, y):
            yield "label-index-as-one-hot", -np.sum(t * np.log(y + 1e-7)) / y.shape[0]
        if t.ndim == 1:
            yield "label-index-columns", -np.sum(np.log(y[:, t] + 1e-7)) / y.shape[0]
    elif item in ("MultiLayerNet", "MultiLayerNetExtend") and wrt[:1] == "W" and a.get("weight_decay_lambda"):
        yield "weight-decay-missing", ev.expected[wrt] - a["weight_decay_lambda"] * np.asarray(a[wrt])
    elif item == "col2im" and wrt == "out":
        expected = np.asarray(ev.expected["out"])
        covers = _col2im_numpy(np.ones_like(np.asarray(a["col"], dtype=float)), a)
        yield "col2im-divided-by-overlap", np.where(covers > 0, expected / np.maximum(covers, 1), 0.0)
        yield "col2im-assigned", _col2im_numpy(np.asarray(a["col"], dtype=float), a, assign=True)
    elif item in _SLIPS and "@" in wrt:  # an optimizer: wrt is "key@step"
        key, step = wrt.split("@")
        start = np.asarray(a["params"][key], dtype=float)
        for slip in _SLIPS[item]:
            yield slip, _trajectory(item, a, key, slip)[int(step)] - start
    elif item == "SoftmaxWithLoss" and np.ndim(a["t"]) == 1:
        y, t = _softmax(np.asarray(a["x"])), np.asarray(a["t"])
        if _broadcasts(t, y):
            yield "label-index-as-one-hot", (y - t) / t.shape[0]


#: the optimizers' classic slips that have a hint
_SLIPS = {"AdaGrad": ("eps-missing", "eps-inside-root"), "RMSprop": ("eps-missing", "eps-inside-root"),
          "Adam": ("adam-no-bias-correction", "adam-bias-corrected-twice")}


def _trajectory(item: str, a: Mapping[str, Any], key: str, slip: str) -> list[np.ndarray]:
    """params[key] after each step as the book's update with ``slip`` computes it, in numpy (``a``
    holds params, grads and every hyperparameter)."""
    p, out = np.array(a["params"][key], dtype=float), []
    s1, s2 = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(np.asarray(a["grads"][key], dtype=float), 1):
        if item == "Adam":
            b1, b2 = a["beta1"], a["beta2"]
            s1, s2 = s1 + (1 - b1) * (g - s1), s2 + (1 - b2) * (g * g - s2)
            lr_t = a["lr"] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            if slip == "adam-no-bias-correction":
                p = p - a["lr"] * s1 / (np.sqrt(s2) + 1e-7)
            else:
                p = p - lr_t * (s1 / (1 - b1 ** t)) / (np.sqrt(s2 / (1 - b2 ** t)) + 1e-7)
        else:
            s1 = s1 + g * g if item == "AdaGrad" else a["decay_rate"] * s1 + (1 - a["decay_rate"]) * g * g
            with np.errstate(divide="ignore", invalid="ignore"):
                p = p - a["lr"] * g / (np.sqrt(s1) if slip == "eps-missing" else np.sqrt(s1 + 1e-7))
        out.append(p)
    return out


def _col2im_numpy(col: np.ndarray, a: Mapping[str, Any], assign: bool = False) -> np.ndarray:
    """col2im as the book's loop computes it; ``assign``: with ``=`` in place of ``+=`` (where
    windows overlap, the last one's value stays)."""
    n, c, h, w = a["input_shape"]
    fh, fw, stride, pad = a["filter_h"], a["filter_w"], a["stride"], a["pad"]
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1))
    for y in range(fh):
        for x in range(fw):
            window = (slice(None), slice(None), slice(y, y + stride * oh, stride), slice(x, x + stride * ow, stride))
            if assign:
                img[window] = col[:, :, y, x]
            else:
                img[window] += col[:, :, y, x]
    return img[:, :, pad:h + pad, pad:w + pad]


def _broadcasts(*arrays: np.ndarray) -> bool:
    try:
        np.broadcast_shapes(*(np.shape(x) for x in arrays))
    except ValueError:
        return False
    return True


def _plain(args: Mapping[str, Any]) -> bool:
    """An input whose entries are all equal (x = 0, a uniform y) makes many slips coincide: some
    that no candidate here stands for. Such inputs get no hint of their own (see ``borrow``)."""
    arrays = [np.asarray(v) for v in args.values() if isinstance(v, (float, np.ndarray))]
    return any(a.dtype.kind == "f" and np.ptp(a) == 0 for a in arrays if a.size)


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return bool(np.all(np.abs(a - b) <= atol + rtol * scale))


def _matches(got: Any, ev: Evidence, rtol: float, atol: float, zeros: bool = False) -> dict[str, str]:
    """Every slip whose value on this input is ``got`` and differs from the right one, by id (with
    the other value it names); with ``zeros``, those whose value is zero here too."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(ev.expected[ev.wrt], dtype=np.float64)
    matched: dict[str, str] = {}
    for found, value, other in [*((f, v, "") for f, v in _specific(ev)), *_generic(ev, expected)]:
        value = np.asarray(value, dtype=np.float64)
        # a slip that gives the right value on this input (x N at batch size 1) explains nothing;
        # nor, as the one explanation, does one that gives zeros here (y * dout at y = 0): many
        # slips give zeros
        if (_close(got, value, rtol, atol) and not _close(value, expected, rtol, atol)
                and (zeros or not _close(value, np.zeros_like(value), rtol, atol))):
            matched[found] = other
    return matched


def candidates(got: Any, ev: Evidence, rtol: float, atol: float) -> frozenset[str]:
    """The slips consistent with ``got`` on this input (for ``borrow``: a hint found on other
    inputs is given here only if it is one of these). Empty when none is, or when it cannot be
    worked out."""
    try:
        return frozenset(_matches(got, ev, rtol, atol, zeros=True))
    except Exception:  # noqa: BLE001 - a hint is a bonus: it must never break a finding
        return frozenset()


def diagnose(got: Any, ev: Evidence, rtol: float, atol: float) -> tuple[str, str] | None:
    """(hint id, the other value it names) of the one slip that explains ``got``; None when no
    slip does, or more than one does, or the input is too plain to tell slips apart."""
    if _plain({k: v for k, v in ev.args.items() if k in ev.expected or k in ("x", "y")}):
        return None
    matched = _matches(got, ev, rtol, atol)
    return next(iter(matched.items())) if len(matched) == 1 else None


#: a hint given: its id, and the line of the finding message that says it
Hint = tuple[str, str]


def find_hint(got: Any, ev: Evidence, rtol: float, atol: float) -> Hint | None:
    """(id, line) of the one slip that explains ``got`` (see ``diagnose``), or None."""
    try:
        found = diagnose(got, ev, rtol, atol)
    except Exception:  # noqa: BLE001 - a hint is a bonus: it must never break a finding
        return None
    if found is None:
        return None
    text = _(HINTS[found[0]]).format(name=ev.name, other=found[1], shape=np.shape(got))
    return found[0], "  " + _(HINT_LINE).format(id=found[0], text=text)


def hint(got: Any, ev: Evidence, rtol: float, atol: float) -> str:
    """The hint line of a finding message (with its line break), or "" when no slip explains
    ``got`` unambiguously."""
    found = find_hint(got, ev, rtol, atol)
    return "" if found is None else "\n" + found[1]


def _hint_lines(message: str) -> list[tuple[str, str]]:
    """(id, line) of each hint line in a finding message, in any language."""
    heads = {translations(lang).gettext(HINT_LINE).split("[")[0].strip() for lang in LANGUAGES}
    found = []
    for line in message.splitlines():
        head, _sep, rest = line.strip().partition(" [")
        if head in heads and "]:" in rest:
            found.append((rest.split("]:")[0], line))
    return found


def hints_in(message: str) -> list[str]:
    """The hint ids a finding message carries (for meta-tests and class reports)."""
    return [found for found, _line in _hint_lines(message)]


#: the findings a hint can explain: wrong values and shapes
EXPLAINABLE = frozenset({"wrong-forward", "wrong-gradient", "wrong-shape", "stale-state", "wrong-update"})


def settled(hints: list[Hint | None]) -> bool:
    """Whether more failing inputs could change what ``borrow`` makes of their ``hints``: not once
    two hints disagree or three agree, nor when the first six carry none (a check that gives no
    hints, such as the numerical one's cheap form)."""
    ids = {h[0] for h in hints if h}
    return len(ids) > 1 or sum(map(bool, hints)) >= 3 or (not ids and len(hints) >= 6)


def borrow(message: str, others: Iterable[Hint | None], consistent: frozenset[str] | None = None,
           own: Hint | None = None) -> tuple[str, Hint | None]:
    """``message`` with the hint that the messages of other failing inputs agree on.

    The smallest failing input is often too plain to tell two slips apart (x = 0, where (1 - y) is
    twice y(1 - y), and y alone is (1 - y); a uniform y, where many wrong losses are N times the
    right one). When every hint other failing inputs give is the same one, on inputs where the slips
    differ, it is a statement about the code, and the plain input's finding carries it too: if that
    slip is ``consistent`` with what the plain input showed (``candidates``), never otherwise
    (a ×N slip cannot explain a value wrong at batch size 1).

    ``others`` are the hints the other findings carry (``Finding.hint``: the grader's own, never
    read out of a message, which may quote the submission's text); ``own`` is the message's own
    hint. Returns the message and the hint it now carries.
    """
    lines = dict(h for h in others if h)
    if own is not None or len(lines) != 1 or consistent is None or not set(lines) <= consistent:
        return message, own
    found = next(iter(lines.items()))
    body, sep, tail = message.partition("\n\n")
    return body + "\n" + found[1] + sep + tail, found
