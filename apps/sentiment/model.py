"""Sentiment classifiers from ``seqlayers``: token ids in, class probabilities out.

Every architecture starts with ``Embedding(mask_zero=True)``, so padding (id 0) becomes a Keras
mask that each layer honours, and ends with a softmax over the classes. Hyperparameters are one
plain dict (``default_hyperparameters``): what the text encoder keeps (``max_tokens``,
``vocabulary_size``), the network's sizes, and the learning rate.
"""

from __future__ import annotations

import keras

from apps.common.layers import MaskedGlobalMaxPooling1D
from apps.sentiment import ARCHITECTURES
from seqlayers.tcn import TCN

# Shared by every architecture: the text encoder's settings.
PREPROCESSING_DEFAULTS = {"max_tokens": 400, "vocabulary_size": 20_000}
ARCHITECTURE_DEFAULTS = {
    "tcn": {
        "embedding_dim": 128,
        "filters": 128,
        "kernel_size": 3,
        "dilations": [1, 2, 4, 8],
        "dropout": 0.3,
        "learning_rate": 3e-3,
    },
    "lstm": {
        "embedding_dim": 128,
        "units": 96,
        "dropout": 0.5,
        "token_dropout": 0.2,
        "learning_rate": 1e-3,
    },
    "transformer": {
        "embedding_dim": 128,
        "num_heads": 4,
        "intermediate_dim": 256,
        "layers": 2,
        "dropout": 0.3,
        "learning_rate": 5e-4,
    },
}


def default_hyperparameters(architecture: str) -> dict:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    return {
        "architecture": architecture,
        **PREPROCESSING_DEFAULTS,
        **ARCHITECTURE_DEFAULTS[architecture],
    }


def build_classifier(hp: dict, vocabulary_size: int, num_classes: int) -> keras.Model:
    """An uncompiled model ``int32[batch, time] -> float32[batch, num_classes]``."""
    architecture = hp["architecture"]
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(
        vocabulary_size, hp["embedding_dim"], mask_zero=True, name="embedding"
    )(token_ids)
    # Whole-token dropout (the vector of a dropped token is zeroed) then channel dropout: small
    # sentiment datasets overfit within a few epochs without both.
    embedded = keras.layers.Dropout(
        hp.get("token_dropout", 0.0), noise_shape=(None, None, 1), name="token_dropout"
    )(embedded)
    embedded = keras.layers.SpatialDropout1D(hp["dropout"] / 2, name="embedding_dropout")(embedded)

    # === Sequence encoder ===
    if architecture == "tcn":
        # Non-causal ("same") padding: a classifier may look ahead. Max over valid steps: the
        # strongest n-gram detector wins (as in Kim 2014), which learns faster than a mean.
        sequence = TCN(
            hp["filters"],
            kernel_size=hp["kernel_size"],
            dilations=hp["dilations"],
            padding="same",
            normalization="weight",
            dropout=hp["dropout"] / 2,
            name="tcn",
        )(embedded)
        features = MaskedGlobalMaxPooling1D(name="max_over_time")(sequence)
    elif architecture == "lstm":
        from seqlayers.peephole_lstm import PeepholeLSTM

        features = keras.layers.Bidirectional(
            PeepholeLSTM(hp["units"], name="peephole_lstm"), name="bidirectional"
        )(embedded)
    else:
        from seqlayers.sinusoidal_positional_encoding import SinusoidalPositionalEncoding
        from seqlayers.transformer_encoder import TransformerEncoder

        sequence = SinusoidalPositionalEncoding(name="positions")(embedded)
        for index in range(hp["layers"]):
            sequence = TransformerEncoder(
                hp["intermediate_dim"],
                hp["num_heads"],
                dropout=hp["dropout"],
                name=f"transformer_{index}",
            )(sequence)
        features = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(sequence)

    # === Classifier head ===
    features = keras.layers.Dropout(hp["dropout"], name="dropout")(features)
    probabilities = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(features)
    return keras.Model(token_ids, probabilities, name=f"sentiment_{architecture}")
