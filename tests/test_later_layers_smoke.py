"""Smoke tests: the project's later layers against jax.vjp of their references, on fixed small cases.

Plain unit tests with a random ``dout`` (never ones); the generic Hypothesis properties live elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

from gradprop.layers.conv import Convolution, Pooling
from gradprop.layers.regularization import EPS, BatchNormalization, Dropout
from gradprop.layers.util import col2im, im2col
from gradprop.properties import oracle
from gradprop.reference import later as ref
from gradprop.reference._jax import jax

# JAX as the oracle has it: imported on first use, with float64 on. (A plain `import jax` would
# leave float64 off whenever this worker had imported gradprop.reference before JAX, and would
# make every pytest-xdist worker import JAX while collecting, whether it runs these tests or not.)

RTOL, ATOL = 1e-9, 1e-12


def close(name: str, got: np.ndarray, expected) -> None:
    __tracebackhide__ = True
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{name}: shape {got.shape}, expected {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=name)


def vjp(f, args: tuple, dout: np.ndarray):
    """Reference output and the cotangents of ``args`` for the upstream gradient ``dout``: one
    program, compiled as the oracle compiles (eager ``jax.vjp`` compiles every primitive on its
    own, and took most of this module's time)."""
    def run(args, dout):
        out, pullback = jax.vjp(f, *args)
        return out, pullback(dout)

    return jax.jit(run, compiler_options=oracle.compiler_options())(args, dout)


def run(layer, x: np.ndarray, dout: np.ndarray, **fwd_kwargs):
    """forward, then backward, checking that neither touches its inputs nor returns ``dout`` itself."""
    x0, dout0 = x.copy(), dout.copy()
    out = layer.forward(x, **fwd_kwargs)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(x, x0, err_msg="forward modified x")
    np.testing.assert_array_equal(dout, dout0, err_msg="backward modified dout")
    assert dx is not dout, "backward returned dout itself"
    return out, dx


def test_im2col_col2im_are_adjoint():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    for fh, fw, stride, pad in [(3, 3, 1, 0), (2, 3, 2, 1), (3, 2, 2, 2)]:
        col = im2col(x, fh, fw, stride, pad)
        c = rng.standard_normal(col.shape)
        # <im2col(x), c> == <x, col2im(c)>
        np.testing.assert_allclose(np.sum(col * c), np.sum(x * col2im(c, x.shape, fh, fw, stride, pad)))


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pad",
    [((2, 3, 5, 5), (4, 3, 3, 3), 1, 0), ((2, 2, 6, 5), (3, 2, 3, 3), 2, 1), ((1, 2, 4, 5), (2, 2, 2, 3), 1, 2)],
    ids=["s1p0", "s2p1", "s1p2-rect"],
)
def test_convolution(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    f = lambda x, W, b: ref.convolution(x, W, b, stride, pad)  # noqa: E731
    dout = rng.standard_normal(f(x, W, b).shape)
    expected, (ex, eW, eb) = vjp(f, (x, W, b), dout)
    layer = Convolution(W, b, stride, pad)
    out, dx = run(layer, x, dout)
    close("Convolution forward", out, expected)
    close("Convolution dx", dx, ex)
    close("Convolution dW", layer.dW, eW)
    close("Convolution db", layer.db, eb)


@pytest.mark.parametrize(
    "x_shape, pool_h, pool_w, stride, pad",
    [((2, 3, 4, 4), 2, 2, 2, 0), ((2, 2, 5, 5), 3, 3, 1, 1), ((2, 2, 5, 4), 2, 3, 2, 1), ((1, 2, 3, 3), 2, 2, 2, 2)],
    ids=["2x2s2p0", "3x3s1p1", "2x3s2p1", "2x2s2p2-window-in-padding"],
)
def test_pooling(x_shape, pool_h, pool_w, stride, pad):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)  # negative values at the border let the zero padding win
    f = lambda x: ref.pooling(x, pool_h, pool_w, stride, pad)  # noqa: E731
    dout = rng.standard_normal(f(x).shape)
    expected, (ex,) = vjp(f, (x,), dout)
    out, dx = run(Pooling(pool_h, pool_w, stride, pad), x, dout)
    close("Pooling forward", out, expected)
    close("Pooling dx", dx, ex)


@pytest.mark.parametrize("x_shape", [(5, 4), (3, 2, 3, 3)], ids=["2-D", "4-D"])
def test_batch_normalization_train(x_shape):
    rng = np.random.default_rng(3)
    x = 2.0 + 3.0 * rng.standard_normal(x_shape)
    d = int(np.prod(x_shape[1:]))
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    mean0, var0 = rng.standard_normal(d), rng.uniform(0.5, 2.0, d)
    dout = rng.standard_normal(x_shape)
    expected, (ex, eg, eb) = vjp(lambda x, g, b: ref.batch_normalization(x, g, b, EPS), (x, gamma, beta), dout)
    layer = BatchNormalization(gamma, beta, momentum=0.8, running_mean=mean0.copy(), running_var=var0.copy())
    out, dx = run(layer, x, dout, train_flg=True)
    close("BatchNormalization forward", out, expected)
    close("BatchNormalization dx", dx, ex)
    close("BatchNormalization dgamma", layer.dgamma, eg)
    close("BatchNormalization dbeta", layer.dbeta, eb)
    x2 = x.reshape(x_shape[0], -1)
    close("running_mean", layer.running_mean, 0.8 * mean0 + 0.2 * x2.mean(axis=0))
    close("running_var", layer.running_var, 0.8 * var0 + 0.2 * x2.var(axis=0))


@pytest.mark.parametrize("x_shape", [(5, 4), (3, 2, 3, 3)], ids=["2-D", "4-D"])
def test_batch_normalization_eval(x_shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape)
    d = int(np.prod(x_shape[1:]))
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    mean0, var0 = rng.standard_normal(d), rng.uniform(0.5, 2.0, d)
    dout = rng.standard_normal(x_shape)
    f = lambda x, g, b: ref.batch_normalization_eval(x, g, b, mean0, var0, EPS)  # noqa: E731
    expected, (ex, eg, eb) = vjp(f, (x, gamma, beta), dout)
    layer = BatchNormalization(gamma, beta, running_mean=mean0.copy(), running_var=var0.copy())
    out, dx = run(layer, x, dout, train_flg=False)
    close("BatchNormalization eval forward", out, expected)
    close("BatchNormalization eval dx", dx, ex)
    close("BatchNormalization eval dgamma", layer.dgamma, eg)
    close("BatchNormalization eval dbeta", layer.dbeta, eb)
    close("running_mean (eval leaves it)", layer.running_mean, mean0)
    close("running_var (eval leaves it)", layer.running_var, var0)


@pytest.mark.parametrize("x_shape, ratio", [((4, 6), 0.5), ((2, 3, 4, 4), 0.3)], ids=["2-D", "4-D"])
def test_dropout(x_shape, ratio):
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal(x_shape), rng.standard_normal(x_shape)
    # the mask is the book's: drawn from the global np.random, so seeding it reproduces the mask
    np.random.seed(7)
    expected_mask = np.random.rand(*x_shape) > ratio
    np.random.seed(7)
    layer = Dropout(ratio)
    out, dx = run(layer, x, dout, train_flg=True)
    np.testing.assert_array_equal(layer.mask, expected_mask)
    expected, (ex,) = vjp(lambda x: ref.dropout(x, expected_mask, 1.0), (x,), dout)
    close("Dropout train forward", out, expected)
    close("Dropout train dx", dx, ex)
    # eval mode: x * (1 - ratio), which is the expected train output
    expected, (ex,) = vjp(lambda x: ref.dropout(x, np.ones(x_shape), 1.0 - ratio), (x,), dout)
    out, dx = run(layer, x, dout, train_flg=False)
    close("Dropout eval forward", out, expected)
    close("Dropout eval dx", dx, ex)


def test_dropout_generator_mask():
    x = np.random.default_rng(6).standard_normal((3, 5))
    layer = Dropout(0.4, rng=np.random.default_rng(8))
    layer.forward(x)
    np.testing.assert_array_equal(layer.mask, np.random.default_rng(8).random((3, 5)) > 0.4)
