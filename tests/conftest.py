"""Shared pytest set-up: a quiet TensorFlow import and a fixed random seed for every test."""

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import pytest


@pytest.fixture(autouse=True)
def fixed_random_seed():
    import keras

    keras.utils.set_random_seed(1234)
