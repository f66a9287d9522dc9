"""gradprop's own layer set: minimal, correct numpy versions of the book's items."""
from .functions import cross_entropy_error, softmax
from .gradient import numerical_gradient
from .layers import Affine, AddLayer, MulLayer, Relu, ReLU, Sigmoid, SoftmaxWithLoss
from .conv import Convolution, Pooling
from .regularization import BatchNormalization, Dropout
from .two_layer_net import TwoLayerNet
from .multi_layer_net import MultiLayerNet, MultiLayerNetExtend
from .optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from .simple_convnet import SimpleConvNet
from .util import col2im, im2col

__all__ = [
    "Affine", "AddLayer", "BatchNormalization", "Convolution", "Dropout", "Pooling", "MulLayer", "Relu", "ReLU",
    "Sigmoid", "SoftmaxWithLoss", "TwoLayerNet", "cross_entropy_error", "numerical_gradient", "softmax",
    "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop",
    "Adam", "im2col", "col2im",
]
