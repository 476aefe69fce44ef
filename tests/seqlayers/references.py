"""Independent references the layer tests compare against: NumPy formulas and Keras built-ins
holding a copy of our sublayers' weights."""

import keras
import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def keras_layer_norm_copy(ours, epsilon, input_shape):
    """``keras.layers.LayerNormalization`` with the weights of our norm sublayer ``ours``."""
    reference = keras.layers.LayerNormalization(epsilon=epsilon)
    reference.build(input_shape)
    reference.set_weights(ours.get_weights())
    return reference


def keras_dense_copy(ours, activation=None):
    """``keras.layers.Dense`` with the weights of our dense sublayer ``ours``."""
    reference = keras.layers.Dense(ours.units, activation=activation)
    reference.build((None, ours.kernel.shape[0]))
    reference.set_weights(ours.get_weights())
    return reference
