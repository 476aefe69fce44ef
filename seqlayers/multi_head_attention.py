"""Multi-head attention with explicit mask semantics and a key/value cache for decoding."""

import functools
import math

import keras
from keras import ops

from seqlayers._argument_checks import as_int_tuple, check_dropout_rate, check_positive_int
from seqlayers._signatures import bound_call_arguments, dtype_config

# Logit given to masked (query, key) pairs; the softmax runs in float32, where this is safe.
_MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="seqlayers")
class AttentionProjection(keras.layers.EinsumDense):
    """An ``EinsumDense`` that takes masked inputs quietly, returns no mask, and quantizes.

    ``MultiHeadAttention`` applies the masks itself, after projecting; a plain ``EinsumDense``
    would warn on every call that it drops the mask of its (masked) input.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def quantize(self, mode=None, type_check=True, config=None):
        # EinsumDense refuses to quantize subclasses, which might compute something other than
        # the product it quantizes. This one computes exactly EinsumDense's (it changes masks
        # only), so `Model.quantize` may quantize it like the plain layer.
        super().quantize(mode, type_check=False, config=config)


@keras.saving.register_keras_serializable(package="seqlayers")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017), with a decoding cache.

    For each head ``n``: ``softmax(Q_n K_n^T / sqrt(key_dim) + mask) V_n`` with
    ``Q_n = query W^q_n + b^q_n``, ``K_n = key W^k_n + b^k_n``, ``V_n = value W^v_n + b^v_n``;
    the heads are concatenated and projected by ``W^o, b^o``. Paper: "Attention Is All You
    Need", https://arxiv.org/abs/1706.03762. With ``use_gate``, each head's output is first
    multiplied by ``sigmoid(query W^g_n + b^g_n)`` ("Gated Attention for Large Language
    Models", https://arxiv.org/abs/2505.06708).

    A drop-in for ``keras.layers.MultiHeadAttention`` (Keras 3.15): the same constructor, call
    signature, output and score shapes, and weights (``set_weights(keras_mha.get_weights())``
    gives the same outputs and scores; in order, the kernels and biases of the ``query``,
    ``key``, ``gate`` (with ``use_gate``), ``value`` and ``attention_output`` projections,
    shaped ``(features, heads, key_dim)``, ``(heads, key_dim)``, ..., ``(heads, value_dim,
    out)``, ``(out,)``). Keras's own test file for the layer runs against this one in our test
    suite; where they differ is listed here:

    - a query step with nothing to attend to (every key masked, for every head) gets all-zero
      scores and an all-zero output, never uniform attention over padding, never NaN; a head
      with nothing to attend contributes zeros;
    - an explicit ``query_mask`` is applied (Keras replaces it by the query's Keras mask, or
      by none);
    - the softmax is computed in float32 under any dtype policy;
    - the key/value cache below;
    - with more than one attention axis, ``use_causal_mask`` and ``sliding_window`` follow the
      row-major order of the attended positions (Keras builds those masks from axis 1 only);
    - ``_compute_attention``, Keras's override point, is called as Keras calls it, but for
      inputs of higher rank with the attended positions flattened: ``[B', T, N, H]``.

    Masks. Query ``i`` may attend key ``j`` only where every given mask allows it, combined by
    logical AND:

    - ``query_mask`` ``(batch, T)``: padded query steps attend nothing;
    - ``value_mask`` and ``key_mask`` ``(batch, S)``: padded keys receive zero attention;
    - ``attention_mask`` ``(T, S)``, ``(batch, T, S)`` or per head ``(batch, heads, T, S)``;
    - ``use_causal_mask``: ``j <= i`` (aligned at the first step, as in Keras);
    - ``sliding_window=w``: ``|i - j| < w`` (with ``use_causal_mask``, the causal window).

    Keras fills ``query_mask``, ``value_mask`` and ``key_mask`` from the inputs' own masks
    (e.g. ``Embedding(mask_zero=True)``); masks given explicitly take precedence. The output
    carries the query's mask.

    Without dropout in training and without returned scores, attention runs through
    ``keras.ops.dot_product_attention`` (the fused kernel of the backend, ``flash_attention``
    passed on as Keras does).

    Attention axes. As in Keras, inputs may have any rank ``(batch, d_1, ..., d_k, features)``
    (query and value of the same rank): attention runs over ``attention_axes`` (default: every
    axis but batch and features) and the other axes are batch axes. The attended positions
    are flattened row-major into one sequence, to which the masks, the causal order and the
    sliding window apply; scores are ``(batch, <batch axes>, heads, <query attended axes>,
    <key attended axes>)``, and ``attention_mask`` is laid out like them, with or without the
    heads axis (missing leading axes broadcast); padding masks have the inputs' shape without
    features. The cache needs ``(batch, time, features)`` inputs.

    Quantization. ``model.quantize("int8")`` (or ``"float8"``, ``"int4"``) quantizes the
    projections like any ``EinsumDense``; the config then records their quantized dtype
    policies (a ``keras.dtype_policies.DTypePolicyMap``), so a quantized model saved as
    ``.keras`` loads quantized.

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
        attention_axes: the axis or axes attention runs over (ints, negative ones counted from
            the end of the query's shape). Defaults to None: every axis but batch and features.
        sliding_window: None, or a positive int ``w``: query ``i`` attends keys with
            ``|i - j| < w`` only. Defaults to None.
        flash_attention: None (let the backend decide), True (require the backend's flash
            attention: no dropout, no returned scores; the TensorFlow backend has none and
            raises) or False, resolved with ``keras.config.is_flash_attention_enabled()`` as in
            Keras. Defaults to None.
        kernel_initializer: initializer of the projection kernels. Defaults to
            ``"glorot_uniform"``.
        bias_initializer: initializer of the projection biases. Defaults to ``"zeros"``.
        kernel_regularizer: regularizer of the projection kernels. Defaults to None.
        bias_regularizer: regularizer of the projection biases. Defaults to None.
        activity_regularizer: regularizer of the projections' outputs (as in Keras, not of
            the layer's output). Defaults to None.
        kernel_constraint: constraint on the projection kernels. Defaults to None.
        bias_constraint: constraint on the projection biases. Defaults to None.
        use_gate: whether to gate each head's output by a sigmoid projection of the query.
            Defaults to False.
        seed: seed of the attention dropout. Defaults to None.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: ``(batch, T, query_features)`` (or of higher rank, see attention axes).
        value: ``(batch, S, value_features)``; may be None when reading a cross-attention cache.
        key: ``(batch, S, key_features)``; defaults to ``value``.
        query_mask: boolean ``(batch, T)``, filled by Keras from ``query``'s mask.
        value_mask: boolean ``(batch, S)``, filled by Keras from ``value``'s mask.
        key_mask: boolean ``(batch, S)``, filled by Keras from ``key``'s mask.
        attention_mask: boolean ``(T, S)``, ``(batch, T, S)`` or ``(batch, heads, T, S)``; True
            where attention is allowed.
        return_attention_scores: also return the attention probabilities. Defaults to False.
        training: whether dropout is active.
        use_causal_mask: query ``i`` attends keys ``j <= i`` only. Defaults to False.
        cache: optional key/value cache ``(batch, 2, max_length, heads, key_dim)``.
        cache_update_index: where the new steps go in ``cache`` (int or scalar int tensor), or
            None to read ``cache`` as fixed keys and values.

    Returns:
        ``output`` of shape ``(batch, T, *output_shape)``; with ``return_attention_scores``,
        ``(output, scores)`` with scores ``(batch, heads, T, S)``; with ``cache``, the updated
        cache is appended: ``(output, cache)`` or ``(output, scores, cache)``. For inputs of
        higher rank, ``output`` has the query's shape with ``output_shape`` for its features,
        and the scores the shape given under attention axes.

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

    Attention over both spatial axes of an image, every pixel attending every pixel:

    >>> image = keras.random.normal((2, 6, 5, 32))  # (batch, height, width, channels)
    >>> spatial = MultiHeadAttention(num_heads=2, key_dim=8, attention_axes=(1, 2))
    >>> output, scores = spatial(image, image, return_attention_scores=True)
    >>> print(output.shape, scores.shape)
    (2, 6, 5, 32) (2, 2, 6, 5, 6, 5)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        # The error messages start as Keras's do, so that code matching them matches ours.
        sizes = {"num_heads": num_heads, "key_dim": key_dim}
        if value_dim is not None:
            sizes["value_dim"] = value_dim
        for name, value in sizes.items():
            _keras_worded(
                f"Received an invalid value for argument `{name}`", check_positive_int, name, value
            )
        check_dropout_rate("dropout", dropout)
        projected_shape = None
        if output_shape is not None:
            projected_shape = _keras_worded(
                "Invalid `output_shape`", as_int_tuple, "output_shape", output_shape
            )
        if sliding_window is not None:
            check_positive_int("sliding_window", sliding_window)
        # Resolved as Keras does: an explicit False defers to the global setting.
        resolved_flash_attention = flash_attention or keras.config.is_flash_attention_enabled()
        if resolved_flash_attention and dropout > 0:
            raise ValueError(
                "Dropout is not supported when flash attention is enabled. Please set dropout "
                f"to 0.0 to use flash attention (got dropout={dropout!r})."
            )
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        # Not `self.output_shape`: Keras layers use that name for something else.
        self.projected_shape = projected_shape
        self._output_shape_argument = output_shape
        # Under Keras's names (`_attention_axes`, ...), which its tests and subclasses read.
        self._attention_axes = _as_attention_axes(attention_axes)
        self._sliding_window = sliding_window
        self._flash_attention_argument = flash_attention
        self._flash_attention = resolved_flash_attention
        self._use_gate = use_gate
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self._activity_regularizer = keras.regularizers.get(activity_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self.supports_masking = True

    @property
    def attention_axes(self):
        return self._attention_axes

    # The projections, as keras.layers.MultiHeadAttention names them.

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    def _projection(self, equation, output_shape, bias_axes, name, activation=None):
        # A fresh initializer per projection: a seeded initializer object reused would give
        # every projection the same initial kernel.
        return AttentionProjection(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            activation=activation,
            kernel_initializer=self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            ),
            bias_initializer=self.bias_initializer.__class__.from_config(
                self.bias_initializer.get_config()
            ),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            activity_regularizer=self._activity_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            name=name,
            dtype=self.dtype_policy,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        _check_input_shapes(query_shape, value_shape, key_shape)
        self._attended_axes(len(query_shape))  # a clear error now rather than in call
        # The projections see sequences (batch, positions, features): inputs of higher rank
        # are flattened to that first.
        if len(query_shape) != 3:
            query_shape = (None, None, query_shape[-1])
            value_shape = (None, None, value_shape[-1])
            key_shape = (None, None, key_shape[-1])
        heads = self.num_heads
        # Created in Keras's order (query, key, gate, value, output), which is the order of
        # the weights.
        # Per head: [batch, time, features] -> [batch, time, heads, head_dim].
        self._query_dense = self._projection(
            "btd,dnh->btnh", (None, heads, self.key_dim), "nh", "query"
        )
        self._query_dense.build(query_shape)
        self._key_dense = self._projection(
            "bsd,dnh->bsnh", (None, heads, self.key_dim), "nh", "key"
        )
        self._key_dense.build(key_shape)
        if self._use_gate:
            self._gate_dense = self._projection(
                "btd,dnh->btnh", (None, heads, self.value_dim), "nh", "gate", "sigmoid"
            )
            self._gate_dense.build(query_shape)
        self._value_dense = self._projection(
            "bsd,dnh->bsnh", (None, heads, self.value_dim), "nh", "value"
        )
        self._value_dense.build(value_shape)
        self.attention_dropout = keras.layers.Dropout(
            self.dropout, seed=self.seed, name="attention_dropout", dtype=self.dtype_policy
        )
        output_features = self.projected_shape or (query_shape[-1],)
        output_axes = "opqrsuvwxyz"[: len(output_features)]
        # [batch, time, heads, value_dim] -> [batch, time, *output_features]
        self._output_dense = self._projection(
            f"btnh,nh{output_axes}->bt{output_axes}",
            (None, *output_features),
            output_axes,
            "attention_output",
        )
        self._output_dense.build((query_shape[0], query_shape[1], heads, self.value_dim))

    def _attended_axes(self, rank):
        """The query axes attention runs over, positive, for inputs of ``rank``."""
        if self._attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = tuple(axis + rank if axis < 0 else axis for axis in self._attention_axes)
        if not all(1 <= axis <= rank - 2 for axis in axes) or len(set(axes)) != len(axes):
            raise ValueError(
                "attention_axes must name distinct axes between the batch and the feature axis "
                f"of the query (1 to {rank - 2}, or {2 - rank} to -2 for inputs of rank {rank}), "
                f"got attention_axes={self._attention_axes!r}"
            )
        return axes

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
        return ops.stack([self._key_dense(key), self._value_dense(value)], axis=1)

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
        arguments = {
            "query": query,
            "value": value,
            "key": key,
            "query_mask": query_mask,
            "value_mask": value_mask,
            "key_mask": key_mask,
            "attention_mask": attention_mask,
            "return_attention_scores": return_attention_scores,
            "training": training,
            "use_causal_mask": use_causal_mask,
        }
        if len(query.shape) == 3:
            return self._attend_sequences(
                **arguments, cache=cache, cache_update_index=cache_update_index
            )
        if cache is not None:
            raise ValueError(
                "The key/value cache takes sequences (batch, time, features), got a query of "
                f"shape {query.shape}"
            )
        return self._attend_over_axes(**arguments)

    def _attend_sequences(
        self,
        query,
        value,
        key,
        query_mask,
        value_mask,
        key_mask,
        attention_mask,
        return_attention_scores,
        training,
        use_causal_mask,
        cache=None,
        cache_update_index=None,
    ):
        """``call`` for sequences ``(batch, time, features)``."""
        updating_cache = cache is not None and cache_update_index is not None
        if cache is not None:
            self._check_cacheable()

        gate = self._gate_dense(query) if self._use_gate else None  # [batch, T, heads, value_dim]
        projected_query = self._query_dense(query)  # [batch, T, heads, key_dim]
        if cache is not None and not updating_cache:
            keys, values = cache[:, 0], cache[:, 1]  # [batch, S, heads, key_dim]
        else:
            key = value if key is None else key
            keys = self._key_dense(key)  # [batch, S, heads, key_dim]
            values = self._value_dense(value)  # [batch, S, heads, value_dim]

        key_padding_mask = _all_of([value_mask, key_mask])  # [batch, S or T_new]
        if updating_cache:
            keys = _write_steps(cache[:, 0], cache_update_index, ops.cast(keys, cache.dtype))
            values = _write_steps(cache[:, 1], cache_update_index, ops.cast(values, cache.dtype))
            cache = ops.stack([keys, values], axis=1)
            if key_padding_mask is not None:
                # The masks describe the new steps; the other slots count as valid here.
                all_slots = ops.ones((ops.shape(keys)[0], ops.shape(keys)[1]), dtype="int32")
                key_padding_mask = _write_steps(
                    all_slots, cache_update_index, ops.cast(key_padding_mask, "int32")
                )

        padding_mask = _all_of(
            [
                None if query_mask is None else ops.expand_dims(query_mask, -1),
                None if key_padding_mask is None else ops.expand_dims(key_padding_mask, -2),
                _as_batched_attention_mask(attention_mask),
            ]
        )  # [batch or 1, (heads or 1,) T or 1, S], or None
        # Causal attention aligned at step 0 with nothing else to mask goes to the kernel's own
        # causal path, unless a subclass computes the attention (it would see no mask);
        # otherwise the causal pattern joins the mask.
        causal_by_kernel = (
            use_causal_mask
            and not updating_cache
            and padding_mask is None
            and self._sliding_window is None
            and type(self)._compute_attention is MultiHeadAttention._compute_attention
        )
        position_masks = []  # functions of (T, S, query offset) -> [1, T, S]
        if updating_cache or (use_causal_mask and not causal_by_kernel):
            position_masks.append(_causal_mask)
        if self._sliding_window is not None:
            position_masks.append(
                functools.partial(_sliding_window_mask, window=self._sliding_window)
            )
        mask = padding_mask
        if position_masks:
            positions = (
                ops.shape(projected_query)[1],
                ops.shape(keys)[1],
                cache_update_index if updating_cache else 0,
            )
            mask = _all_of([mask, *(position_mask(*positions) for position_mask in position_masks)])

        # `use_causal_mask` goes to our own `_compute_attention` only: a subclass's, written
        # for an older Keras, may not take it.
        causal_argument = {"use_causal_mask": True} if causal_by_kernel else {}
        context, scores = self._compute_attention(
            projected_query,
            keys,
            values,
            mask,
            training,
            return_attention_scores,
            **causal_argument,
        )
        if gate is not None:
            context = ops.multiply(context, gate)
        output = self._output_dense(context)
        if padding_mask is not None or self._sliding_window is not None:
            # Query steps with no key to attend to output zeros. (Causal masks alone never
            # empty a row: each query sees at least the first key.)
            output = _zero_rows_without_keys(output, mask)

        results = (output,)
        if return_attention_scores:
            results += (scores,)
        if cache is not None:
            results += (cache,)
        return results[0] if len(results) == 1 else results

    def _attend_over_axes(
        self,
        query,
        value,
        key,
        query_mask,
        value_mask,
        key_mask,
        attention_mask,
        return_attention_scores,
        training,
        use_causal_mask,
    ):
        """``call`` for inputs of rank 4 and more: attention over ``attention_axes``.

        The other axes between batch and features join the batch, the attended axes are
        flattened into one, in their order, and ``_attend_sequences`` does the rest.
        """
        rank = len(query.shape)
        attended = self._attended_axes(rank)
        batch_axes = (0, *(axis for axis in range(1, rank - 1) if axis not in attended))
        order = (*batch_axes, *attended)  # the non-feature axes, batch axes first
        key = value if key is None else key
        query_sizes, value_sizes = ops.shape(query), ops.shape(value)
        batch_sizes = [query_sizes[axis] for axis in batch_axes]
        query_positions = [query_sizes[axis] for axis in attended]
        value_positions = [value_sizes[axis] for axis in attended]

        def sequences(x, positions, has_features=True):
            # [batch, ..., features] -> [batch * batch axes, attended positions, features]
            permutation = (*order, rank - 1) if has_features else order
            if permutation != tuple(range(len(permutation))):
                x = ops.transpose(x, permutation)
            features = (ops.shape(x)[-1],) if has_features else ()
            return ops.reshape(x, (-1, math.prod(positions), *features))

        def sequence_mask(mask, positions):
            return None if mask is None else sequences(mask, positions, has_features=False)

        if attention_mask is not None:
            # Keras's layout: [batch, <batch axes>, (heads,) <query positions>, <key positions>],
            # missing leading axes broadcast; flattened like the inputs.
            attention_mask = ops.cast(attention_mask, "bool")
            rank_without_heads = len(batch_axes) + 2 * len(attended)
            heads = ()
            if len(attention_mask.shape) > rank_without_heads + 1:
                raise ValueError(
                    f"attention_mask has shape {attention_mask.shape}, more axes than the "
                    f"attention scores {len(batch_axes) + 1 + 2 * len(attended)}"
                )
            if len(attention_mask.shape) > rank_without_heads:
                heads = (attention_mask.shape[len(batch_axes)] or self.num_heads,)
            while len(attention_mask.shape) < rank_without_heads:
                attention_mask = ops.expand_dims(attention_mask, -2 * len(attended) - 1)
            attention_mask = ops.broadcast_to(
                attention_mask, (*batch_sizes, *heads, *query_positions, *value_positions)
            )
            attention_mask = ops.reshape(
                attention_mask,
                (-1, *heads, math.prod(query_positions), math.prod(value_positions)),
            )

        results = self._attend_sequences(
            query=sequences(query, query_positions),
            value=sequences(value, value_positions),
            key=sequences(key, value_positions),
            query_mask=sequence_mask(query_mask, query_positions),
            value_mask=sequence_mask(value_mask, value_positions),
            key_mask=sequence_mask(key_mask, value_positions),
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            use_causal_mask=use_causal_mask,
        )
        output = results[0] if return_attention_scores else results
        # [batch * batch axes, positions, *features] -> the query's layout, features last.
        feature_rank = len(output.shape) - 2
        output = ops.reshape(output, (*batch_sizes, *query_positions, *ops.shape(output)[2:]))
        restore = [order.index(axis) for axis in range(rank - 1)]
        restore += range(rank - 1, rank - 1 + feature_rank)
        if restore != list(range(len(restore))):
            output = ops.transpose(output, restore)
        if not return_attention_scores:
            return output
        scores = ops.reshape(
            results[1], (*batch_sizes, self.num_heads, *query_positions, *value_positions)
        )
        return output, scores

    def _compute_attention(
        self,
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        """Attention of projected heads: [B, T, N, H], [B, S, N, H], [B, S, N, Hv] -> [B, T, N, Hv].

        Keras's override point, with Keras's signature. ``attention_mask``: boolean
        ``(T, S)``, ``(B, T, S)`` or ``(B, N, T, S)`` (size-1 axes broadcast), or None;
        ``use_causal_mask`` adds the causal pattern. Returns ``(context, probabilities)``, the
        probabilities [B, N, T, S] only with ``return_attention_scores``. A head with no key
        to attend gets zero probabilities and a zero context.
        """
        if self._flash_attention and return_attention_scores:
            raise ValueError(
                "Returning attention scores is not supported when flash attention is enabled. "
                "Please disable flash attention to access attention scores."
            )
        mask = None
        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
            while len(mask.shape) < 4:
                mask = ops.expand_dims(mask, -3)  # [B or 1, N or 1, T or 1, S]
            if use_causal_mask:
                query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
                causal = ops.expand_dims(_causal_mask(query_length, key_length, 0), 1)
                mask, use_causal_mask = ops.logical_and(mask, causal), False
        scale = 1.0 / math.sqrt(float(self.key_dim))
        apply_dropout = self.dropout > 0 and bool(training)

        if (
            not return_attention_scores
            and not apply_dropout
            and (self.value_dim == self.key_dim or self._flash_attention)
        ):
            # The backend's fused attention; it computes the softmax in float32 itself.
            context = ops.dot_product_attention(
                query,
                key,
                value,
                mask=mask,
                scale=scale,
                is_causal=use_causal_mask,
                flash_attention=self._flash_attention,
            )
            if mask is not None and mask.shape[1] != 1:
                # Per-head masks: the kernel gives a head with no key uniform attention.
                has_keys = ops.transpose(ops.any(mask, axis=-1), (0, 2, 1))  # [B, T, N]
                context = context * ops.expand_dims(ops.cast(has_keys, context.dtype), -1)
            return context, None

        if use_causal_mask:
            query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
            mask = ops.expand_dims(_causal_mask(query_length, key_length, 0), 1)
        scaled_query = ops.multiply(query, ops.cast(scale, query.dtype))
        logits = ops.cast(ops.einsum("btnh,bsnh->bnts", scaled_query, key), "float32")
        if mask is not None:
            logits = ops.where(mask, logits, _MASKED_LOGIT)
        probabilities = ops.softmax(logits, axis=-1)  # [B, N, T, S], float32
        if mask is not None:
            # Exact zeros on masked keys, and on every key of a row that has none to attend.
            probabilities = probabilities * ops.cast(mask, "float32")
        probabilities = ops.cast(probabilities, self.compute_dtype)
        dropped = self.attention_dropout(probabilities, training=training)
        context = ops.einsum("bnts,bsnh->btnh", dropped, value)
        return context, probabilities if return_attention_scores else None

    # === Shapes and config ===

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        _check_input_shapes(query_shape, value_shape, key_shape)
        return (*query_shape[:-1], *(self.projected_shape or query_shape[-1:]))

    def compute_output_spec(self, *args, **kwargs):
        arguments = bound_call_arguments(self, args, kwargs)
        query, value, key = arguments["query"], arguments["value"], arguments["key"]
        cache = arguments["cache"]
        output_shape = (*query.shape[:-1], *(self.projected_shape or query.shape[-1:]))
        if value is not None:
            output_shape = self.compute_output_shape(
                query.shape, value.shape, None if key is None else key.shape
            )
        results = (keras.KerasTensor(output_shape, dtype=self.compute_dtype),)
        if arguments["return_attention_scores"]:
            rank = len(query.shape)
            attended = self._attended_axes(rank)
            batch_axes = [axis for axis in range(1, rank - 1) if axis not in attended]
            key_positions = (
                [cache.shape[2]] if cache is not None else [value.shape[a] for a in attended]
            )
            scores_shape = (
                query.shape[0],
                *(query.shape[axis] for axis in batch_axes),
                self.num_heads,
                *(query.shape[axis] for axis in attended),
                *key_positions,
            )
            results += (keras.KerasTensor(scores_shape, dtype=self.compute_dtype),)
        if cache is not None:
            results += (keras.KerasTensor(cache.shape, dtype=self.compute_dtype),)
        return results[0] if len(results) == 1 else results

    def get_config(self):
        return {
            **super().get_config(),
            "dtype": dtype_config(self),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self._output_shape_argument,
            "attention_axes": self._attention_axes,
            "sliding_window": self._sliding_window,
            "flash_attention": self._flash_attention_argument,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(self._activity_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "use_gate": self._use_gate,
            "seed": self.seed,
        }


def _keras_worded(prefix, check, *arguments):
    """``check(*arguments)``, its error message led by ``prefix`` (Keras's words for it)."""
    try:
        return check(*arguments)
    except ValueError as error:
        raise ValueError(f"{prefix}: {error}") from None


def _as_attention_axes(attention_axes):
    if attention_axes is None:
        return None
    axes = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
    if (
        not isinstance(axes, (tuple, list))
        or not axes
        or not all(isinstance(axis, int) and not isinstance(axis, bool) for axis in axes)
    ):
        raise ValueError(
            "attention_axes must be None, an int or a tuple of ints, got "
            f"attention_axes={attention_axes!r}"
        )
    return tuple(axes)


def _check_input_shapes(query_shape, value_shape, key_shape):
    value_dims, key_dims = tuple(value_shape)[1:-1], tuple(key_shape)[1:-1]
    if len(value_dims) != len(key_dims) or any(
        v is not None and k is not None and v != k
        for v, k in zip(value_dims, key_dims, strict=True)
    ):
        raise ValueError(
            "All dimensions of `value` and `key`, except the last one, must be equal. "
            f"Received: value_shape={tuple(value_shape)} and key_shape={tuple(key_shape)}"
        )
    if len(query_shape) < 3 or len(value_shape) != len(query_shape):
        raise ValueError(
            "query and value must be (batch, time, features), or both of one higher rank "
            f"(batch, ..., features); got shapes {tuple(query_shape)} and {tuple(value_shape)}"
        )


def _write_steps(sequence, start, steps):
    """``sequence`` (``[batch, S, ...]``) with ``steps`` (``[batch, T, ...]``) written over its
    time steps ``start`` to ``start + T - 1``: ``ops.slice_update`` along axis 1, from ops that
    every TensorFlow runtime runs. On TensorFlow, ``slice_update`` becomes XlaDynamicUpdateSlice,
    which has no kernel of its own and runs only where XLA compiles it on the spot; TF Serving
    does not by default, so a decoder's SavedModel with it would fail there."""
    length = ops.shape(sequence)[1]
    positions = ops.arange(length, dtype="int32")
    offsets = positions - ops.cast(start, "int32")
    inside = ops.logical_and(offsets >= 0, offsets < ops.shape(steps)[1])
    gathered = ops.take(steps, ops.clip(offsets, 0, ops.shape(steps)[1] - 1), axis=1)
    inside = ops.reshape(inside, (1, -1) + (1,) * (len(sequence.shape) - 2))
    return ops.where(inside, gathered, sequence)


def _all_of(masks):
    """Logical AND of the given boolean masks (broadcasting), None if none is given.

    Masks ``(batch, T, S)`` and per-head ``(batch, heads, T, S)`` combine: the former holds
    for every head.
    """
    present = [ops.cast(mask, "bool") for mask in masks if mask is not None]
    if not present:
        return None
    if any(len(mask.shape) == 4 for mask in present):
        present = [ops.expand_dims(m, 1) if len(m.shape) == 3 else m for m in present]
    combined = present[0]
    for mask in present[1:]:
        combined = ops.logical_and(combined, mask)
    return combined


def _as_batched_attention_mask(attention_mask):
    if attention_mask is None:
        return None
    if len(attention_mask.shape) == 2:  # [T, S]
        return ops.expand_dims(attention_mask, 0)
    if len(attention_mask.shape) not in (3, 4):
        raise ValueError(
            "attention_mask must have shape (T, S), (batch, T, S) or (batch, heads, T, S), got "
            f"{attention_mask.shape}"
        )
    return attention_mask


def _zero_rows_without_keys(output, mask):
    """Zeros ``output`` [B, T, ...] where ``mask`` [B or 1, (N,) T or 1, S] allows no key."""
    has_keys = ops.any(mask, axis=-1)  # [B or 1, (N,) T or 1]
    if len(mask.shape) == 4:
        has_keys = ops.any(has_keys, axis=1)  # some head attends something
    has_keys = ops.cast(has_keys, output.dtype)
    for _ in range(len(output.shape) - 2):
        has_keys = ops.expand_dims(has_keys, -1)
    return output * has_keys


def _causal_mask(query_length, key_length, query_offset):
    """``[1, T, S]``: key ``j`` visible to query ``i`` iff ``j <= i + query_offset``."""
    query_positions, key_positions = _positions(query_length, key_length, query_offset)
    return ops.expand_dims(ops.less_equal(key_positions, query_positions), 0)


def _sliding_window_mask(query_length, key_length, query_offset, window):
    """``[1, T, S]``: key ``j`` visible to query ``i`` iff ``|i + query_offset - j| < window``."""
    query_positions, key_positions = _positions(query_length, key_length, query_offset)
    return ops.expand_dims(ops.less(ops.abs(query_positions - key_positions), window), 0)


def _positions(query_length, key_length, query_offset):
    """Absolute positions of the queries ``[T, 1]`` and of the keys ``[1, S]``."""
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_offset, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    return ops.expand_dims(query_positions, 1), ops.expand_dims(key_positions, 0)
