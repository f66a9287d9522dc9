"""gradprop's own layer set: minimal, correct numpy versions of the book's items."""
from .functions import cross_entropy_error, softmax
from .gradient import numerical_gradient
from .layers import Affine, AddLayer, MulLayer, Relu, ReLU, Sigmoid, SoftmaxWithLoss
from .conv import Convolution, Pooling
from .regularization import BatchNormalization, Dropout
from .two_layer_net import TwoLayerNet

__all__ = [
    "Affine", "AddLayer", "BatchNormalization", "Convolution", "Dropout", "Pooling", "MulLayer", "Relu", "ReLU", "Sigmoid", "SoftmaxWithLoss", "TwoLayerNet",
    "cross_entropy_error", "numerical_gradient", "softmax",
]
