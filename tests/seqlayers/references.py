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


def peephole_lstm_update(z, c, peepholes):
    """One step of the peephole LSTM equations from the gate pre-activations: ``(h, c)``.

    ``z`` holds x·W + h·U + b for the gates i, f, c, o (in that order, along the last axis);
    ``c`` is c_{t-1}; ``peepholes`` = (p_i, p_f, p_o) (Gers & Schmidhuber 2000; Shi et al.
    2015 for ConvLSTM, where the products are convolutions)::

        i = σ(z_i + p_i ⊙ c_{t-1}),  f = σ(z_f + p_f ⊙ c_{t-1}),
        c_t = f ⊙ c_{t-1} + i ⊙ tanh(z_c),  o = σ(z_o + p_o ⊙ c_t),  h_t = o ⊙ tanh(c_t)
    """
    p_i, p_f, p_o = peepholes
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    c = sigmoid(z_f + p_f * c) * c + sigmoid(z_i + p_i * c) * np.tanh(z_c)
    h = sigmoid(z_o + p_o * c) * np.tanh(c)
    return h, c
