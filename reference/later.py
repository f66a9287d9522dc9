"""Pure JAX references for the book's later layers (ch. 6-7); differentiate them with ``jax.vjp``."""
from __future__ import annotations

# JAX itself is imported when a reference is first traced, with float64 on
from ._jax import jax, jnp, lax  # noqa: F401 - jax: for the annotations

BOOK_EPS = 10e-7  # the book's BatchNormalization eps (= 1e-6)


def dropout(x: jax.Array, mask: jax.Array, scale: float) -> jax.Array:
    """``x * mask * scale``: book train mode is ``(mask, 1)``, book eval mode ``(ones, 1 - ratio)``."""
    return x * mask * scale


def _bn(x: jax.Array, gamma: jax.Array, beta: jax.Array, mean: jax.Array, var: jax.Array, eps: float) -> jax.Array:
    return gamma * (x - mean) / jnp.sqrt(var + eps) + beta


def batch_normalization(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float = BOOK_EPS) -> jax.Array:
    """Train-mode batch norm: per-feature batch mean and biased variance; rank > 2 flattened to ``(N, -1)``."""
    x2 = x.reshape(x.shape[0], -1)
    mean = x2.mean(axis=0)
    var = jnp.mean((x2 - mean) ** 2, axis=0)
    return _bn(x2, gamma, beta, mean, var, eps).reshape(x.shape)


def batch_normalization_eval(x: jax.Array, gamma: jax.Array, beta: jax.Array, running_mean: jax.Array,
                             running_var: jax.Array, eps: float = BOOK_EPS) -> jax.Array:
    """Eval-mode batch norm: normalize with the given running statistics."""
    x2 = x.reshape(x.shape[0], -1)
    return _bn(x2, gamma, beta, running_mean, running_var, eps).reshape(x.shape)


def _windows(x: jax.Array, fh: int, fw: int, stride: int, pad: int) -> jax.Array:
    """Every (fh, fw) window of the zero-padded input: shape (N, C, fh, fw, out_h, out_w).

    Built from strided slices, not from lax.conv / reduce_window: their transposes crash XLA's
    CPU compiler for some small stride/padding combinations (seen with jaxlib 0.10.2), and a
    reference must never take the grading process down.
    """
    xp = jnp.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    out_h = (x.shape[2] + 2 * pad - fh) // stride + 1
    out_w = (x.shape[3] + 2 * pad - fw) // stride + 1
    rows = [jnp.stack([xp[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride] for j in range(fw)], axis=2)
            for i in range(fh)]
    return jnp.stack(rows, axis=2)


def convolution(x: jax.Array, W: jax.Array, b: jax.Array, stride: int = 1, pad: int = 0) -> jax.Array:
    """NCHW cross-correlation with ``W`` of shape ``(FN, C, FH, FW)``, zero padding, plus ``b[f]``."""
    win = _windows(x, W.shape[2], W.shape[3], stride, pad)
    out = jnp.einsum("ncijhw,fcij->nfhw", win, W, precision=lax.Precision.HIGHEST)
    return out + b[None, :, None, None]


def pooling(x: jax.Array, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> jax.Array:
    """Max pooling over the input padded with zeros (as im2col pads), not with -inf."""
    win = _windows(x, pool_h, pool_w, stride, pad)
    return win.max(axis=(2, 3))


def batch_norm_layer(x: jax.Array, gamma: jax.Array, beta: jax.Array, running_mean: jax.Array,
                     running_var: jax.Array, train_flg: bool = True, eps: float = BOOK_EPS) -> jax.Array:
    """The layer as called: batch statistics in train mode, the running ones in eval mode."""
    if train_flg:
        return batch_normalization(x, gamma, beta, eps)
    return batch_normalization_eval(x, gamma, beta, running_mean, running_var, eps)


def im2col(input_data: jax.Array, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> jax.Array:
    """Every window of the zero-padded input as a row: ``(N*out_h*out_w, C*filter_h*filter_w)``,
    rows over the (n, i, j) output positions, columns over (c, dy, dx) inside the window."""
    n, c = input_data.shape[:2]
    win = _windows(input_data, filter_h, filter_w, stride, pad)  # (N, C, fh, fw, out_h, out_w)
    return win.transpose(0, 4, 5, 1, 2, 3).reshape(n * win.shape[4] * win.shape[5], c * filter_h * filter_w)


def col2im(col: jax.Array, input_shape: tuple[int, ...], filter_h: int, filter_w: int, stride: int = 1,
           pad: int = 0) -> jax.Array:
    """The adjoint of ``im2col``: <im2col(x), col> == <x, col2im(col)> for every x. Each entry of
    ``col`` is added to the pixel it was read from (overlapping windows add up; the padding is
    dropped): the transpose JAX derives from im2col itself."""
    zeros = jnp.zeros(tuple(input_shape), dtype=col.dtype)
    _, pullback = jax.vjp(lambda x: im2col(x, filter_h, filter_w, stride, pad), zeros)
    return pullback(col)[0]
