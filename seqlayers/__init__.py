"""seqlayers: Keras 3 sequence layers, each proven against an independent reference.

Every layer is written on ``keras.ops``, registered for serialization under the package name
``seqlayers`` (so ``keras.models.load_model`` needs no ``custom_objects``), mask-aware where its
docstring says so, and exports to a SavedModel that TF Serving runs without this package.
"""

# Imported first for its side effect: TensorFlow loads here, without its C++ start-up noise.
from seqlayers import _quiet_import  # noqa: F401
from seqlayers.conv_lstm import (
    ConvLSTM1D,
    ConvLSTM1DCell,
    ConvLSTM2D,
    ConvLSTM2DCell,
    ConvLSTM3D,
    ConvLSTM3DCell,
)
from seqlayers.peephole_lstm import PeepholeLSTM, PeepholeLSTMCell
from seqlayers.tcn import TCN, last_valid_step
from seqlayers.tcn_block import TCNBlock, receptive_field
from seqlayers.weight_normalization import WeightNormalization

__version__ = "0.1.0"

__all__ = [
    "TCN",
    "ConvLSTM1D",
    "ConvLSTM1DCell",
    "ConvLSTM2D",
    "ConvLSTM2DCell",
    "ConvLSTM3D",
    "ConvLSTM3DCell",
    "PeepholeLSTM",
    "PeepholeLSTMCell",
    "TCNBlock",
    "WeightNormalization",
    "last_valid_step",
    "receptive_field",
]
