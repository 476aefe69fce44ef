"""Shared pytest set-up: a quiet TensorFlow import and a fixed random seed for every test."""

import pytest

import seqlayers  # noqa: F401  (first: loads TensorFlow without its C++ start-up noise)


@pytest.fixture(autouse=True)
def fixed_random_seed():
    import keras

    keras.utils.set_random_seed(1234)
