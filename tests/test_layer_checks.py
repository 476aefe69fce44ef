"""The layer test kit catches bugs: each check fails on a layer broken in the way it guards.

``MaskedCumulativeSum`` is a small correct layer (a causal, mask-aware running sum of a dense
projection) that passes every check; each broken layer below differs from it in one bug, and the
test for that bug asserts that the matching check fails while the correct layer passes.
"""

import keras
import pytest
import tensorflow as tf
from keras import ops

from tests.layer_checks import (
    LayerCheckFailure,
    LayerUnderTest,
    check_config_round_trip,
    check_eager_training_step,
    check_export_in_fresh_process,
    check_jit_training_step,
    check_keras_file_round_trip,
    check_masking,
    check_mixed_precision,
    check_output_shapes,
    run_layer_checks,
)


@keras.saving.register_keras_serializable(package="layer_checks_test")
class MaskedCumulativeSum(keras.layers.Layer):
    """y_t = sum_{s <= t, mask_s} activation(x_s W + b); masked steps contribute nothing."""

    def __init__(self, units, activation="linear", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.supports_masking = True

    def build(self, input_shape):
        self.projection = keras.layers.Dense(
            self.units, activation=self.activation, name="projection", dtype=self.dtype_policy
        )
        self.projection.build(input_shape)

    def call(self, inputs, mask=None):
        projected = self.projection(inputs)
        if mask is not None:
            projected = projected * ops.cast(mask, projected.dtype)[..., None]
        return ops.cumsum(projected, axis=1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="layer_checks_test")
class ConfigWithoutActivation(MaskedCumulativeSum):
    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return config


@keras.saving.register_keras_serializable(package="layer_checks_test")
class ConfigWithStaleActivation(MaskedCumulativeSum):
    def get_config(self):
        return {**super().get_config(), "activation": "linear"}


@keras.saving.register_keras_serializable(package="layer_checks_test")
class WrongDeclaredShape(MaskedCumulativeSum):
    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units + 1)


class Unregistered(MaskedCumulativeSum):
    pass


@keras.saving.register_keras_serializable(package="layer_checks_test")
class PythonCallback(MaskedCumulativeSum):
    """Runs part of its computation in Python: the SavedModel cannot replay it elsewhere."""

    def call(self, inputs, mask=None):
        outputs = super().call(inputs, mask)
        doubled = tf.py_function(lambda x: x * 2.0, [outputs], Tout=outputs.dtype)
        return tf.ensure_shape(doubled, outputs.shape)


@keras.saving.register_keras_serializable(package="layer_checks_test")
class HardcodedFloat32Compute(MaskedCumulativeSum):
    def call(self, inputs, mask=None):
        return ops.cast(super().call(inputs, mask), "float32")


@keras.saving.register_keras_serializable(package="layer_checks_test")
class HalfPrecisionVariables(MaskedCumulativeSum):
    def build(self, input_shape):
        super().build(input_shape)
        self.scale = self.add_weight(
            name="scale", shape=(self.units,), initializer="ones", dtype=self.compute_dtype
        )

    def call(self, inputs, mask=None):
        return super().call(inputs, mask) * self.scale


@keras.saving.register_keras_serializable(package="layer_checks_test")
class BlockedGradient(MaskedCumulativeSum):
    def build(self, input_shape):
        super().build(input_shape)
        self.scale = self.add_weight(name="scale", shape=(self.units,), initializer="ones")

    def call(self, inputs, mask=None):
        return super().call(inputs, mask) * ops.stop_gradient(self.scale)


@keras.saving.register_keras_serializable(package="layer_checks_test")
class NonFiniteOutput(MaskedCumulativeSum):
    def call(self, inputs, mask=None):
        return ops.log(-ops.abs(super().call(inputs, mask)) - 1.0)


@keras.saving.register_keras_serializable(package="layer_checks_test")
class IgnoresMask(MaskedCumulativeSum):
    """Claims to support masking but lets padded steps into the running sum."""

    def call(self, inputs, mask=None):
        return super().call(inputs, mask=None)


@keras.saving.register_keras_serializable(package="layer_checks_test")
class ReverseSumIgnoresMask(MaskedCumulativeSum):
    """A running sum from the end: post-padding leaks into valid steps."""

    def call(self, inputs, mask=None):
        return ops.flip(super().call(ops.flip(inputs, axis=1), mask=None), axis=1)


@keras.saving.register_keras_serializable(package="layer_checks_test")
class DropsMask(MaskedCumulativeSum):
    def compute_mask(self, inputs, mask=None):
        return None


def subject_for(layer_cls, masking=True):
    return LayerUnderTest(
        layer_cls=layer_cls,
        init_kwargs={"units": 4, "activation": "tanh"},
        input_shapes=[(None, 3)],
        output_shapes=[(None, 4)],
        masking=masking,
        sequence_lengths=(3, 7),
    )


def test_correct_layer_passes_every_check(tmp_path):
    run_layer_checks(
        MaskedCumulativeSum,
        {"units": 4, "activation": "tanh"},
        input_shape=(None, 3),
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
        masking=True,
    )


@pytest.mark.parametrize("broken", [ConfigWithoutActivation, ConfigWithStaleActivation])
def test_config_check_catches_a_bad_get_config(broken):
    check_config_round_trip(subject_for(MaskedCumulativeSum))
    with pytest.raises(LayerCheckFailure, match="config round trip"):
        check_config_round_trip(subject_for(broken))


def test_shape_check_catches_a_wrong_declared_shape():
    check_output_shapes(subject_for(MaskedCumulativeSum))
    with pytest.raises(LayerCheckFailure, match="output shapes"):
        check_output_shapes(subject_for(WrongDeclaredShape))


def test_shape_check_catches_a_wrong_documented_shape():
    subject = subject_for(MaskedCumulativeSum)
    subject.output_shapes = [(4,)]  # documented as returning the last step only
    with pytest.raises(LayerCheckFailure, match="output shapes"):
        check_output_shapes(subject)


def test_keras_file_check_catches_an_unregistered_layer(tmp_path):
    check_keras_file_round_trip(subject_for(MaskedCumulativeSum), tmp_path / "good")
    with pytest.raises(LayerCheckFailure, match="without custom_objects"):
        check_keras_file_round_trip(subject_for(Unregistered), tmp_path / "bad")


def test_export_check_catches_a_graph_that_needs_python(tmp_path):
    check_export_in_fresh_process(subject_for(MaskedCumulativeSum), tmp_path / "good")
    with pytest.raises(LayerCheckFailure, match="fresh process"):
        check_export_in_fresh_process(subject_for(PythonCallback, masking=False), tmp_path / "bad")


@pytest.mark.parametrize("broken", [HardcodedFloat32Compute, HalfPrecisionVariables])
def test_mixed_precision_check_catches_hardcoded_dtypes(broken):
    check_mixed_precision(subject_for(MaskedCumulativeSum))
    with pytest.raises(LayerCheckFailure, match="mixed_float16"):
        check_mixed_precision(subject_for(broken))


@pytest.mark.parametrize("broken", [BlockedGradient, NonFiniteOutput, PythonCallback])
def test_jit_check_catches_broken_training(broken):
    check_jit_training_step(subject_for(MaskedCumulativeSum))
    with pytest.raises(LayerCheckFailure, match="XLA training step"):
        check_jit_training_step(subject_for(broken, masking=False))


@pytest.mark.parametrize("broken", [BlockedGradient, NonFiniteOutput])
def test_eager_training_check_catches_broken_training(broken):
    # What a configuration variant (export_and_xla=False) still has checked in training.
    check_eager_training_step(subject_for(MaskedCumulativeSum))
    with pytest.raises(LayerCheckFailure, match="eager training step"):
        check_eager_training_step(subject_for(broken, masking=False))


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (IgnoresMask, "pre-padded batch"),
        (ReverseSumIgnoresMask, "post-padded batch"),
        (DropsMask, "does not carry the input mask"),
    ],
)
def test_masking_check_catches_wrong_mask_handling(broken, problem):
    check_masking(subject_for(MaskedCumulativeSum))
    with pytest.raises(LayerCheckFailure, match=problem):
        check_masking(subject_for(broken))


@keras.saving.register_keras_serializable(package="layer_checks_test")
class GatedCrossSum(keras.layers.Layer):
    """Two inputs: each query step adds the masked mean of the value sequence.

    Keras fills ``query_mask`` and ``value_mask`` from the inputs' masks; the default
    ``compute_mask`` passes the query's mask on.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, query_shape, value_shape):
        self.query_projection = keras.layers.Dense(
            self.units, name="query_projection", dtype=self.dtype_policy
        )
        self.query_projection.build(query_shape)
        self.value_projection = keras.layers.Dense(
            self.units, name="value_projection", dtype=self.dtype_policy
        )
        self.value_projection.build(value_shape)

    def call(self, query, value, query_mask=None, value_mask=None):
        projected = self.value_projection(value)
        if value_mask is None:
            summary = ops.mean(projected, axis=1, keepdims=True)
        else:
            weights = ops.cast(value_mask, projected.dtype)[..., None]
            summary = ops.sum(projected * weights, axis=1, keepdims=True) / ops.maximum(
                ops.sum(weights, axis=1, keepdims=True), 1.0
            )
        return self.query_projection(query) + summary

    def compute_output_shape(self, query_shape, value_shape):
        return (*query_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_kit_handles_layers_with_two_inputs(tmp_path):
    run_layer_checks(
        GatedCrossSum,
        {"units": 4},
        input_shape=[(None, 3), (None, 5)],
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
        masking=True,
    )
