"""Pure JAX references for the networks of ch. 6-7: the loss as a function of the parameters.

``jax.vjp`` of a loss with ``dout = 1`` is the gradient a network's ``gradient(x, t)`` returns.
A network of any depth takes its parameters by name (``W1, b1, ..., W{L+1}, b{L+1}``, and
``gamma{i}, beta{i}`` with batch normalization), as the book's ``params`` dict holds them.
"""
from __future__ import annotations

from ._jax import jax, jnp
from . import affine, relu, softmax_with_loss
from .later import batch_normalization, convolution, pooling



def _activation(name: str):
    """The hidden layers' activation by the book's name (looked up when traced: JAX is imported
    then, not when this module is)."""
    return relu if name == "relu" else jax.nn.sigmoid


def _depth(params) -> int:
    """The number of Affine layers: W1 .. W{L+1}."""
    return sum(1 for k in params if k[:1] == "W" and k[1:].isdigit())


def multi_layer_net_predict(x, activation="relu", use_batchnorm=False, dropout_scale=1.0, **params):
    """Affine -> [BatchNorm (train mode)] -> activation -> [Dropout] per hidden layer, then Affine.
    Dropout here is its eval form, a constant ``dropout_scale`` (1 when off)."""
    act = _activation(activation)
    last = _depth(params)
    h = x
    for i in range(1, last):
        a = affine(h, params[f"W{i}"], params[f"b{i}"])
        if use_batchnorm:
            a = batch_normalization(a, params[f"gamma{i}"], params[f"beta{i}"])
        h = act(a) * dropout_scale
    return affine(h, params[f"W{last}"], params[f"b{last}"])


def weight_decay(lam, params):
    """0.5 * lambda * sum of W^2 over the Affine weights (not the biases, not gamma/beta)."""
    return 0.5 * lam * sum(jnp.sum(params[f"W{i}"] ** 2) for i in range(1, _depth(params) + 1))


def multi_layer_net_loss(x, t, activation="relu", weight_decay_lambda=0.0, **params):
    """The book's MultiLayerNet: softmax cross-entropy plus the weight decay term."""
    y = multi_layer_net_predict(x, activation, **params)
    return softmax_with_loss(y, t) + weight_decay(weight_decay_lambda, params)


def multi_layer_net_extend_loss(x, t, activation="relu", weight_decay_lambda=0.0, use_batchnorm=False, **params):
    """MultiLayerNetExtend in training mode without dropout: batch norm with the batch's statistics
    (before the activation)."""
    y = multi_layer_net_predict(x, activation, use_batchnorm, **params)
    return softmax_with_loss(y, t) + weight_decay(weight_decay_lambda, params)


def simple_conv_net_predict(x, W1, b1, W2, b2, W3, b3, conv_param):
    """conv - relu - pool(2, 2, stride 2) - affine - relu - affine."""
    h = relu(convolution(x, W1, b1, conv_param["stride"], conv_param["pad"]))
    h = pooling(h, 2, 2, 2)
    return affine(relu(affine(h, W2, b2)), W3, b3)


def simple_conv_net_loss(x, t, W1, b1, W2, b2, W3, b3, conv_param):
    return softmax_with_loss(simple_conv_net_predict(x, W1, b1, W2, b2, W3, b3, conv_param), t)
