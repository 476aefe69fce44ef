"""Multi-head attention with explicit mask semantics and a key/value cache for decoding."""

import math

import keras
from keras import ops

from seqlayers._argument_checks import as_int_tuple, check_dropout_rate, check_positive_int
from seqlayers._signatures import bound_call_arguments

# Logit given to masked (query, key) pairs; the softmax runs in float32, where this is safe.
_MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="seqlayers")
class AttentionProjection(keras.layers.EinsumDense):
    """An ``EinsumDense`` that takes masked inputs quietly and returns no mask.

    ``MultiHeadAttention`` applies the masks itself, after projecting; a plain ``EinsumDense``
    would warn on every call that it drops the mask of its (masked) input.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, previous_mask=None):
        return None


@keras.saving.register_keras_serializable(package="seqlayers")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017), with a decoding cache.

    For each head ``n``: ``softmax(Q_n K_n^T / sqrt(key_dim) + mask) V_n`` with
    ``Q_n = query W^q_n + b^q_n``, ``K_n = key W^k_n + b^k_n``, ``V_n = value W^v_n + b^v_n``;
    the heads are concatenated and projected by ``W^o, b^o``. Paper: "Attention Is All You
    Need", https://arxiv.org/abs/1706.03762.

    The constructor, call signature and weights match ``keras.layers.MultiHeadAttention`` for
    sequences ``(batch, time, features)``: ``set_weights(keras_mha.get_weights())`` gives the
    same outputs and scores (the weights are, in order, the kernels and biases of the
    ``query``, ``key``, ``value`` and ``attention_output`` projections, shaped
    ``(features, heads, key_dim)``, ``(heads, key_dim)``, ..., ``(heads, value_dim, out)``,
    ``(out,)``). Attention runs over the time axis only (no ``attention_axes``).

    Masks. Query ``i`` may attend key ``j`` only where every given mask allows it, combined by
    logical AND:

    - ``query_mask`` ``(batch, T)``: padded query steps attend nothing;
    - ``value_mask`` and ``key_mask`` ``(batch, S)``: padded keys receive zero attention;
    - ``attention_mask`` ``(batch, T, S)`` (or ``(T, S)``): any pattern;
    - ``use_causal_mask``: ``j <= i`` (aligned at the first step, as in Keras).

    Keras fills ``query_mask``, ``value_mask`` and ``key_mask`` from the inputs' own masks
    (e.g. ``Embedding(mask_zero=True)``); masks given explicitly take precedence. A query step
    with nothing to attend to gets all-zero attention scores and an all-zero output (never
    uniform attention over padding, never NaN); this is where we differ from
    ``keras.layers.MultiHeadAttention``. The output carries the query's mask.

    The softmax is computed in float32 under any dtype policy. Without dropout in training and
    without returned scores, attention runs through ``keras.ops.dot_product_attention`` (the
    fused kernel of the backend).

    Decoding cache. ``cache`` stacks the projected keys and values of every position,
    ``(batch, 2, max_length, heads, key_dim)`` (index 0: keys, 1: values; it needs
    ``value_dim == key_dim``). ``empty_cache`` and ``compute_cache`` make one.

    - With ``cache_update_index=i`` (self-attention, one or more new steps): the new keys and
      values (of ``key``/``value``, ``T_new`` steps) are written at ``i, ..., i + T_new - 1`` and
      the queries, at absolute positions ``i + t``, attend the cache slots ``<= i + t``: causal
      by construction, whatever ``use_causal_mask`` says. ``value_mask``/``key_mask`` describe
      the new steps; padding among earlier cached steps must come as ``attention_mask``
      ``(batch, T_new, max_length)`` over cache slots.
    - With ``cache_update_index=None`` (cross-attention to a fixed sequence): the cache holds
      the keys and values, ``value``/``key`` are not projected (pass ``value`` for its mask, or
      ``value_mask``), and the cache is returned unchanged.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value. Defaults to ``key_dim``.
        dropout: dropout rate on the attention probabilities. Defaults to 0.
        use_bias: whether the projections have biases. Defaults to True.
        output_shape: feature shape of the output (int or tuple); defaults to the query's
            feature size.
        kernel_initializer: initializer of the projection kernels. Defaults to
            ``"glorot_uniform"``.
        bias_initializer: initializer of the projection biases. Defaults to ``"zeros"``.
        kernel_regularizer: regularizer of the projection kernels. Defaults to None.
        bias_regularizer: regularizer of the projection biases. Defaults to None.
        kernel_constraint: constraint on the projection kernels. Defaults to None.
        bias_constraint: constraint on the projection biases. Defaults to None.
        seed: seed of the attention dropout. Defaults to None.
        **kwargs: base layer arguments (``name``, ``dtype``, ``activity_regularizer``, ...).

    Call arguments:
        query: ``(batch, T, query_features)``.
        value: ``(batch, S, value_features)``; may be None when reading a cross-attention cache.
        key: ``(batch, S, key_features)``; defaults to ``value``.
        query_mask: boolean ``(batch, T)``, filled by Keras from ``query``'s mask.
        value_mask: boolean ``(batch, S)``, filled by Keras from ``value``'s mask.
        key_mask: boolean ``(batch, S)``, filled by Keras from ``key``'s mask.
        attention_mask: boolean ``(batch, T, S)`` or ``(T, S)``; True where attention is allowed.
        return_attention_scores: also return the attention probabilities. Defaults to False.
        training: whether dropout is active.
        use_causal_mask: query ``i`` attends keys ``j <= i`` only. Defaults to False.
        cache: optional key/value cache ``(batch, 2, max_length, heads, key_dim)``.
        cache_update_index: where the new steps go in ``cache`` (int or scalar int tensor), or
            None to read ``cache`` as fixed keys and values.

    Returns:
        ``output`` of shape ``(batch, T, *output_shape)``; with ``return_attention_scores``,
        ``(output, scores)`` with scores ``(batch, heads, T, S)``; with ``cache``, the updated
        cache is appended: ``(output, cache)`` or ``(output, scores, cache)``.

    Example:

    >>> attention = MultiHeadAttention(num_heads=4, key_dim=16)
    >>> x = keras.random.normal((2, 10, 64))
    >>> full = attention(x, x, use_causal_mask=True)
    >>> print(full.shape)
    (2, 10, 64)

    Incremental decoding, one step at a time, equal to the full causal pass:

    >>> cache = attention.empty_cache(batch_size=2, max_length=10)
    >>> outputs = []
    >>> for step in range(10):
    ...     token = x[:, step : step + 1]
    ...     output, cache = attention(token, token, cache=cache, cache_update_index=step)
    ...     outputs.append(output)
    >>> print(bool(ops.all(ops.isclose(ops.concatenate(outputs, axis=1), full, atol=1e-5))))
    True
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        check_positive_int("num_heads", num_heads)
        check_positive_int("key_dim", key_dim)
        if value_dim is not None:
            check_positive_int("value_dim", value_dim)
        check_dropout_rate("dropout", dropout)
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        # Not `self.output_shape`: Keras layers use that name for something else.
        self.projected_shape = (
            None if output_shape is None else as_int_tuple("output_shape", output_shape)
        )
        self._output_shape_argument = output_shape
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self.supports_masking = True

    def _projection(self, equation, output_shape, bias_axes, name):
        # A fresh initializer per projection: a seeded initializer object reused would give
        # every projection the same initial kernel.
        return AttentionProjection(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            ),
            bias_initializer=self.bias_initializer.__class__.from_config(
                self.bias_initializer.get_config()
            ),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            name=name,
            dtype=self.dtype_policy,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for argument, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(
                    f"{argument} must be a sequence (batch, time, features), got shape {shape}"
                )
        if value_shape[1] is not None and key_shape[1] is not None:
            if value_shape[1] != key_shape[1]:
                raise ValueError(
                    f"key and value must have the same length, got shapes {key_shape} and "
                    f"{value_shape}"
                )
        heads = self.num_heads
        # Per head: [batch, time, features] -> [batch, time, heads, head_dim].
        self.query_dense = self._projection(
            "btd,dnh->btnh", (None, heads, self.key_dim), "nh", "query"
        )
        self.query_dense.build(query_shape)
        self.key_dense = self._projection("bsd,dnh->bsnh", (None, heads, self.key_dim), "nh", "key")
        self.key_dense.build(key_shape)
        self.value_dense = self._projection(
            "bsd,dnh->bsnh", (None, heads, self.value_dim), "nh", "value"
        )
        self.value_dense.build(value_shape)
        self.attention_dropout = keras.layers.Dropout(
            self.dropout, seed=self.seed, name="attention_dropout", dtype=self.dtype_policy
        )
        output_features = self.projected_shape or (query_shape[-1],)
        output_axes = "opqrsuvwxyz"[: len(output_features)]
        # [batch, time, heads, value_dim] -> [batch, time, *output_features]
        self.output_dense = self._projection(
            f"btnh,nh{output_axes}->bt{output_axes}",
            (None, *output_features),
            output_axes,
            "attention_output",
        )
        self.output_dense.build((query_shape[0], query_shape[1], heads, self.value_dim))

    # === Cache helpers ===

    def empty_cache(self, batch_size, max_length):
        """A zero key/value cache ``(batch_size, 2, max_length, heads, key_dim)``."""
        self._check_cacheable()
        return ops.zeros(
            (batch_size, 2, max_length, self.num_heads, self.key_dim), dtype=self.compute_dtype
        )

    def compute_cache(self, value, key=None):
        """The projected keys and values of a fixed sequence (for cross-attention).

        Args:
            value: ``(batch, S, value_features)``.
            key: ``(batch, S, key_features)``; defaults to ``value``.

        Returns:
            The cache ``(batch, 2, S, heads, key_dim)``; pass it with ``cache_update_index=None``.
        """
        self._check_cacheable()
        if not self.built:
            raise ValueError(f"Call {self.name!r} once before computing a cache from it")
        key = value if key is None else key
        return ops.stack([self.key_dense(key), self.value_dense(value)], axis=1)

    def _check_cacheable(self):
        if self.value_dim != self.key_dim:
            raise ValueError(
                "A key/value cache needs value_dim == key_dim, got value_dim="
                f"{self.value_dim} and key_dim={self.key_dim}"
            )

    # === Attention ===

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        cache=None,
        cache_update_index=None,
    ):
        if cache_update_index is not None and cache is None:
            raise ValueError("cache_update_index was given without a cache")
        updating_cache = cache is not None and cache_update_index is not None
        if cache is not None:
            self._check_cacheable()

        projected_query = self.query_dense(query)  # [batch, T, heads, key_dim]
        if cache is not None and not updating_cache:
            keys, values = cache[:, 0], cache[:, 1]  # [batch, S, heads, key_dim]
        else:
            key = value if key is None else key
            keys = self.key_dense(key)  # [batch, S, heads, key_dim]
            values = self.value_dense(value)  # [batch, S, heads, value_dim]

        key_padding_mask = _all_of([value_mask, key_mask])  # [batch, S or T_new]
        if updating_cache:
            slot = [0, cache_update_index, 0, 0]
            keys = ops.slice_update(cache[:, 0], slot, ops.cast(keys, cache.dtype))
            values = ops.slice_update(cache[:, 1], slot, ops.cast(values, cache.dtype))
            cache = ops.stack([keys, values], axis=1)
            if key_padding_mask is not None:
                # The masks describe the new steps; the other slots count as valid here.
                all_slots = ops.ones((ops.shape(keys)[0], ops.shape(keys)[1]), dtype="int32")
                key_padding_mask = ops.slice_update(
                    all_slots, [0, cache_update_index], ops.cast(key_padding_mask, "int32")
                )

        padding_mask = _all_of(
            [
                None if query_mask is None else ops.expand_dims(query_mask, -1),
                None if key_padding_mask is None else ops.expand_dims(key_padding_mask, -2),
                _as_batched_attention_mask(attention_mask),
            ]
        )  # [batch or 1, T or 1, S], or None
        # Causal attention aligned at step 0 with nothing else to mask goes to the kernel's own
        # causal path; otherwise the causal pattern joins the mask.
        causal_by_kernel = use_causal_mask and not updating_cache and padding_mask is None
        mask = padding_mask
        if updating_cache or (use_causal_mask and not causal_by_kernel):
            causal_offset = cache_update_index if updating_cache else 0
            mask = _all_of(
                [
                    mask,
                    _causal_mask(ops.shape(projected_query)[1], ops.shape(keys)[1], causal_offset),
                ]
            )  # [batch or 1, T, S]

        context, scores = self._attend(
            projected_query, keys, values, mask, causal_by_kernel, training, return_attention_scores
        )
        output = self.output_dense(context)
        if padding_mask is not None:
            # Query steps with no key to attend to output zeros. (Causal masks alone never
            # empty a row: each query sees at least the first key.)
            output = _zero_rows_without_keys(output, mask)

        results = (output,)
        if return_attention_scores:
            results += (scores,)
        if cache is not None:
            results += (cache,)
        return results[0] if len(results) == 1 else results

    def _attend(self, query, keys, values, mask, causal_by_kernel, training, return_scores):
        """Attention of projected heads: [B, T, N, H], [B, S, N, H], [B, S, N, Hv] -> [B, T, N, Hv].

        ``mask``: boolean [B or 1, T or 1, S] or None. Returns ``(context, probabilities)``, the
        probabilities [B, N, T, S] only when ``return_scores``.
        """
        scale = 1.0 / math.sqrt(float(self.key_dim))
        apply_dropout = self.dropout > 0 and bool(training)
        if mask is not None:
            mask = ops.expand_dims(mask, 1)  # [B or 1, 1, T or 1, S]: shared by the heads

        if not return_scores and not apply_dropout and self.value_dim == self.key_dim:
            # The backend's fused attention; it computes the softmax in float32 itself.
            context = ops.dot_product_attention(
                query, keys, values, mask=mask, scale=scale, is_causal=causal_by_kernel
            )
            return context, None

        if causal_by_kernel:
            mask = ops.expand_dims(_causal_mask(ops.shape(query)[1], ops.shape(keys)[1], 0), 1)
        scaled_query = ops.multiply(query, ops.cast(scale, query.dtype))
        logits = ops.cast(ops.einsum("btnh,bsnh->bnts", scaled_query, keys), "float32")
        if mask is not None:
            logits = ops.where(mask, logits, _MASKED_LOGIT)
        probabilities = ops.softmax(logits, axis=-1)  # [B, N, T, S], float32
        if mask is not None:
            # Exact zeros on masked keys, and on every key of a row that has none to attend.
            probabilities = probabilities * ops.cast(mask, "float32")
        probabilities = ops.cast(probabilities, self.compute_dtype)
        dropped = self.attention_dropout(probabilities, training=training)
        context = ops.einsum("bnts,bsnh->btnh", dropped, values)
        return context, probabilities if return_scores else None

    def compute_output_spec(self, *args, **kwargs):
        arguments = bound_call_arguments(self, args, kwargs)
        query, value, cache = arguments["query"], arguments["value"], arguments["cache"]
        return_attention_scores = arguments["return_attention_scores"]
        batch, query_length = query.shape[0], query.shape[1]
        output_features = self.projected_shape or (query.shape[-1],)
        results = (
            keras.KerasTensor((batch, query_length, *output_features), dtype=self.compute_dtype),
        )
        if return_attention_scores:
            key_length = value.shape[1] if cache is None else cache.shape[2]
            results += (
                keras.KerasTensor(
                    (batch, self.num_heads, query_length, key_length), dtype=self.compute_dtype
                ),
            )
        if cache is not None:
            results += (keras.KerasTensor(cache.shape, dtype=self.compute_dtype),)
        return results[0] if len(results) == 1 else results

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self._output_shape_argument,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }


def _all_of(masks):
    """Logical AND of the given boolean masks (broadcasting), None if none is given."""
    present = [ops.cast(mask, "bool") for mask in masks if mask is not None]
    if not present:
        return None
    combined = present[0]
    for mask in present[1:]:
        combined = ops.logical_and(combined, mask)
    return combined


def _as_batched_attention_mask(attention_mask):
    if attention_mask is None:
        return None
    if len(attention_mask.shape) == 2:  # [T, S]
        return ops.expand_dims(attention_mask, 0)
    if len(attention_mask.shape) != 3:
        raise ValueError(
            f"attention_mask must have shape (batch, T, S) or (T, S), got {attention_mask.shape}"
        )
    return attention_mask


def _zero_rows_without_keys(output, mask):
    """Zeros ``output`` [B, T, ...] where ``mask`` [B or 1, T, S] allows no key."""
    has_keys = ops.cast(ops.any(mask, axis=-1), output.dtype)  # [B or 1, T]
    for _ in range(len(output.shape) - 2):
        has_keys = ops.expand_dims(has_keys, -1)
    return output * has_keys


def _causal_mask(query_length, key_length, query_offset):
    """``[1, T, S]``: key ``j`` visible to query ``i`` iff ``j <= i + query_offset``."""
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_offset, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    visible = ops.less_equal(ops.expand_dims(key_positions, 0), ops.expand_dims(query_positions, 1))
    return ops.expand_dims(visible, 0)
