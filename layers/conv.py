"""Convolution and max pooling (ch. 7) on NCHW input, through im2col."""
from __future__ import annotations

import numpy as np

from .util import col2im, im2col


class Convolution:
    """Cross-correlation of the zero-padded input with ``W`` of shape ``(FN, C, FH, FW)``, plus ``b`` of shape ``(FN,)``."""

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        FN, C, FH, FW = self.W.shape
        N, _, H, W = x.shape
        out_h = (H + 2 * self.pad - FH) // self.stride + 1
        out_w = (W + 2 * self.pad - FW) // self.stride + 1
        self.x = x
        self.col = im2col(x, FH, FW, self.stride, self.pad)  # (N*out_h*out_w, C*FH*FW)
        self.col_W = self.W.reshape(FN, -1).T  # (C*FH*FW, FN)
        out = self.col @ self.col_W + self.b
        return out.reshape(N, out_h, out_w, FN).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        FN, C, FH, FW = self.W.shape
        d = dout.transpose(0, 2, 3, 1).reshape(-1, FN)  # rows in im2col's (n, i, j) order
        self.db = d.sum(axis=0)  # db = sum of dout over batch and positions
        self.dW = (self.col.T @ d).T.reshape(FN, C, FH, FW)  # dW = col.T @ dout, reshaped to (FN, C, FH, FW)
        dcol = d @ self.col_W.T  # dcol = dout @ W_col.T
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)  # dx = col2im(dcol), im2col's adjoint


class Pooling:
    """Max over ``pool_h x pool_w`` windows of the zero-padded input (a window inside the padding gives 0)."""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        N, C, H, W = x.shape
        # unlike the book, the output size counts the padding
        out_h = (H + 2 * self.pad - self.pool_h) // self.stride + 1
        out_w = (W + 2 * self.pad - self.pool_w) // self.stride + 1
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # one (n, i, j, c) window per row
        self.x = x
        self.arg_max = col.argmax(axis=1)
        out = col.max(axis=1)
        return out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        N, C, out_h, out_w = dout.shape
        d = dout.transpose(0, 2, 3, 1).ravel()  # windows in the forward's row order
        dcol = np.zeros((d.size, self.pool_h * self.pool_w), dtype=dout.dtype)
        dcol[np.arange(d.size), self.arg_max] = d  # dcol = dout at each window's argmax, 0 elsewhere
        dcol = dcol.reshape(N * out_h * out_w, -1)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)  # dx = col2im(dcol)
