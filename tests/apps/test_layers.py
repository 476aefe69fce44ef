"""Layers the apps share: the layer kit and the masked maximum."""

import numpy as np

from apps.common.layers import MaskedGlobalMaxPooling1D
from tests.layer_checks import run_layer_checks


def test_masked_max_pooling_passes_the_layer_kit(tmp_path):
    run_layer_checks(
        MaskedGlobalMaxPooling1D,
        {},
        input_shape=(None, 3),
        expected_output_shape=(3,),
        tmp_path=tmp_path,
        masking=True,
    )


def test_masked_steps_never_win_and_empty_rows_give_zeros():
    x = np.array([[[1.0], [-5.0], [9.0]], [[2.0], [3.0], [4.0]]], "float32")
    mask = np.array([[True, True, False], [False, False, False]])
    pooled = MaskedGlobalMaxPooling1D()(x, mask=mask)
    np.testing.assert_array_equal(np.asarray(pooled), [[1.0], [0.0]])


def test_with_padding_mask_sets_the_mask_of_the_ids():
    import keras

    from apps.common.layers import WithPaddingMask

    ids = keras.Input((None,), dtype="int32")
    features = keras.Input((None, 2))
    masked = WithPaddingMask()([features, ids])
    pooled = keras.layers.GlobalAveragePooling1D()(masked)  # mask-aware mean
    model = keras.Model([features, ids], pooled)
    x = np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]], "float32")
    mean = model([x, np.array([[5, 6, 0]])])
    np.testing.assert_allclose(np.asarray(mean), [[2.0, 2.0]])
