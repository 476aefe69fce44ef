"""seqlayers: Keras 3 sequence layers, each proven against an independent reference.

Every layer is written on ``keras.ops``, registered for serialization under the package name
``seqlayers`` (so ``keras.models.load_model`` needs no ``custom_objects``), mask-aware where its
docstring says so, and exports to a SavedModel that TF Serving runs without this package.
"""

from seqlayers.conv_lstm import (
    ConvLSTM1D,
    ConvLSTM1DCell,
    ConvLSTM2D,
    ConvLSTM2DCell,
    ConvLSTM3D,
    ConvLSTM3DCell,
)
from seqlayers.crf import LinearChainCRF, crf_decode, crf_log_likelihood
from seqlayers.multi_head_attention import MultiHeadAttention
from seqlayers.peephole_lstm import PeepholeLSTM, PeepholeLSTMCell
from seqlayers.position_embedding import PositionEmbedding
from seqlayers.sinusoidal_positional_encoding import (
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
)
from seqlayers.tcn import TCN, last_valid_step
from seqlayers.tcn_block import TCNBlock, receptive_field
from seqlayers.transformer_decoder import TransformerDecoder
from seqlayers.transformer_encoder import TransformerEncoder
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
    "LinearChainCRF",
    "MultiHeadAttention",
    "PeepholeLSTM",
    "PeepholeLSTMCell",
    "PositionEmbedding",
    "SinusoidalPositionalEncoding",
    "TCNBlock",
    "TransformerDecoder",
    "TransformerEncoder",
    "WeightNormalization",
    "crf_decode",
    "crf_log_likelihood",
    "last_valid_step",
    "receptive_field",
    "sinusoidal_encoding",
]
