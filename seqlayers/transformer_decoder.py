"""The Transformer decoder block, with a key/value cache for linear-time generation."""

import keras

from seqlayers._signatures import bound_call_arguments
from seqlayers.transformer_encoder import TransformerBlock


@keras.saving.register_keras_serializable(package="seqlayers")
class TransformerDecoder(TransformerBlock):
    """One Transformer decoder block (Vaswani et al. 2017), with a decoding cache.

    Causal self-attention, then (when called with an encoder sequence) cross-attention to the
    encoder sequence, then a feed-forward network; each sub-block with a residual connection
    and a layer normalization, after it (``normalize_first=False``, as in the paper)::

        x = LayerNorm(x + Dropout(CausalSelfAttention(x)))
        x = LayerNorm(x + Dropout(CrossAttention(x, encoder_sequence)))
        x = LayerNorm(x + Dropout(Dense(Dense(x, activation))))

    or before it (``normalize_first=True``: ``x = x + Dropout(SubBlock(LayerNorm(x)))``). Each
    attention head has size ``features // num_heads``. Paper: "Attention Is All You Need",
    https://arxiv.org/abs/1706.03762.

    Whether the block has cross-attention is fixed by its first call (build): with or without
    ``encoder_sequence``.

    Masking: the self-attention uses the decoder's padding mask (its Keras mask, or
    ``decoder_padding_mask``) and the causal mask; the cross-attention uses the *encoder's*
    padding mask (``encoder_sequence``'s Keras mask, or ``encoder_padding_mask``), so padded
    encoder steps receive no attention. Padded steps never change valid outputs. The decoder
    sequence's mask is returned with the output.

    Incremental decoding. ``self_attention_cache`` ``(batch, 2, max_length, heads, head_dim)``
    holds the keys and values of the steps generated so far (``empty_self_attention_cache``
    makes one); with ``self_attention_cache_update_index=i`` the new step(s) of
    ``decoder_sequence`` take positions ``i, i + 1, ...`` and attend all earlier positions
    through the cache, so each new token costs the same whatever the length of the prefix.
    ``cross_attention_cache`` (``compute_cross_attention_cache``) holds the projected encoder
    keys and values, computed once per source sequence; without it they are recomputed from
    ``encoder_sequence`` on every call. Feeding the tokens one at a time this way gives the
    outputs of one full causal pass. Padding among earlier cached steps, if any, must be passed
    as ``decoder_attention_mask`` ``(batch, new_steps, max_length)``.

    Args:
        intermediate_dim: width of the feed-forward network.
        num_heads: number of attention heads; must divide the feature size.
        dropout: dropout rate after each sub-block and on the attention probabilities.
            Defaults to 0.
        activation, layer_norm_epsilon, normalize_first, kernel_initializer,
        bias_initializer: as for ``TransformerEncoder`` (same defaults).
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        decoder_sequence: ``(batch, T, features)``; with a cache, the new step(s) only.
        encoder_sequence: optional ``(batch, S, encoder_features)``.
        decoder_padding_mask: optional boolean ``(batch, T)``; overrides the decoder
            sequence's Keras mask.
        encoder_padding_mask: optional boolean ``(batch, S)``; overrides the encoder
            sequence's Keras mask.
        decoder_attention_mask: optional boolean ``(batch, T, T)``, or ``(batch, T, max_length)``
            with a cache, combined with the causal and padding masks by logical AND.
        self_attention_cache: optional self-attention key/value cache.
        self_attention_cache_update_index: position of the first new step in the cache (int or
            scalar int tensor); required with ``self_attention_cache``.
        cross_attention_cache: optional precomputed encoder keys and values.
        training: whether dropout is active.

    Returns:
        ``(batch, T, features)`` with the decoder sequence's mask; with ``self_attention_cache``
        the tuple ``(outputs, self_attention_cache, cross_attention_cache)``, updated (the last
        only for a block with cross-attention).

    Example:

    >>> decoder = TransformerDecoder(intermediate_dim=128, num_heads=4)
    >>> target, source = keras.random.normal((2, 6, 64)), keras.random.normal((2, 9, 64))
    >>> full = decoder(target, source)  # one causal pass
    >>> print(full.shape)
    (2, 6, 64)

    The same outputs, one step at a time:

    >>> cache = decoder.empty_self_attention_cache(batch_size=2, max_length=6)
    >>> memory = decoder.compute_cross_attention_cache(source)
    >>> for step in range(6):
    ...     output, cache, memory = decoder(
    ...         target[:, step : step + 1], source, self_attention_cache=cache,
    ...         self_attention_cache_update_index=step, cross_attention_cache=memory)
    ...     assert keras.ops.all(keras.ops.isclose(output, full[:, step : step + 1], atol=1e-5))
    """

    # Built in build() only when an encoder sequence is given.
    cross_attention = None

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = decoder_sequence_shape[-1]
        self.self_attention = self._attention_layer("self_attention", hidden_dim)
        self.self_attention.build(decoder_sequence_shape, decoder_sequence_shape)
        self.self_attention_norm, self.self_attention_dropout = self._norm_and_dropout(
            "self_attention", decoder_sequence_shape
        )
        if encoder_sequence_shape is not None:
            self.cross_attention = self._attention_layer("cross_attention", hidden_dim)
            self.cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
            self.cross_attention_norm, self.cross_attention_dropout = self._norm_and_dropout(
                "cross_attention", decoder_sequence_shape
            )
        self._build_feedforward(decoder_sequence_shape)

    # === Cache helpers ===

    def empty_self_attention_cache(self, batch_size, max_length):
        """A zero self-attention cache ``(batch_size, 2, max_length, heads, head_dim)``."""
        self._check_built("an empty cache")
        return self.self_attention.empty_cache(batch_size, max_length)

    def compute_cross_attention_cache(self, encoder_sequence):
        """The projected keys and values of ``encoder_sequence``, to reuse at every step."""
        self._check_built("a cross-attention cache")
        if self.cross_attention is None:
            raise ValueError(f"{self.name!r} was built without cross-attention")
        return self.cross_attention.compute_cache(encoder_sequence)

    def cross_attention_scores(
        self,
        decoder_sequence,
        encoder_sequence,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
    ):
        """The cross-attention probabilities of one full causal pass (no dropout).

        What each decoder step attends to in the encoder sequence, to draw an alignment map
        (Bahdanau et al. 2015, figure 3) or to inspect a trained model. Masks as for ``call``.

        Returns:
            ``(batch, heads, T, S)``: for each head and decoder step, a distribution over the
            encoder steps (zero on padded encoder steps).
        """
        self._check_built("cross-attention scores")
        if self.cross_attention is None:
            raise ValueError(f"{self.name!r} was built without cross-attention")
        decoder_masks = {}
        if decoder_padding_mask is not None:
            decoder_masks = {"query_mask": decoder_padding_mask, "value_mask": decoder_padding_mask}
        x = self._sublayer_input(decoder_sequence, self.self_attention_norm)
        attended = self.self_attention(x, x, use_causal_mask=True, **decoder_masks)
        x = self._sublayer_output(
            decoder_sequence, attended, self.self_attention_norm, self.self_attention_dropout, False
        )
        cross_masks = {}
        if encoder_padding_mask is not None:
            cross_masks["value_mask"] = encoder_padding_mask
        if decoder_padding_mask is not None:
            cross_masks["query_mask"] = decoder_padding_mask
        _, scores = self.cross_attention(
            self._sublayer_input(x, self.cross_attention_norm),
            encoder_sequence,
            return_attention_scores=True,
            **cross_masks,
        )
        return scores

    def _check_built(self, what):
        if not self.built:
            raise ValueError(f"Call {self.name!r} once (or build it) before asking for {what}")

    # === Forward pass ===

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        decoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        training=None,
    ):
        if self_attention_cache is not None and self_attention_cache_update_index is None:
            raise ValueError("self_attention_cache needs self_attention_cache_update_index")
        has_encoder = encoder_sequence is not None or cross_attention_cache is not None
        if has_encoder and self.cross_attention is None:
            raise ValueError(
                f"{self.name!r} was built without cross-attention (first called without an "
                "encoder sequence); it cannot attend to one now"
            )
        if self.cross_attention is not None and not has_encoder:
            raise ValueError(f"{self.name!r} has cross-attention: pass encoder_sequence")

        # Without explicit padding masks, the attention layers read the Keras masks carried by
        # `decoder_sequence` (and its layer normalization) and by `encoder_sequence`.
        decoder_masks = {}
        if decoder_padding_mask is not None:
            decoder_masks = {"query_mask": decoder_padding_mask, "value_mask": decoder_padding_mask}

        # Causal self-attention.
        x = self._sublayer_input(decoder_sequence, self.self_attention_norm)
        attended = self.self_attention(
            x,
            x,
            attention_mask=decoder_attention_mask,
            use_causal_mask=True,
            cache=self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
            training=training,
            **decoder_masks,
        )
        if self_attention_cache is not None:
            attended, self_attention_cache = attended
        x = self._sublayer_output(
            decoder_sequence,
            attended,
            self.self_attention_norm,
            self.self_attention_dropout,
            training,
        )

        # Cross-attention to the encoder sequence, under the encoder's padding mask.
        if self.cross_attention is not None:
            if cross_attention_cache is None and self_attention_cache is not None:
                cross_attention_cache = self.cross_attention.compute_cache(encoder_sequence)
            cross_masks = {}
            if encoder_padding_mask is not None:
                cross_masks["value_mask"] = encoder_padding_mask
            if decoder_padding_mask is not None:
                cross_masks["query_mask"] = decoder_padding_mask
            attended = self.cross_attention(
                self._sublayer_input(x, self.cross_attention_norm),
                encoder_sequence,
                cache=cross_attention_cache,
                training=training,
                **cross_masks,
            )
            if cross_attention_cache is not None:
                attended, cross_attention_cache = attended
            x = self._sublayer_output(
                x, attended, self.cross_attention_norm, self.cross_attention_dropout, training
            )

        x = self._feedforward(x, training)

        if self_attention_cache is None:
            return x
        if self.cross_attention is None:
            return x, self_attention_cache
        return x, self_attention_cache, cross_attention_cache

    def compute_output_spec(self, *args, **kwargs):
        arguments = bound_call_arguments(self, args, kwargs)
        decoder_sequence = arguments["decoder_sequence"]
        self_attention_cache = arguments["self_attention_cache"]
        output = keras.KerasTensor(decoder_sequence.shape, dtype=self.compute_dtype)
        if self_attention_cache is None:
            return output
        self_cache = keras.KerasTensor(self_attention_cache.shape, dtype=self.compute_dtype)
        if self.cross_attention is None:
            return output, self_cache
        if arguments["cross_attention_cache"] is not None:
            cross_shape = arguments["cross_attention_cache"].shape
        else:
            encoder_sequence = arguments["encoder_sequence"]
            cross_shape = (
                encoder_sequence.shape[0],
                2,
                encoder_sequence.shape[1],
                self.num_heads,
                self.self_attention.key_dim,
            )
        return output, self_cache, keras.KerasTensor(cross_shape, dtype=self.compute_dtype)
