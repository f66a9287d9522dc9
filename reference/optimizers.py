"""Pure JAX references for the optimizers of ch. 6: the trajectory of ``params`` over the steps.

Each takes ``params`` (a dict of arrays) and ``grads`` (the same keys, each stacked over the
steps: ``grads[key][i]`` is step i's gradient) and returns, per key, the parameters after each
step, stacked the same way. Defaults and formulas are the book's (``common/optimizer.py``):
``1e-7`` outside the square root, Adam's bias correction folded into its step size, and the step
count ``t`` shared by every key (one ``update`` is one step).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ._jax import jnp  # JAX itself is imported when a reference is first traced, with float64 on

EPS = 1e-7  # the book's, added outside the square root


def _trajectory(params: Mapping[str, Any], grads: Mapping[str, Any], step: Callable, state: Callable) -> dict:
    """``step(p, g, s, t) -> (p, s)`` applied to each key over the steps (t = 1, 2, ...)."""
    out = {}
    for key, p in params.items():
        s, seen = state(p), []
        for i in range(grads[key].shape[0]):
            p, s = step(p, grads[key][i], s, i + 1)
            seen.append(p)
        out[key] = jnp.stack(seen)
    return out


def _none(p):
    return None


def sgd(params, grads, lr=0.01):
    return _trajectory(params, grads, lambda p, g, s, t: (p - lr * g, s), _none)  # p -= lr g


def momentum(params, grads, lr=0.01, momentum=0.9):
    def step(p, g, v, t):
        v = momentum * v - lr * g  # v = mu v - lr g
        return p + v, v  # p += v

    return _trajectory(params, grads, step, jnp.zeros_like)


def nesterov(params, grads, lr=0.01, momentum=0.9):
    """The book's reformulation of Nesterov's momentum (its parameters are the look-ahead ones)."""

    def step(p, g, v, t):
        v = momentum * v - lr * g  # v = mu v - lr g
        return p + momentum * momentum * v - (1 + momentum) * lr * g, v  # p += mu^2 v - (1 + mu) lr g

    return _trajectory(params, grads, step, jnp.zeros_like)


def adagrad(params, grads, lr=0.01):
    def step(p, g, h, t):
        h = h + g * g  # h += g^2
        return p - lr * g / (jnp.sqrt(h) + EPS), h  # p -= lr g / (sqrt(h) + 1e-7)

    return _trajectory(params, grads, step, jnp.zeros_like)


def rmsprop(params, grads, lr=0.01, decay_rate=0.99):
    def step(p, g, h, t):
        h = decay_rate * h + (1 - decay_rate) * g * g  # h = rho h + (1 - rho) g^2
        return p - lr * g / (jnp.sqrt(h) + EPS), h

    return _trajectory(params, grads, step, jnp.zeros_like)


def adam(params, grads, lr=0.001, beta1=0.9, beta2=0.999):
    """The book's Adam: lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), 1e-7 outside the root. The
    textbook form (m / (1 - beta1^t), v / (1 - beta2^t), eps 1e-8) differs from it only in where
    eps sits: the item's tolerance accepts both."""

    def step(p, g, mv, t):
        m, v = mv
        lr_t = lr * jnp.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
        m = m + (1 - beta1) * (g - m)  # m = beta1 m + (1 - beta1) g
        v = v + (1 - beta2) * (g * g - v)  # v = beta2 v + (1 - beta2) g^2
        return p - lr_t * m / (jnp.sqrt(v) + EPS), (m, v)

    return _trajectory(params, grads, step, lambda p: (jnp.zeros_like(p), jnp.zeros_like(p)))
