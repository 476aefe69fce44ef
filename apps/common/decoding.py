"""Greedy and beam search over a model's one-step function, for every app that generates text.

The model is a ``step`` function; the searches only decide which token comes next::

    step(tokens, index, state, context) -> (logits, new_state)

- ``tokens``: ``int32[n]``, the tokens fed at this step: the start token at ``index`` 0, then
  the token the search chose at the step before;
- ``index``: ``int32`` scalar, the position of ``tokens`` in the decoder input (0, 1, 2, ...),
  which is also the slot of a key/value cache to write;
- ``state``: a nested structure (``tf.nest``) of tensors with leading dimension ``n`` that
  changes each step (a decoder's key/value cache, an LSTM's ``h`` and ``c``);
- ``context``: a nested structure with leading dimension ``n`` that does not change (an
  encoder's output, a cross-attention cache, a source mask);
- ``logits``: ``[n, vocabulary]`` (float16, bfloat16 or float32) for the token at output
  position ``index``. The searches take their log-softmax in float32.

A hypothesis ``Y`` is the list of generated tokens up to and including the end token, or, if it
reaches its length limit (``max_length``, or ``max_lengths[example]`` when smaller) first, the
tokens up to the limit (without an end token). ``|Y|`` counts its tokens (the end token
included), ``log P(Y)`` sums their log-probabilities. Token ids in ``forbidden_ids`` (padding,
the start token) get log-probability -inf after the log-softmax, so they are never generated
and the scores stay the model's own log-probabilities.

Beam search ranks finished hypotheses by the GNMT length-normalized score (Wu et al. 2016,
"Google's Neural Machine Translation System", https://arxiv.org/abs/1609.08144, eq. 14 without
the coverage term)::

    score(Y) = log P(Y) / lp(Y),    lp(Y) = ((5 + |Y|) / 6) ** alpha

with ``alpha = length_penalty`` (0: plain log-probability; larger values favour longer
outputs). Greedy search takes the most probable token at each step and reports ``log P(Y)``.

With ``no_repeat_ngram_size`` n > 0, a token that would complete an n-gram the hypothesis
already holds gets log-probability -inf too (trigram blocking, Paulus et al. 2018,
https://arxiv.org/abs/1705.04304; fairseq's and Hugging Face's ``no_repeat_ngram_size``): it
stops the loops ("a man in a red shirt and a red shirt and ...") of an undertrained decoder. The
end token is never blocked, so a hypothesis can always finish.

Both are TensorFlow graphs (fixed-size buffers, one ``tf.while_loop``), so they run inside
``tf.function``, ``tf.function(jit_compile=True)`` (with a Python-int ``max_length``) and in
an exported SavedModel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

Step = Callable[[tf.Tensor, tf.Tensor, Any, Any], tuple[tf.Tensor, Any]]

NEGATIVE_INFINITY = float("-inf")


def tile_for_beams(structure: Any, beam_width: int) -> Any:
    """Repeats every tensor of a nested structure for the beams: ``[b, ...] -> [b * k, ...]``.

    Row ``e * beam_width + j`` is beam ``j`` of example ``e`` (the beams of one example are
    adjacent), the layout ``beam_search`` uses for ``state`` and ``context``. ``beam_search``
    tiles those itself; call this for tensors a ``step`` function captures from outside them.
    """
    return tf.nest.map_structure(lambda tensor: tf.repeat(tensor, beam_width, axis=0), structure)


def greedy_search(
    step: Step,
    state: Any,
    context: Any,
    *,
    max_length: int | tf.Tensor,
    start_id: int,
    end_id: int,
    max_lengths: tf.Tensor | None = None,
    forbidden_ids: Sequence[int] = (),
    no_repeat_ngram_size: int = 0,
    batch_size: int | tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Takes the most probable token at each step, until the end token or the length limit.

    Args:
        step: the model's one-step function (see the module docstring), called with ``n = b``.
        state: the decoder's initial state, leading dimension ``b``.
        context: what every step reads and never changes, leading dimension ``b``.
        max_length: the most tokens generated (a Python int, or an ``int32`` scalar outside
            XLA); the size of the cache the caller allocated.
        start_id: the token fed at step 0.
        end_id: the token that ends a hypothesis (not part of the returned tokens).
        max_lengths: optional ``int32[b]``, a smaller limit per example (such as
            ``1.5 * source_length + 10``); values above ``max_length`` are cut to it.
        forbidden_ids: token ids never generated (padding, start).
        no_repeat_ngram_size: n > 0: no n-gram occurs twice in an output (0: off).
        batch_size: ``b``; by default the leading dimension of the first tensor in
            ``context`` (then ``state``).

    Returns:
        ``{"tokens": int32[b, max_length]`` (without the end token, 0 after the last token),
        ``"lengths": int32[b]`` (tokens before the end token), ``"scores": float32[b]``
        (``log P(Y)``, the end token's log-probability included, no length penalty)``}``.
    """
    _check_token_ids(start_id, end_id, forbidden_ids)
    _check_max_length(max_length)
    _check_ngram_size(no_repeat_ngram_size)
    state, context = _as_tensors(state), _as_tensors(context)
    batch = _batch_size(state, context, batch_size)
    limits = _length_limits(max_lengths, max_length, batch)
    positions = tf.range(max_length)

    def body(index, previous_tokens, state, tokens, lengths, scores, finished):
        logits, state = step(previous_tokens, index, state, context)
        log_probs = _log_probabilities(logits, forbidden_ids)  # [b, vocabulary]
        log_probs = _block_repeated_ngrams(log_probs, tokens, index, no_repeat_ngram_size)
        chosen = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        active = ~finished
        ends = active & tf.equal(chosen, end_id)
        extends = active & ~ends
        writes = tf.equal(positions, index)[tf.newaxis, :] & extends[:, tf.newaxis]
        tokens = tf.where(writes, chosen[:, tf.newaxis], tokens)
        lengths = tf.where(extends, index + 1, lengths)
        scores = tf.where(active, scores + tf.reduce_max(log_probs, axis=-1), scores)
        finished = finished | ends | (extends & (index + 1 >= limits))
        return index + 1, chosen, state, tokens, lengths, scores, finished

    def not_done(index, previous_tokens, state, tokens, lengths, scores, finished):
        return (index < max_length) & ~tf.reduce_all(finished)

    loop_variables = (
        tf.constant(0),
        tf.fill([batch], tf.constant(start_id, tf.int32)),
        state,
        tf.zeros([batch, max_length], tf.int32),
        tf.zeros([batch], tf.int32),
        tf.zeros([batch], tf.float32),
        limits <= 0,  # allowed no token: the empty hypothesis, log P = 0
    )
    _, _, _, tokens, lengths, scores, _ = tf.while_loop(not_done, body, loop_variables)
    return {"tokens": tokens, "lengths": lengths, "scores": scores}


def beam_search(
    step: Step,
    state: Any,
    context: Any,
    *,
    beam_width: int,
    max_length: int | tf.Tensor,
    start_id: int,
    end_id: int,
    max_lengths: tf.Tensor | None = None,
    length_penalty: float | tf.Tensor = 0.6,
    forbidden_ids: Sequence[int] = (),
    no_repeat_ngram_size: int = 0,
    return_all_beams: bool = False,
    batch_size: int | tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Keeps the ``k = beam_width`` most probable prefixes per example and the ``k`` best finished.

    Scores are ``log P(Y) / ((5 + |Y|) / 6) ** length_penalty`` (GNMT, Wu et al. 2016,
    https://arxiv.org/abs/1609.08144; see the module docstring). Each example has ``k``
    *alive* beams (prefixes without an end token, ranked by ``log P``) and a pool of its ``k``
    best *finished* hypotheses (ranked by score), as in tensor2tensor's ``beam_search.py``.
    ``state`` and ``context`` are tiled once (``tile_for_beams``); at step 0 only the first beam
    of each example is alive, so the ``k`` beams are not copies of one another. Each step:

    1. the candidates are every alive beam followed by every token, ``log P`` summed;
    2. an end-token candidate joins the finished pool only if it ranks among the ``k`` best
       candidates of its example (fairseq's rule, Ott et al. 2019,
       https://arxiv.org/abs/1904.01038), so that ``beam_width=1`` with ``length_penalty=0``
       is greedy search;
    3. the ``k`` best candidates without the end token become the alive beams, their ``state``
       rows gathered from their parents' (``context`` is shared by an example's beams and is
       never reordered); at the length limit they join the finished pool instead.

    An example is done when no alive beam can beat the worst of its ``k`` finished hypotheses
    (or none is alive); the search stops when every example is done, or at ``max_length``.
    The bound: an alive beam with ``log P = s <= 0`` after ``t`` tokens can only finish as a
    ``Y`` with ``log P(Y) <= s`` (every further token adds a log-probability ``<= 0``) and
    ``t + 1 <= |Y| <= limit``, so ``score(Y) <= s / lp(|Y|) <= s / max(lp(t + 1), lp(limit))``:
    dividing a non-positive number by a *larger* positive ``lp`` gives a *larger* result, and
    ``lp`` is monotonic in ``|Y|`` (increasing for ``alpha > 0``), so its maximum over the
    reachable lengths sits at one end. Stopping on this bound returns exactly what running to
    ``max_length`` would: a later hypothesis could at best tie, and ties keep the earlier one.

    Args:
        step: the model's one-step function (see the module docstring), called with
            ``n = b * beam_width`` rows.
        state: the decoder's initial state, leading dimension ``b`` (tiled here).
        context: what every step reads and never changes, leading dimension ``b`` (tiled here).
        beam_width: ``k``, the beams kept per example (a Python int).
        max_length: the most tokens generated (a Python int, or an ``int32`` scalar outside
            XLA); the size of the cache the caller allocated.
        start_id: the token fed at step 0.
        end_id: the token that ends a hypothesis (not part of the returned tokens).
        max_lengths: optional ``int32[b]``, a smaller limit per example; values above
            ``max_length`` are cut to it.
        length_penalty: ``alpha`` of the GNMT length penalty (a float or a float scalar
            tensor); 0 ranks by ``log P(Y)``. Defaults to 0.6.
        forbidden_ids: token ids never generated (padding, start).
        no_repeat_ngram_size: n > 0: no n-gram occurs twice in a hypothesis (0: off); the
            bound above still holds, as blocking only removes candidates.
        return_all_beams: also return the ``k`` finished hypotheses of each example.
        batch_size: ``b``; by default the leading dimension of the first tensor in
            ``context`` (then ``state``).

    Returns:
        The best hypothesis per example: ``{"tokens": int32[b, max_length]`` (without the end
        token, 0 after the last token), ``"lengths": int32[b]`` (tokens before the end token),
        ``"scores": float32[b]``}``; with ``return_all_beams`` also ``"beam_tokens"``
        ``[b, k, max_length]``, ``"beam_lengths"`` ``[b, k]`` and ``"beam_scores"`` ``[b, k]``,
        best first. Slots without a hypothesis (an example with fewer than ``k`` possible
        outputs) have score -inf, length 0 and tokens 0.
    """
    if not isinstance(beam_width, int) or isinstance(beam_width, bool) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
    _check_token_ids(start_id, end_id, forbidden_ids)
    _check_max_length(max_length)
    _check_ngram_size(no_repeat_ngram_size)
    state, context = _as_tensors(state), _as_tensors(context)
    batch = _batch_size(state, context, batch_size)
    width = beam_width
    limits = _length_limits(max_lengths, max_length, batch)
    alpha = tf.cast(length_penalty, tf.float32)
    state, context = tile_for_beams(state, width), tile_for_beams(context, width)
    positions = tf.range(max_length)
    # Row offsets of each example's beams in the tiled [b * k] tensors.
    example_rows = (tf.range(batch) * width)[:, tf.newaxis]  # [b, 1]
    # Order of the 2k best candidates, for picking the best k without an end token.
    candidate_ranks = tf.range(2 * width, dtype=tf.float32)

    def penalty(length):
        return ((5.0 + tf.cast(length, tf.float32)) / 6.0) ** alpha

    def body(index, previous_tokens, state, alive_tokens, alive_log_probs, finished, done):
        finished_tokens, finished_scores, finished_lengths = finished
        logits, new_state = step(previous_tokens, index, state, context)
        log_probs = _log_probabilities(logits, forbidden_ids)  # [b * k, vocabulary]
        log_probs = _block_repeated_ngrams(
            log_probs, tf.reshape(alive_tokens, [batch * width, -1]), index, no_repeat_ngram_size
        )
        vocabulary = tf.shape(log_probs)[-1]
        candidates = alive_log_probs[:, :, tf.newaxis] + tf.reshape(
            log_probs, [batch, width, vocabulary]
        )
        # Each beam has one end-token candidate, so at most k of the 2k best end and the 2k
        # best hold the k best candidates without the end token.
        top_log_probs, top_indices = tf.math.top_k(
            tf.reshape(candidates, [batch, width * vocabulary]), k=2 * width
        )  # [b, 2k]
        top_parents, top_tokens = top_indices // vocabulary, top_indices % vocabulary
        top_ends = tf.equal(top_tokens, end_id)

        # End candidates among the k best of all candidates finish: t = index tokens, |Y| = t + 1.
        ending_log_probs = tf.where(
            top_ends[:, :width], top_log_probs[:, :width], NEGATIVE_INFINITY
        )
        ending_tokens = tf.gather(alive_tokens, top_parents[:, :width], batch_dims=1)

        # The k best candidates without the end token, in rank order.
        _, continuing = tf.math.top_k(
            tf.where(top_ends, -1.0, 2.0 * width - candidate_ranks), width
        )
        continuing_log_probs = tf.gather(top_log_probs, continuing, batch_dims=1)  # [b, k]
        continuing_parents = tf.gather(top_parents, continuing, batch_dims=1)
        continuing_tokens = tf.gather(top_tokens, continuing, batch_dims=1)
        writes = tf.equal(positions, index)[tf.newaxis, tf.newaxis, :]
        continued_tokens = tf.where(
            writes,
            continuing_tokens[:, :, tf.newaxis],
            tf.gather(alive_tokens, continuing_parents, batch_dims=1),
        )  # [b, k, max_length]
        # At its limit (index + 1 tokens) a continuing beam finishes without an end token.
        at_limit = (index + 1 >= limits)[:, tf.newaxis]  # [b, 1]
        limit_log_probs = tf.where(at_limit, continuing_log_probs, NEGATIVE_INFINITY)
        alive_log_probs = tf.where(at_limit, NEGATIVE_INFINITY, continuing_log_probs)

        # Both kinds of new hypotheses have |Y| = index + 1. The old pool comes first, so that
        # top_k (which keeps the lower index on ties) never lets a tie displace it.
        new_penalty = penalty(index + 1)
        pool_scores = tf.concat(
            [finished_scores, ending_log_probs / new_penalty, limit_log_probs / new_penalty], 1
        )
        pool_tokens = tf.concat([finished_tokens, ending_tokens, continued_tokens], 1)
        pool_lengths = tf.concat(
            [
                finished_lengths,
                tf.fill([batch, width], index),
                tf.fill([batch, width], index + 1),
            ],
            1,
        )
        finished_scores, kept = tf.math.top_k(pool_scores, k=width)
        finished = (
            tf.gather(pool_tokens, kept, batch_dims=1),
            finished_scores,
            tf.gather(pool_lengths, kept, batch_dims=1),
        )

        # The best score an alive beam can still reach (the bound in the docstring): its
        # log P over the largest lp among the lengths it can finish with, index + 2 .. limit.
        best_reachable = tf.reduce_max(alive_log_probs, axis=1) / tf.maximum(
            penalty(index + 2), penalty(limits)
        )
        # -inf <= -inf: an example with no alive beam is done too.
        done = best_reachable <= finished_scores[:, -1]

        parent_rows = tf.reshape(continuing_parents + example_rows, [-1])
        state = tf.nest.map_structure(lambda tensor: tf.gather(tensor, parent_rows), new_state)
        previous_tokens = tf.reshape(continuing_tokens, [-1])
        return index + 1, previous_tokens, state, continued_tokens, alive_log_probs, finished, done

    def not_done(index, previous_tokens, state, alive_tokens, alive_log_probs, finished, done):
        return (index < max_length) & ~tf.reduce_all(done)

    # An example allowed no token at all has one hypothesis, the empty one (log P = 0).
    nothing_allowed = (limits <= 0)[:, tf.newaxis]
    first_beam = tf.equal(tf.range(width), 0)[tf.newaxis, :]  # [1, k]
    loop_variables = (
        tf.constant(0),
        tf.fill([batch * width], tf.constant(start_id, tf.int32)),
        state,
        tf.zeros([batch, width, max_length], tf.int32),
        tf.where(first_beam & ~nothing_allowed, 0.0, NEGATIVE_INFINITY),
        (
            tf.zeros([batch, width, max_length], tf.int32),
            tf.where(first_beam & nothing_allowed, 0.0, NEGATIVE_INFINITY),
            tf.zeros([batch, width], tf.int32),
        ),
        limits <= 0,
    )
    final = tf.while_loop(not_done, body, loop_variables)
    beam_tokens, beam_scores, beam_lengths = final[5]
    # Empty slots may hold a dead beam's tokens: clear them.
    empty = tf.equal(beam_scores, NEGATIVE_INFINITY)
    beam_tokens = tf.where(empty[:, :, tf.newaxis], 0, beam_tokens)
    beam_lengths = tf.where(empty, 0, beam_lengths)
    best = {"tokens": beam_tokens[:, 0], "lengths": beam_lengths[:, 0], "scores": beam_scores[:, 0]}
    if return_all_beams:
        best.update(beam_tokens=beam_tokens, beam_lengths=beam_lengths, beam_scores=beam_scores)
    return best


def _check_token_ids(start_id: int, end_id: int, forbidden_ids: Sequence[int]) -> None:
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not all(isinstance(token, int) and token >= 0 for token in forbidden_ids):
        raise ValueError(f"forbidden_ids must be non-negative integers, got {forbidden_ids!r}")
    if end_id in forbidden_ids:
        raise ValueError(
            f"end_id {end_id} is in forbidden_ids {forbidden_ids!r}: nothing could end"
        )


def _check_max_length(max_length: int | tf.Tensor) -> None:
    if isinstance(max_length, bool) or (isinstance(max_length, int) and max_length < 1):
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}")


def _as_tensors(structure: Any) -> Any:
    return tf.nest.map_structure(tf.convert_to_tensor, structure)


def _batch_size(state: Any, context: Any, batch_size: int | tf.Tensor | None):
    if batch_size is not None:
        return batch_size
    tensors = tf.nest.flatten(context) + tf.nest.flatten(state)
    if not tensors:
        raise ValueError("state and context hold no tensor: pass batch_size")
    first = tensors[0]
    # A static size keeps the buffers' shapes static (XLA needs them).
    return first.shape[0] if first.shape[0] is not None else tf.shape(first)[0]


def _length_limits(max_lengths, max_length, batch) -> tf.Tensor:
    """``int32[b]``: the most tokens each example may generate."""
    if max_lengths is None:
        return tf.fill([batch], tf.cast(max_length, tf.int32))
    return tf.minimum(tf.cast(max_lengths, tf.int32), tf.cast(max_length, tf.int32))


def _check_ngram_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"no_repeat_ngram_size must be a non-negative integer, got {size!r}")


def _block_repeated_ngrams(
    log_probs: tf.Tensor, tokens: tf.Tensor, index: tf.Tensor, size: int
) -> tf.Tensor:
    """``log_probs [n, vocabulary]`` with -inf for every token that, written at position
    ``index`` after ``tokens[:, :index]`` (``[n, max_length]``), would complete an n-gram of
    ``size`` tokens that the prefix already holds (``size`` 0: unchanged)."""
    if size == 0:
        return log_probs
    rows, vocabulary = tf.shape(log_probs)[0], tf.shape(log_probs)[1]
    starts = tf.range(tf.maximum(tf.shape(tokens)[1] - size + 1, 0))  # [M]
    windows = tf.gather(tokens, starts[:, tf.newaxis] + tf.range(size), axis=1)  # [n, M, size]
    # The last size - 1 tokens of the prefix (clamped positions: masked below when too few).
    suffix = tf.gather(tokens, tf.maximum(index - size + 1 + tf.range(size - 1), 0), axis=1)
    repeats = tf.reduce_all(tf.equal(windows[:, :, :-1], suffix[:, tf.newaxis, :]), axis=-1)
    # Only n-grams wholly inside the prefix, and only once the prefix has size - 1 tokens.
    repeats &= (starts + size <= index)[tf.newaxis, :] & (index >= size - 1)
    hits = tf.where(repeats)  # [m, 2]: (row, start)
    blocked = tf.gather_nd(windows[:, :, -1], hits)  # [m]: the token each repeat would write
    indices = tf.stack([tf.cast(hits[:, 0], tf.int32), blocked], axis=1)
    mask = tf.scatter_nd(indices, tf.ones_like(blocked), [rows, vocabulary]) > 0
    return tf.where(mask, NEGATIVE_INFINITY, log_probs)


def _log_probabilities(logits: tf.Tensor, forbidden_ids: Sequence[int]) -> tf.Tensor:
    """float32 log-softmax (float16 keeps ~3 digits of a log-probability); forbidden: -inf."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    if not forbidden_ids:
        return log_probs
    vocabulary = tf.shape(log_probs)[-1]
    forbidden = tf.reduce_any(
        tf.equal(tf.range(vocabulary)[:, tf.newaxis], list(forbidden_ids)), axis=1
    )  # [vocabulary]
    return tf.where(forbidden, NEGATIVE_INFINITY, log_probs)
