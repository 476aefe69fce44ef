"""A linear-chain conditional random field over per-token emission scores, for taggers."""

import keras
from keras import ops

from seqlayers._argument_checks import as_bool_matrix, check_positive_int

# The score a disallowed transition gets, in place of its learned value: exp(-1e4) is 0 in
# float32, so such a pair has probability 0 and never wins a decoding against any allowed path,
# while every sum, gradient and best score stays finite (-inf would give NaN gradients).
DISALLOWED_TRANSITION_SCORE = -1e4


def _check_scores(emissions, transitions, start_transitions, end_transitions, allowed):
    """Checks the static shapes; returns ``num_tags``."""
    if len(emissions.shape) != 3:
        raise ValueError(
            f"emissions must have shape (batch, time, num_tags), got shape {emissions.shape}"
        )
    num_tags = transitions.shape[0]
    if not isinstance(num_tags, int) or tuple(transitions.shape) != (num_tags, num_tags):
        raise ValueError(
            f"transitions must have a known shape (num_tags, num_tags), got {transitions.shape}"
        )
    if emissions.shape[-1] not in (None, num_tags):
        raise ValueError(
            f"emissions have {emissions.shape[-1]} tags (shape {emissions.shape}) but "
            f"transitions have {num_tags} (shape {transitions.shape})"
        )
    for name, scores in (
        ("start_transitions", start_transitions),
        ("end_transitions", end_transitions),
    ):
        if tuple(scores.shape) != (num_tags,):
            raise ValueError(f"{name} must have shape ({num_tags},), got {scores.shape}")
    if allowed is not None and tuple(allowed.shape) != (num_tags + 1, num_tags + 1):
        raise ValueError(
            f"allowed_transitions must have shape ({num_tags + 1}, {num_tags + 1}) for "
            f"{num_tags} tags (the last row is the start, the last column the end), "
            f"got {allowed.shape}"
        )
    return num_tags


def _prepare(emissions, mask, transitions, start_transitions, end_transitions, allowed):
    """Everything in float32 and the constraints applied: the tensors both algorithms read."""
    emissions, transitions, start_transitions, end_transitions = (
        ops.cast(ops.convert_to_tensor(x), "float32")
        for x in (emissions, transitions, start_transitions, end_transitions)
    )
    if allowed is not None:
        allowed = ops.convert_to_tensor(allowed, dtype="bool")
    num_tags = _check_scores(emissions, transitions, start_transitions, end_transitions, allowed)
    if allowed is not None:
        transitions = ops.where(
            allowed[:num_tags, :num_tags], transitions, DISALLOWED_TRANSITION_SCORE
        )
        start_transitions = ops.where(
            allowed[num_tags, :num_tags], start_transitions, DISALLOWED_TRANSITION_SCORE
        )
        end_transitions = ops.where(
            allowed[:num_tags, num_tags], end_transitions, DISALLOWED_TRANSITION_SCORE
        )
    if mask is None:
        mask = ops.ones(ops.shape(emissions)[:2], dtype="bool")
    else:
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
        if len(mask.shape) != 2:
            raise ValueError(f"mask must have shape (batch, time), got shape {mask.shape}")
    return emissions, mask, transitions, start_transitions, end_transitions


def _step_kinds(mask):
    """``[time, batch]`` int32: 0 at a masked step, 1 at a sequence's first valid step (where the
    start scores apply), 2 at its later valid steps."""
    valid_so_far = ops.cumsum(ops.cast(mask, "int32"), axis=1)
    kinds = ops.where(mask, ops.where(ops.equal(valid_so_far, 1), 1, 2), 0)
    return ops.transpose(kinds, (1, 0))


def _log_partition(emissions, mask, transitions, start_transitions, end_transitions):
    """``log Z``: the forward algorithm in log space, ``[batch]``."""
    num_tags = transitions.shape[0]
    emissions = ops.transpose(emissions, (1, 0, 2))  # [time, batch, tags]
    kinds = _step_kinds(mask)
    length = ops.shape(emissions)[0]

    def step(t, alpha):
        emission = ops.take(emissions, t, axis=0)  # [batch, tags]
        kind = ops.take(kinds, t, axis=0)[:, None]  # [batch, 1]
        # [batch, previous tag, tag] -> [batch, tag]
        from_previous = ops.logsumexp(alpha[:, :, None] + transitions[None], axis=1)
        updated = ops.where(kind == 1, start_transitions[None], from_previous) + emission
        # A masked step leaves alpha as it was: the next valid step continues from it.
        return t + 1, ops.where(kind > 0, updated, alpha)

    alpha = ops.zeros((ops.shape(emissions)[1], num_tags), dtype="float32")
    # A while loop rather than ops.scan: XLA differentiates a loop only when it knows the
    # maximum number of iterations, which Keras' scan does not pass on TensorFlow.
    _, alpha = ops.while_loop(lambda t, _: t < length, step, (0, alpha), maximum_iterations=length)
    log_z = ops.logsumexp(alpha + end_transitions[None], axis=1)
    return ops.where(ops.any(mask, axis=1), log_z, 0.0)


def _sequence_score(emissions, tags, mask, transitions, start_transitions, end_transitions):
    """The unnormalized score of ``tags``, ``[batch]``; masked steps skipped wherever they are."""
    num_tags = transitions.shape[0]
    tags = ops.where(
        mask, ops.cast(ops.convert_to_tensor(tags), "int32"), 0
    )  # any padding value, -1 included
    # [batch, time]
    emission_scores = ops.take_along_axis(emissions, tags[:, :, None], axis=2)[:, :, 0]
    score = ops.sum(ops.where(mask, emission_scores, 0.0), axis=1)
    # The valid steps' tags moved to the front, in order (for post-padding, nothing moves), so
    # that consecutive valid steps are neighbours even across gaps in the mask.
    length = ops.shape(tags)[1]
    steps = ops.arange(length, dtype="int32")
    order = ops.argsort(ops.where(mask, steps[None], steps[None] + length), axis=1)
    valid_tags = ops.take_along_axis(tags, order, axis=1)
    counts = ops.sum(ops.cast(mask, "int32"), axis=1)  # [batch]
    # [batch, time - 1]: transition scores between the k-th and (k+1)-th valid tags.
    pairs = ops.take(
        ops.reshape(transitions, (-1,)), valid_tags[:, :-1] * num_tags + valid_tags[:, 1:]
    )
    score += ops.sum(ops.where(steps[None, 1:] < counts[:, None], pairs, 0.0), axis=1)
    first_tag = valid_tags[:, 0]
    last_tag = ops.take_along_axis(valid_tags, ops.maximum(counts - 1, 0)[:, None], axis=1)[:, 0]
    boundary = ops.take(start_transitions, first_tag) + ops.take(end_transitions, last_tag)
    return score + ops.where(counts > 0, boundary, 0.0)


def crf_log_likelihood(
    emissions,
    tags,
    mask,
    transitions,
    start_transitions,
    end_transitions,
    allowed_transitions=None,
):
    """Log-probability of each tag sequence under a linear-chain CRF, in float32.

    ``log p(y | x) = score(y) - log Z`` with ``score`` as in ``LinearChainCRF`` and ``log Z``
    the log-sum-exp of the scores of all tag sequences, computed by the forward algorithm in
    log space over time (a ``keras.ops.while_loop``: unknown batch and time dimensions,
    TensorFlow graphs and XLA). Inputs of any float dtype are computed in float32 (mixed precision).

    Masked steps are skipped wherever they are: each sequence is its valid steps in order, so
    post-padding, pre-padding and masks with gaps all give the log-likelihood of the valid steps
    alone. A sequence without a valid step has log-likelihood 0.

    Args:
        emissions: ``[batch, time, num_tags]`` float scores of each tag at each step (logits).
        tags: ``[batch, time]`` int gold tags in ``[0, num_tags)``; the values at masked steps
            are ignored (``-1`` padding is fine).
        mask: ``[batch, time]`` bool (or 0/1), True at valid steps; ``None`` for all valid.
        transitions: ``[num_tags, num_tags]``, ``transitions[i, j]`` scores tag ``i`` followed
            by tag ``j``.
        start_transitions: ``[num_tags]`` scores of each tag at the first valid step.
        end_transitions: ``[num_tags]`` scores of each tag at the last valid step.
        allowed_transitions: optional bool ``[num_tags + 1, num_tags + 1]``: ``[i, j]`` allows
            ``i -> j``, row ``num_tags`` is the start and column ``num_tags`` the end. Disallowed
            pairs score ``DISALLOWED_TRANSITION_SCORE`` (-1e4) instead of their learned value.

    Returns:
        ``[batch]`` float32 log-likelihoods (<= 0).

    Example:

    >>> emissions = ops.zeros((1, 2, 3))  # 2 steps, 3 tags, all scores equal
    >>> transitions, boundary = ops.zeros((3, 3)), ops.zeros((3,))
    >>> log_p = crf_log_likelihood(
    ...     emissions, [[0, 2]], None, transitions, boundary, boundary
    ... )
    >>> print(round(float(ops.exp(log_p)[0]), 4))  # one of 3 * 3 equally likely sequences
    0.1111
    """
    emissions, mask, transitions, start_transitions, end_transitions = _prepare(
        emissions, mask, transitions, start_transitions, end_transitions, allowed_transitions
    )
    arguments = (emissions, mask, transitions, start_transitions, end_transitions)
    score = _sequence_score(emissions, tags, *arguments[1:])
    # score and log Z are equal exactly for a sequence without a valid step (both 0).
    return score - _log_partition(*arguments)


def crf_decode(
    emissions,
    mask,
    transitions,
    start_transitions,
    end_transitions,
    allowed_transitions=None,
):
    """The most likely tag sequences under a linear-chain CRF (Viterbi), and their scores.

    ``argmax_y score(y)``: the max-product forward pass (``keras.ops.scan``) keeps a
    backpointer per step and tag, and a reverse scan follows them from the best last tag.
    Computed in float32 whatever the input dtype; unknown batch and time dimensions, graphs
    and XLA work. Masks as in ``crf_log_likelihood``: each sequence is its valid steps in
    order, wherever the masked steps are.

    Args:
        emissions, mask, transitions, start_transitions, end_transitions, allowed_transitions:
            as for ``crf_log_likelihood``; a disallowed pair is chosen only when every path
            has one (then the best score is below -1e4 per such pair).

    Returns:
        ``(tags, best_score)``: int32 ``[batch, time]`` best tags, 0 at masked steps, and
        float32 ``[batch]`` their unnormalized scores (0 for a sequence without valid steps).

    Example:

    >>> emissions = ops.convert_to_tensor([[[1.0, 0.0], [1.0, 0.9]]])
    >>> transitions = ops.convert_to_tensor([[-1.0, 0.0], [0.0, 0.0]])  # 0 -> 0 costs 1
    >>> tags, best_score = crf_decode(
    ...     emissions, None, transitions, ops.zeros((2,)), ops.zeros((2,))
    ... )
    >>> print(ops.convert_to_numpy(tags), ops.convert_to_numpy(best_score))
    [[0 1]] [1.9]
    """
    emissions, mask, transitions, start_transitions, end_transitions = _prepare(
        emissions, mask, transitions, start_transitions, end_transitions, allowed_transitions
    )
    num_tags = transitions.shape[0]
    batch_size = ops.shape(emissions)[0]
    # One input tensor [time, batch, tags + 1], the step kinds in the last column: Keras' scan
    # on TensorFlow fails on several inputs of unknown length.
    steps = ops.concatenate(
        [
            ops.transpose(emissions, (1, 0, 2)),
            ops.cast(_step_kinds(mask), "float32")[:, :, None],
        ],
        axis=2,
    )

    def step(delta, inputs):
        emission, kind = inputs[:, :num_tags], inputs[:, num_tags:]  # [batch, tags], [batch, 1]
        # [batch, previous tag, tag] -> [batch, tag]
        best = ops.max(delta[:, :, None] + transitions[None], axis=1)
        updated = ops.where(kind == 1, start_transitions[None], best) + emission
        delta = ops.where(kind > 0, updated, delta)
        # ops.scan on TensorFlow stacks outputs shaped like the carry.
        return delta, delta

    delta = ops.zeros((batch_size, num_tags), dtype="float32")
    delta, deltas = ops.scan(step, delta, steps)  # [batch, tags], [time, batch, tags]
    # The backpointers of all steps at once, outside the loop: the best previous tag of each
    # tag given the deltas before the step. [time, batch, tag]
    previous_deltas = ops.concatenate([ops.zeros_like(deltas[:1]), deltas[:-1]], axis=0)
    best_previous = ops.cast(
        ops.argmax(previous_deltas[:, :, :, None] + transitions[None, None], axis=2), "int32"
    )
    # A masked step (and a first valid one) points each tag to itself, so following the
    # pointers back crosses it unchanged.
    stay = ops.arange(num_tags, dtype="int32")[None, None]
    backpointers = ops.where(_step_kinds(mask)[:, :, None] == 2, best_previous, stay)
    final = delta + end_transitions[None]
    last_tag = ops.cast(ops.argmax(final, axis=1), "int32")

    def follow(tag, step_backpointers):
        # tag: [batch], the best tag at this step; returns the one at the step before.
        previous = ops.take_along_axis(step_backpointers, tag[:, None], axis=1)[:, 0]
        return previous, tag

    _, best_tags = ops.scan(follow, last_tag, backpointers, reverse=True)  # [time, batch]
    best_tags = ops.where(mask, ops.transpose(best_tags, (1, 0)), 0)
    has_steps = ops.any(mask, axis=1)
    return best_tags, ops.where(has_steps, ops.max(final, axis=1), 0.0)


@keras.saving.register_keras_serializable(package="seqlayers")
class LinearChainCRF(keras.layers.Layer):
    """A linear-chain CRF on top of per-token emission scores: the weights, loss and decoding.

    A linear-chain conditional random field (Lafferty, McCallum & Pereira 2001,
    https://repository.upenn.edu/cis_papers/159/) scores a tag sequence ``y_1..y_n`` for
    emission scores ``E`` (the logits of a ``Dense(num_tags)`` over a sequence encoder, as in
    the BiLSTM-CRF tagger of Lample et al. 2016, https://arxiv.org/abs/1603.01360) as

        score(y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + end[y_n]
        p(y | E) = exp(score(y)) / sum_{y'} exp(score(y'))

    with learned ``A = transitions`` ``(num_tags, num_tags)``, ``start = start_transitions`` and
    ``end = end_transitions`` ``(num_tags,)``. ``log_likelihood`` computes ``log p`` with the
    forward algorithm, ``decode`` the best sequence with Viterbi (``crf_log_likelihood`` and
    ``crf_decode``, in float32 whatever the dtype policy, and under XLA).

    The layer's call returns the emissions unchanged: it sits at the end of a functional model,
    carries the weights (saved, loaded and exported with the model) and passes the Keras mask
    on. Train with ``negative_log_likelihood`` as the model's loss, for example::

        class CRFTagger(keras.Model):
            def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                             training=True):
                crf = self.get_layer("crf")
                loss = crf.negative_log_likelihood(y_pred, y, mask=ops.not_equal(x, 0))
                return loss + ops.sum(self.losses)  # regularization, as Keras adds it

        tagger = CRFTagger(tokens, crf(emissions))
        tagger.compile(optimizer="adam")  # no loss: compute_loss is the loss
        tagger.fit(token_ids, tag_ids)

    and predict with ``crf.decode(tagger(token_ids), mask)``.

    Masking: a mask marks the valid steps; each sequence is its valid steps in order, wherever
    the masked ones are (post-padding, pre-padding, gaps), and the log-likelihood, best tags and
    best score equal those of the valid steps alone. Decoded tags are 0 at masked steps; a
    sequence without a valid step has log-likelihood 0 and best score 0.

    Constraints: with ``allowed_transitions`` (for BIO tags: no ``I-X`` after ``O`` or at the
    start), each disallowed pair scores ``DISALLOWED_TRANSITION_SCORE`` = -1e4 in place of its
    learned value, in the likelihood and the decoding alike: such sequences get probability 0
    (in float32), are never decoded while an allowed one exists, and their weights get no
    gradient.

    Args:
        num_tags: number of tags (positive int).
        allowed_transitions: ``None`` (all allowed) or a boolean
            ``(num_tags + 1, num_tags + 1)`` array or nested lists: ``[i, j]`` allows tag ``i``
            followed by tag ``j``; row ``num_tags`` is the start state (``[num_tags, j]``: a
            sequence may start with ``j``) and column ``num_tags`` the end state (``[i,
            num_tags]``: it may end with ``i``). ``[num_tags, num_tags]`` is not used. Kept in
            the config as nested lists of bools.
        initializer: initializer of the three score tables. Defaults to ``"zeros"`` (decoding
            starts as a per-step argmax of the emissions).
        regularizer: optional regularizer of the three score tables.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        emissions: ``(batch, time, num_tags)``.
        mask: optional boolean ``(batch, time)``; Keras passes the emissions' mask here.

    Returns:
        The emissions, unchanged (in the layer's compute dtype), with their mask.

    Methods:
        log_likelihood(emissions, tags, mask=None): ``[batch]`` float32 ``log p(tags | E)``.
        negative_log_likelihood(emissions, tags, mask=None): the float32 scalar loss, the
            mean of ``-log_likelihood`` over the batch.
        decode(emissions, mask=None): ``(tags, best_score)``, int32 ``[batch, time]`` and
            float32 ``[batch]``.

    Example:

    >>> tokens = keras.Input((None,), dtype="int32")
    >>> embedded = keras.layers.Embedding(100, 16, mask_zero=True)(tokens)
    >>> crf = LinearChainCRF(num_tags=3, name="crf")
    >>> emissions = crf(keras.layers.Dense(3)(embedded))
    >>> print(emissions.shape)  # the emissions, passed through
    (None, None, 3)
    >>> allowed = [[True, True, True, True],  # from tag 0
    ...            [True, True, False, True],  # 1 -> 2 is disallowed
    ...            [True, True, True, True],
    ...            [True, True, True, True]]  # from the start
    >>> constrained = LinearChainCRF(num_tags=3, allowed_transitions=allowed)
    >>> scores = ops.convert_to_tensor([[[1.0, 5.0, 0.0], [0.0, 0.0, 5.0], [9.0, 9.0, 9.0]]])
    >>> tags, _ = constrained.decode(scores, mask=[[True, True, False]])
    >>> print(ops.convert_to_numpy(tags))  # not [1, 2]; 0 at the masked step
    [[0 2 0]]
    """

    def __init__(
        self,
        num_tags,
        allowed_transitions=None,
        initializer="zeros",
        regularizer=None,
        **kwargs,
    ):
        check_positive_int("num_tags", num_tags)
        if allowed_transitions is not None:
            allowed_transitions = as_bool_matrix(
                "allowed_transitions", allowed_transitions, (num_tags + 1, num_tags + 1)
            )
            if not any(allowed_transitions[num_tags][:num_tags]):
                raise ValueError(
                    f"allowed_transitions allows no tag at the start: its row {num_tags} is "
                    f"{allowed_transitions[num_tags]}"
                )
            if not any(row[num_tags] for row in allowed_transitions[:num_tags]):
                raise ValueError(
                    f"allowed_transitions allows no tag at the end: its column {num_tags} is "
                    f"{[row[num_tags] for row in allowed_transitions]}"
                )
        super().__init__(**kwargs)
        self.num_tags = num_tags
        self.allowed_transitions = allowed_transitions
        self.initializer = keras.initializers.get(initializer)
        self.regularizer = keras.regularizers.get(regularizer)
        self.supports_masking = True

    def build(self, input_shape=None):
        if input_shape is not None and input_shape[-1] not in (None, self.num_tags):
            raise ValueError(
                f"LinearChainCRF {self.name!r} has num_tags={self.num_tags}, got emissions of "
                f"shape {tuple(input_shape)}"
            )
        # autocast=False: the scores stay float32 under mixed precision, also when a method is
        # called inside another layer's call.
        self.transitions, self.start_transitions, self.end_transitions = (
            self.add_weight(
                name=name,
                shape=shape,
                initializer=self.initializer,
                regularizer=self.regularizer,
                autocast=False,
            )
            for name, shape in (
                ("transitions", (self.num_tags, self.num_tags)),
                ("start_transitions", (self.num_tags,)),
                ("end_transitions", (self.num_tags,)),
            )
        )

    def call(self, emissions, mask=None):
        return emissions

    def compute_output_shape(self, input_shape):
        return input_shape

    def _scores(self, emissions):
        if not self.built:
            self.build(emissions.shape)
        allowed = None
        if self.allowed_transitions is not None:
            allowed = ops.convert_to_tensor(self.allowed_transitions, dtype="bool")
        return (self.transitions, self.start_transitions, self.end_transitions, allowed)

    def log_likelihood(self, emissions, tags, mask=None):
        """``[batch]`` float32 ``log p(tags | emissions)``; see ``crf_log_likelihood``."""
        emissions = ops.convert_to_tensor(emissions)
        return crf_log_likelihood(emissions, tags, mask, *self._scores(emissions))

    def negative_log_likelihood(self, emissions, tags, mask=None):
        """The training loss: the mean over the batch of ``-log p(tags | emissions)``."""
        return -ops.mean(self.log_likelihood(emissions, tags, mask))

    def decode(self, emissions, mask=None):
        """``(tags, best_score)``: the Viterbi tags and their scores; see ``crf_decode``."""
        emissions = ops.convert_to_tensor(emissions)
        return crf_decode(emissions, mask, *self._scores(emissions))

    def get_config(self):
        return {
            **super().get_config(),
            "num_tags": self.num_tags,
            "allowed_transitions": self.allowed_transitions,
            "initializer": keras.initializers.serialize(self.initializer),
            "regularizer": keras.regularizers.serialize(self.regularizer),
        }
