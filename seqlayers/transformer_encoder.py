"""The Transformer encoder block: self-attention and a feed-forward network, with residuals."""

import keras
from keras import ops

from seqlayers._argument_checks import check_dropout_rate, check_positive_int, check_positive_number
from seqlayers._signatures import dtype_config
from seqlayers.multi_head_attention import MultiHeadAttention


def validate_block_arguments(intermediate_dim, num_heads, dropout, layer_norm_epsilon):
    """Argument checks shared by the encoder and decoder blocks."""
    check_positive_int("intermediate_dim", intermediate_dim)
    check_positive_int("num_heads", num_heads)
    check_dropout_rate("dropout", dropout)
    check_positive_number("layer_norm_epsilon", layer_norm_epsilon)


def head_size(hidden_dim, num_heads):
    """Size of each attention head: the model width split evenly across the heads."""
    if hidden_dim % num_heads:
        raise ValueError(
            f"The feature size {hidden_dim} must be divisible by num_heads={num_heads}"
        )
    return hidden_dim // num_heads


def clone_initializer(initializer):
    """A fresh copy, so that seeded initializers do not repeat across sublayers."""
    return initializer.__class__.from_config(initializer.get_config())


class TransformerBlock(keras.layers.Layer):
    """What the encoder and decoder blocks share: arguments, their checks, config, sublayers."""

    def __init__(
        self,
        intermediate_dim,
        num_heads,
        dropout=0.0,
        activation="relu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        validate_block_arguments(intermediate_dim, num_heads, dropout, layer_norm_epsilon)
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _sublayer_arguments(self, name=None):
        arguments = {
            "kernel_initializer": clone_initializer(self.kernel_initializer),
            "bias_initializer": clone_initializer(self.bias_initializer),
            "dtype": self.dtype_policy,
        }
        return arguments if name is None else {**arguments, "name": name}

    def _attention_layer(self, name, hidden_dim):
        return MultiHeadAttention(
            self.num_heads,
            head_size(hidden_dim, self.num_heads),
            dropout=self.dropout,
            **self._sublayer_arguments(name),
        )

    def _norm_and_dropout(self, prefix, input_shape):
        """The layer norm and the dropout around sublayer ``prefix`` (built)."""
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name=f"{prefix}_norm", dtype=self.dtype_policy
        )
        norm.build(input_shape)
        dropout = keras.layers.Dropout(
            self.dropout, name=f"{prefix}_dropout", dtype=self.dtype_policy
        )
        return norm, dropout

    def _build_feedforward(self, input_shape):
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            **self._sublayer_arguments("intermediate_dense"),
        )
        self.intermediate_dense.build(input_shape)
        self.output_dense = keras.layers.Dense(
            input_shape[-1], **self._sublayer_arguments("output_dense")
        )
        self.output_dense.build((*input_shape[:-1], self.intermediate_dim))
        self.feedforward_norm, self.feedforward_dropout = self._norm_and_dropout(
            "feedforward", input_shape
        )

    # Every sub-block s (attention, feed-forward) is wired the same way around its layer norm:
    # pre-norm x + Dropout(s(LayerNorm(x))), post-norm LayerNorm(x + Dropout(s(x))).

    def _sublayer_input(self, x, norm):
        """What a sub-block reads: ``x``, layer-normalized first with ``normalize_first``."""
        return norm(x) if self.normalize_first else x

    def _sublayer_output(self, residual, output, norm, dropout, training):
        """``residual + Dropout(output)``, layer-normalized after the sum without it."""
        x = ops.add(residual, dropout(output, training=training))
        return x if self.normalize_first else norm(x)

    def _feedforward(self, x, training):
        """The position-wise feed-forward network with its residual and layer norm."""
        hidden = self._sublayer_input(x, self.feedforward_norm)
        hidden = self.output_dense(self.intermediate_dense(hidden))
        return self._sublayer_output(
            x, hidden, self.feedforward_norm, self.feedforward_dropout, training
        )

    def get_config(self):
        return {
            **super().get_config(),
            "dtype": dtype_config(self),  # with the policies of quantized sublayers
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "normalize_first": self.normalize_first,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="seqlayers")
class TransformerEncoder(TransformerBlock):
    """One Transformer encoder block (Vaswani et al. 2017).

    With ``normalize_first=False`` (post-norm, as in the paper)::

        x = LayerNorm(x + Dropout(SelfAttention(x)))
        x = LayerNorm(x + Dropout(Dense(Dense(x, activation))))

    and with ``normalize_first=True`` (pre-norm, more stable for deep stacks)::

        x = x + Dropout(SelfAttention(LayerNorm(x)))
        x = x + Dropout(Dense(Dense(LayerNorm(x), activation)))

    Each self-attention head has size ``features // num_heads``. Paper: "Attention Is All You
    Need", https://arxiv.org/abs/1706.03762.

    Masking: padded steps (the inputs' Keras mask, or ``padding_mask``) receive no attention and
    attend nothing, so they never change the valid outputs; their own outputs are
    unspecified but finite. The input mask is returned unchanged.

    Args:
        intermediate_dim: width of the feed-forward network.
        num_heads: number of attention heads; must divide the feature size.
        dropout: dropout rate after attention, on the attention probabilities and after the
            feed-forward network. Defaults to 0.
        activation: activation of the feed-forward network. Defaults to ``"relu"``.
        layer_norm_epsilon: epsilon of the layer normalizations. Defaults to 1e-5.
        normalize_first: pre-norm (True) or post-norm (False). Defaults to False.
        kernel_initializer: initializer of all kernels. Defaults to ``"glorot_uniform"``.
        bias_initializer: initializer of all biases. Defaults to ``"zeros"``.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, time, features)``.
        padding_mask: optional boolean ``(batch, time)``, True on valid steps; overrides the
            inputs' Keras mask.
        attention_mask: optional boolean ``(batch, time, time)``, True where attention is
            allowed; combined with the padding mask by logical AND.
        training: whether dropout is active.

    Returns:
        ``(batch, time, features)``, with the inputs' mask.

    Example:

    >>> tokens = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 64, mask_zero=True)(tokens)
    >>> x = TransformerEncoder(intermediate_dim=128, num_heads=4)(x)
    >>> print(x.shape)  # (batch, time, features), the mask kept
    (None, None, 64)
    """

    def build(self, input_shape):
        self.self_attention = self._attention_layer("self_attention", input_shape[-1])
        self.self_attention.build(input_shape, input_shape)
        self.self_attention_norm, self.self_attention_dropout = self._norm_and_dropout(
            "self_attention", input_shape
        )
        self._build_feedforward(input_shape)

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None):
        # Without an explicit padding mask, the attention reads the Keras mask that `inputs`
        # (and the layer normalization of it) carries.
        masks = (
            {} if padding_mask is None else {"query_mask": padding_mask, "value_mask": padding_mask}
        )

        x = self._sublayer_input(inputs, self.self_attention_norm)
        attended = self.self_attention(
            x, x, attention_mask=attention_mask, training=training, **masks
        )
        x = self._sublayer_output(
            inputs, attended, self.self_attention_norm, self.self_attention_dropout, training
        )
        return self._feedforward(x, training)

    def compute_output_shape(self, input_shape):
        return input_shape
