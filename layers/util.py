"""im2col / col2im: unfold image patches into matrix rows and fold them back (NCHW)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _out_size(size: int, filter_size: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - filter_size) // stride + 1


def im2col(input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Patches of the zero-padded ``(N, C, H, W)`` input as rows of a ``(N*out_h*out_w, C*filter_h*filter_w)`` matrix.

    Rows run over (n, i, j) output positions, columns over (c, dy, dx) inside the window.
    """
    N, C, H, W = input_data.shape
    out_h, out_w = _out_size(H, filter_h, stride, pad), _out_size(W, filter_w, stride, pad)
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    # every window, then every stride-th one: (N, C, out_h, out_w, filter_h, filter_w), a view
    win = sliding_window_view(img, (filter_h, filter_w), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(N * out_h * out_w, C * filter_h * filter_w)


def col2im(col: np.ndarray, input_shape: tuple[int, ...], filter_h: int, filter_w: int,
           stride: int = 1, pad: int = 0) -> np.ndarray:
    """The adjoint of ``im2col``: add every row's entries back to the pixels they were read from."""
    N, C, H, W = input_shape
    out_h, out_w = _out_size(H, filter_h, stride, pad), _out_size(W, filter_w, stride, pad)
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=col.dtype)
    for dy in range(filter_h):
        for dx in range(filter_w):
            # overlapping windows read the same pixel: their contributions add up
            img[:, :, dy:dy + stride * out_h:stride, dx:dx + stride * out_w:stride] += col[:, :, dy, dx]
    return img[:, :, pad:pad + H, pad:pad + W]
