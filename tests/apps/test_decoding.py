"""Greedy and beam search against brute force and a plain Python beam search.

The toy model's logits depend on the whole prefix (its state is the buffer of fed tokens,
which the search must reorder with the beams), on the example (a table row chosen by the
context) and on the position (``index``), so a wrong gather, a context reordered with the beams
or an off-by-one step changes the answer. Padding and start get the largest logits: if
``forbidden_ids`` were ignored they would be generated. Each decoder is traced once per module
(``functools.cache``) and the length penalty is a tensor argument, to keep the file fast.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

from apps.common import decoding

PAD, START, END = 0, 1, 2
FORBIDDEN = (PAD, START)
VOCABULARY = 6  # 3, 4, 5 are words
MAX_LENGTH = 5
SOURCES = 4  # table rows the context can pick
ALPHAS = (0.0, 0.6, 1.0)
# Wide enough that nothing is pruned: at the last step 3**4 alive beams have 4 candidates each
# (3 words and the end), and end candidates count only among the k best.
EXHAUSTIVE_WIDTH = 3**4 * 4

_random = np.random.default_rng(20240601)
TABLE = _random.normal(scale=1.5, size=(SOURCES, VOCABULARY**MAX_LENGTH, VOCABULARY))
TABLE[..., list(FORBIDDEN)] += 4.0
TABLE = TABLE.astype(np.float32)
POSITION_BIAS = _random.normal(scale=0.5, size=(MAX_LENGTH, VOCABULARY)).astype(np.float32)
PLACE_VALUES = VOCABULARY ** np.arange(MAX_LENGTH)

SOURCES_IN_BATCH = np.array([0, 1, 2], np.int32)
LIMITS_IN_BATCH = np.array([5, 3, 4], np.int32)


def prefix_step(tokens, index, state, context):
    fed_tokens = tf.where(
        tf.range(MAX_LENGTH) == index, tokens[:, tf.newaxis], state["fed_tokens"]
    )  # [n, MAX_LENGTH]: start, then the prefix
    prefix_code = tf.reduce_sum(fed_tokens * PLACE_VALUES, axis=1)
    logits = tf.gather_nd(TABLE, tf.stack([context["source"], prefix_code], axis=1))
    return logits + tf.gather(POSITION_BIAS, index), {"fed_tokens": fed_tokens}


def toy_inputs(sources):
    sources = tf.convert_to_tensor(sources)
    state = {"fed_tokens": tf.zeros([tf.shape(sources)[0], MAX_LENGTH], tf.int32)}
    return state, {"source": sources}


@functools.cache
def beam_decoder(width, jit_compile=False, ngram=0):
    @tf.function(jit_compile=jit_compile)
    def decode(sources, limits, alpha):
        state, context = toy_inputs(sources)
        return decoding.beam_search(
            prefix_step,
            state,
            context,
            beam_width=width,
            max_length=MAX_LENGTH,
            start_id=START,
            end_id=END,
            max_lengths=limits,
            length_penalty=alpha,
            forbidden_ids=FORBIDDEN,
            no_repeat_ngram_size=ngram,
            return_all_beams=True,
        )

    return decode


@functools.cache
def greedy_decoder(jit_compile=False, ngram=0):
    @tf.function(jit_compile=jit_compile)
    def decode(sources, limits):
        state, context = toy_inputs(sources)
        return decoding.greedy_search(
            prefix_step,
            state,
            context,
            max_length=MAX_LENGTH,
            start_id=START,
            end_id=END,
            max_lengths=limits,
            forbidden_ids=FORBIDDEN,
            no_repeat_ngram_size=ngram,
        )

    return decode


def decode_beams(width, sources=SOURCES_IN_BATCH, limits=LIMITS_IN_BATCH, alpha=0.6, **kwargs):
    result = beam_decoder(width, **kwargs)(
        tf.constant(sources, tf.int32), tf.constant(limits, tf.int32), tf.constant(alpha)
    )
    return {name: value.numpy() for name, value in result.items()}


def decode_greedily(sources=SOURCES_IN_BATCH, limits=LIMITS_IN_BATCH, **kwargs):
    result = greedy_decoder(**kwargs)(tf.constant(sources, tf.int32), tf.constant(limits))
    return {name: value.numpy() for name, value in result.items()}


# === The reference: the same model and rules in plain Python ===


def reference_log_probs(source, prefix):
    fed = (START, *prefix) + (0,) * (MAX_LENGTH - 1 - len(prefix))
    logits = TABLE[source, int(np.dot(fed, PLACE_VALUES))].astype(np.float64)
    logits += POSITION_BIAS[len(prefix)]
    log_probs = logits - np.logaddexp.reduce(logits)
    log_probs[list(FORBIDDEN)] = -np.inf
    return log_probs


def gnmt_penalty(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def all_hypotheses(source, limit, alpha):
    """Every output (score, tokens) of the toy model, best first."""
    if limit == 0:
        return [(0.0, ())]
    hypotheses = []

    def extend(prefix, log_p):
        for token, token_log_p in enumerate(reference_log_probs(source, prefix)):
            if token in FORBIDDEN:
                continue
            total = log_p + token_log_p
            if token == END:
                hypotheses.append((total / gnmt_penalty(len(prefix) + 1, alpha), prefix))
            elif len(prefix) + 1 == limit:
                hypotheses.append((total / gnmt_penalty(limit, alpha), (*prefix, token)))
            else:
                extend((*prefix, token), total)

    extend((), 0.0)
    return sorted(hypotheses, key=lambda hypothesis: -hypothesis[0])


def reference_beam_search(source, limit, alpha, width):
    """The rules of ``decoding.beam_search``, run to the limit without its early stop."""
    if limit == 0:
        return [(0.0, ())]
    alive, finished = [((), 0.0)], []
    for length in range(1, limit + 1):
        candidates = [
            (log_p + token_log_p, prefix, token)
            for prefix, log_p in alive
            for token, token_log_p in enumerate(reference_log_probs(source, prefix))
            if token_log_p > -np.inf
        ]
        candidates.sort(key=lambda candidate: -candidate[0])
        penalty = gnmt_penalty(length, alpha)
        finished += [(lp / penalty, prefix) for lp, prefix, t in candidates[:width] if t == END]
        continuing = [((*prefix, t), lp) for lp, prefix, t in candidates if t != END][:width]
        if length == limit:
            finished += [(lp / penalty, prefix) for prefix, lp in continuing]
            continuing = []
        alive = continuing
        finished = sorted(finished, key=lambda hypothesis: -hypothesis[0])[:width]
    return finished


def repeats_an_ngram(tokens, size):
    """Whether an n-gram of ``size`` tokens occurs twice in ``tokens`` (size 0: never)."""
    if size == 0:
        return False
    grams = [tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]
    return len(grams) != len(set(grams))


def reference_greedy_search(source, limit, ngram=0):
    prefix, log_p = (), 0.0
    while len(prefix) < limit:
        log_probs = reference_log_probs(source, prefix).copy()
        for token in range(VOCABULARY):
            if token != END and repeats_an_ngram((*prefix, token), ngram):
                log_probs[token] = -np.inf
        token = int(np.argmax(log_probs))
        log_p += log_probs[token]
        if token == END:
            break
        prefix += (token,)
    return prefix, log_p


def assert_hypotheses_equal(tokens, lengths, scores, expected):
    """Decoded [k, ...] slots against (score, tokens) pairs; slots beyond them are empty."""
    for slot, (score, hypothesis) in enumerate(expected[: len(scores)]):
        assert lengths[slot] == len(hypothesis)
        assert tuple(tokens[slot, : lengths[slot]]) == hypothesis
        np.testing.assert_allclose(scores[slot], score, rtol=1e-5)
    assert np.all(scores[len(expected) :] == -np.inf)
    assert np.all(lengths[len(expected) :] == 0)


def assert_well_formed(result, limits):
    """Lengths within the limits, no forbidden or end token, zeros after the last token."""
    tokens, lengths = result["tokens"], result["lengths"]
    assert tokens.shape == (len(limits), MAX_LENGTH)
    assert np.all(lengths <= limits)
    generated = np.arange(MAX_LENGTH) < lengths[:, np.newaxis]
    assert np.all(tokens[~generated] == 0)
    assert not np.isin(tokens[generated], (*FORBIDDEN, END)).any()


# === Tests ===


@pytest.mark.parametrize("alpha", ALPHAS)
def test_wide_beam_search_finds_the_exhaustive_best_and_top_k(alpha):
    result = decode_beams(EXHAUSTIVE_WIDTH, alpha=alpha)
    assert_well_formed(result, LIMITS_IN_BATCH)
    for example, (source, limit) in enumerate(zip(SOURCES_IN_BATCH, LIMITS_IN_BATCH, strict=True)):
        expected = all_hypotheses(source, limit, alpha)
        best_score, best_tokens = expected[0]
        assert tuple(result["tokens"][example, : result["lengths"][example]]) == best_tokens
        np.testing.assert_allclose(result["scores"][example], best_score, rtol=1e-5)
        assert_hypotheses_equal(
            result["beam_tokens"][example],
            result["beam_lengths"][example],
            result["beam_scores"][example],
            expected,
        )


def test_narrow_beam_search_follows_the_reference_beam_search():
    pruned = False
    for alpha in ALPHAS:
        result = decode_beams(2, alpha=alpha)
        assert_well_formed(result, LIMITS_IN_BATCH)
        for example, (source, limit) in enumerate(
            zip(SOURCES_IN_BATCH, LIMITS_IN_BATCH, strict=True)
        ):
            expected = reference_beam_search(source, limit, alpha, width=2)
            assert_hypotheses_equal(
                result["beam_tokens"][example],
                result["beam_lengths"][example],
                result["beam_scores"][example],
                expected,
            )
            pruned |= expected[0] != all_hypotheses(source, limit, alpha)[0]
    assert pruned, "the toy model should make width 2 miss some exhaustive best"


def test_greedy_search_follows_the_reference_and_equals_beam_width_one():
    greedy = decode_greedily()
    assert_well_formed(greedy, LIMITS_IN_BATCH)
    for example, (source, limit) in enumerate(zip(SOURCES_IN_BATCH, LIMITS_IN_BATCH, strict=True)):
        tokens, log_p = reference_greedy_search(source, limit)
        assert greedy["lengths"][example] == len(tokens)
        assert tuple(greedy["tokens"][example, : len(tokens)]) == tokens
        np.testing.assert_allclose(greedy["scores"][example], log_p, rtol=1e-5)
    # Without a length penalty, one beam is greedy search.
    one_beam = decode_beams(1, alpha=0.0)
    np.testing.assert_array_equal(one_beam["tokens"], greedy["tokens"])
    np.testing.assert_array_equal(one_beam["lengths"], greedy["lengths"])
    np.testing.assert_allclose(one_beam["scores"], greedy["scores"], rtol=1e-6)


@pytest.mark.parametrize("ngram", [1, 2])
def test_ngram_blocking_finds_the_best_output_without_a_repeat(ngram):
    """A wide beam finds the exhaustive best and top k among the outputs with no n-gram twice
    (every prefix of such an output has none either, so blocking loses nothing else), and
    greedy search follows the reference with blocked tokens; unblocked, the k best outputs
    hold repeats. With n = 1 and 3 words, a 5-token limit leaves only the end token after 3
    words: it is never blocked."""
    alpha = 0.6
    beams = decode_beams(EXHAUSTIVE_WIDTH, alpha=alpha, ngram=ngram)
    greedy = decode_greedily(ngram=ngram)
    repeated = False
    for example, (source, limit) in enumerate(zip(SOURCES_IN_BATCH, LIMITS_IN_BATCH, strict=True)):
        everything = all_hypotheses(source, limit, alpha)
        repeated |= any(repeats_an_ngram(h[1], ngram) for h in everything[:8])
        allowed = [h for h in everything if not repeats_an_ngram(h[1], ngram)]
        assert_hypotheses_equal(
            beams["beam_tokens"][example],
            beams["beam_lengths"][example],
            beams["beam_scores"][example],
            allowed,
        )
        tokens, log_p = reference_greedy_search(source, limit, ngram)
        assert tuple(greedy["tokens"][example, : greedy["lengths"][example]]) == tokens
        np.testing.assert_allclose(greedy["scores"][example], log_p, rtol=1e-5)
    assert repeated, "the toy model's best outputs should repeat n-grams without blocking"
    assert_well_formed(greedy, LIMITS_IN_BATCH)


def test_an_example_does_not_depend_on_the_rest_of_the_batch():
    other_sources, other_limits = np.array([0, 3, 1], np.int32), np.array([5, 0, 2], np.int32)
    reversed_order = slice(None, None, -1)
    for decode in (functools.partial(decode_beams, 2), decode_greedily):
        alone = decode()
        with_others = decode(sources=other_sources, limits=other_limits)
        reversed_batch = decode(
            sources=SOURCES_IN_BATCH[reversed_order], limits=LIMITS_IN_BATCH[reversed_order]
        )
        for name in ("tokens", "lengths", "scores"):
            np.testing.assert_array_equal(with_others[name][0], alone[name][0])
            np.testing.assert_array_equal(reversed_batch[name][reversed_order], alone[name])
        # A limit of 0 allows only the empty output.
        assert with_others["lengths"][1] == 0 and with_others["scores"][1] == 0.0
        assert_well_formed(with_others, other_limits)


def test_xla_compiled_searches_give_the_same_answers():
    for plain, compiled in (
        (decode_beams(2), decode_beams(2, jit_compile=True)),
        (decode_greedily(), decode_greedily(jit_compile=True)),
    ):
        for name in plain:
            if name.endswith("scores"):
                np.testing.assert_allclose(compiled[name], plain[name], rtol=1e-5)
            else:
                np.testing.assert_array_equal(compiled[name], plain[name])


# A model that says "end" first (p = 0.41) and then, once past that, "3" at every step
# (p = 0.98): the empty output is the most probable, "3 3 3 3 3" the best under a length
# penalty of 1. Its logits are float16 and it counts its steps.
FIRST_STEP_PROBABILITIES = [0.0, 0.0, 0.41, 0.30, 0.29]
LATER_STEP_PROBABILITIES = [0.0, 0.0, 0.001, 0.98, 0.019]
SCRIPTED_LOGITS = np.log(
    np.maximum([FIRST_STEP_PROBABILITIES] + [LATER_STEP_PROBABILITIES] * 4, 1e-9)
).astype(np.float16)
SCRIPTED_LOG_PROBS = SCRIPTED_LOGITS.astype(np.float64) - np.logaddexp.reduce(
    SCRIPTED_LOGITS.astype(np.float64), axis=1, keepdims=True
)
scripted_steps = tf.Variable(0)


def scripted_step(tokens, index, state, context):
    scripted_steps.assign_add(1)
    logits = tf.gather(tf.constant(SCRIPTED_LOGITS), tf.fill(tf.shape(tokens), index))
    return logits, state


@tf.function
def scripted_beam_search(alpha):
    return decoding.beam_search(
        scripted_step,
        (),
        tf.zeros([2]),
        beam_width=1,
        max_length=tf.constant(5),  # a tensor: the buffers' shapes are dynamic
        start_id=START,
        end_id=END,
        length_penalty=alpha,
        forbidden_ids=FORBIDDEN,
    )


@tf.function
def scripted_greedy_search():
    return decoding.greedy_search(
        scripted_step, (), tf.zeros([2]), max_length=tf.constant(5), start_id=START, end_id=END
    )


def test_beam_search_stops_only_when_no_alive_beam_can_win():
    """With alpha = 1, the alive "3" (log P = -1.2 after one token) may still finish with
    lp(5) = 10/6 and beat the empty output's -0.89 / lp(1): a bound that divides by the lp of
    the *current* length (-1.2 / lp(2) = -1.03 < -0.89) would stop at once and miss it."""
    scripted_steps.assign(0)
    penalized = scripted_beam_search(tf.constant(1.0))
    assert scripted_steps.numpy() == 5
    np.testing.assert_array_equal(penalized["tokens"].numpy(), [[3] * 5] * 2)
    expected = (SCRIPTED_LOG_PROBS[0, 3] + 4 * SCRIPTED_LOG_PROBS[1, 3]) / gnmt_penalty(5, 1.0)
    # float32 log-softmax: float16 would be off by ~1e-3.
    np.testing.assert_allclose(penalized["scores"].numpy(), [expected] * 2, rtol=1e-6)

    # Without a penalty the empty output wins, and no alive beam (log P <= -1.2) can beat it.
    scripted_steps.assign(0)
    plain = scripted_beam_search(tf.constant(0.0))
    assert scripted_steps.numpy() == 1
    np.testing.assert_array_equal(plain["lengths"].numpy(), [0, 0])
    np.testing.assert_allclose(plain["scores"].numpy(), [SCRIPTED_LOG_PROBS[0, END]] * 2, 1e-6)

    scripted_steps.assign(0)
    greedy = scripted_greedy_search()
    assert scripted_steps.numpy() == 1
    np.testing.assert_array_equal(greedy["lengths"].numpy(), [0, 0])


def test_tile_for_beams_keeps_the_beams_of_an_example_adjacent():
    tiled = decoding.tile_for_beams({"rows": tf.constant([[1, 2], [3, 4]])}, 3)
    np.testing.assert_array_equal(tiled["rows"].numpy(), [[1, 2]] * 3 + [[3, 4]] * 3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"beam_width": 0}, "beam_width must be a positive integer, got 0"),
        ({"max_length": 0}, "max_length must be a positive integer, got 0"),
        ({"forbidden_ids": (PAD, END)}, "end_id 2 is in forbidden_ids"),
        ({"end_id": -1}, "end_id must be a non-negative integer, got -1"),
    ],
)
def test_invalid_arguments_name_the_culprit(arguments, message):
    defaults = dict(beam_width=2, max_length=3, start_id=START, end_id=END)
    with pytest.raises(ValueError, match=message):
        decoding.beam_search(prefix_step, {}, {"source": [0]}, **{**defaults, **arguments})


def test_state_and_context_without_tensors_need_batch_size():
    with pytest.raises(ValueError, match="pass batch_size"):
        decoding.greedy_search(scripted_step, (), (), max_length=2, start_id=START, end_id=END)
    result = decoding.greedy_search(
        scripted_step, (), (), max_length=2, start_id=START, end_id=END, batch_size=3
    )
    assert result["tokens"].shape == (3, 2)
