"""Pure JAX references, one per item, in float64. Expected gradients come from ``jax.vjp``.

Each function is the mathematical definition, not a copy of a layer: no ``delta`` in the log,
no max-shift tricks beyond what numerical safety needs (``jax.nn.log_softmax`` is stable).
"""
from __future__ import annotations

from ._jax import jax, jnp  # JAX itself is imported when a reference is first traced, with float64 on


def mul(x, y):
    return x * y


def add(x, y):
    return x + y


def relu(x):
    return jnp.maximum(x, 0.0)


def sigmoid(x):
    return jax.nn.sigmoid(x)


def affine(x, W, b):
    return x.reshape(x.shape[0], -1) @ W + b


def softmax(x):
    return jax.nn.softmax(x, axis=-1)


def _labels(t, n_classes: int):
    """Label indices from one-hot rows or indices (``t`` is data, never differentiated)."""
    t = jnp.asarray(t)
    if t.ndim >= 1 and t.shape[-1] == n_classes and t.size > 1 and jnp.issubdtype(t.dtype, jnp.floating):
        return jnp.argmax(t.reshape(-1, n_classes), axis=-1)
    return t.reshape(-1).astype(jnp.int32)


def cross_entropy_error(y, t):
    """Mean over the batch of -log y[label]; a 1-D ``y`` is a batch of one."""
    y2 = y.reshape(-1, y.shape[-1])
    labels = _labels(t, y.shape[-1])
    return -jnp.mean(jnp.log(y2[jnp.arange(y2.shape[0]), labels]))


def softmax_with_loss(x, t):
    x2 = x.reshape(-1, x.shape[-1])
    labels = _labels(t, x.shape[-1])
    return -jnp.mean(jax.nn.log_softmax(x2, axis=-1)[jnp.arange(x2.shape[0]), labels])


def two_layer_net_predict(x, W1, b1, W2, b2):
    return affine(relu(affine(x, W1, b1)), W2, b2)


def two_layer_net_loss(x, t, W1, b1, W2, b2):
    return softmax_with_loss(two_layer_net_predict(x, W1, b1, W2, b2), t)


from .later import (  # noqa: E402 - the book's later layers (ch. 6-7)
    batch_norm_layer, batch_normalization, batch_normalization_eval, col2im, convolution, dropout, im2col, pooling,
)
from .networks import (  # noqa: E402 - the networks of ch. 6-7
    multi_layer_net_extend_loss, multi_layer_net_loss, multi_layer_net_predict, simple_conv_net_loss,
    simple_conv_net_predict,
)
from .optimizers import adagrad, adam, momentum, nesterov, rmsprop, sgd  # noqa: E402 - ch. 6
