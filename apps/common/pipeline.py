"""tf.data batches of similar length, so that padding does not dominate the cost.

``bucketed_batches`` takes examples of any structure (a text and its label, tokens and their
tags, a source and a target) with a length, batches examples of similar length together and pads
each batch to its longest example: ``0`` for ids (which ``Embedding(mask_zero=True)`` turns into
a mask), any value the task names for the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def bucket_boundaries(max_length: int) -> list[int]:
    """Bucket upper bounds growing by about 1.5x from 8 up to ``max_length``."""
    boundaries, bound = [], 8
    while bound < max_length:
        boundaries.append(bound)
        bound = int(bound * 1.5) + 1
    return boundaries


def bucketed_batches(
    examples: tf.data.Dataset,
    *,
    length: Callable[..., tf.Tensor],
    max_length: int,
    batch_size: int,
    padding_values,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``examples`` padded per batch, examples of similar ``length`` together.

    Args:
        examples: one element per example, each component shaped ``[time, ...]`` or a scalar.
        length: the element's components -> its length (a scalar tensor).
        max_length: the longest length expected (sets the buckets; longer ones still batch).
        batch_size: examples per batch.
        padding_values: the padding of each component, structured like an element.
        shuffle_seed: shuffle the examples (before bucketing) with this seed, anew each epoch;
            None keeps their order within a bucket. Bucketing reorders examples either way:
            callers that need the input order batch the inputs themselves.
    """
    if shuffle_seed is not None:
        size = examples.cardinality()
        buffer = size if size > 0 else 100_000
        examples = examples.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    boundaries = bucket_boundaries(max_length)
    batches = examples.bucket_by_sequence_length(
        element_length_func=length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=padding_values,
        pad_to_bucket_boundary=False,
    )
    return without_autotuning(batches.prefetch(PREFETCHED_BATCHES))


# Batches made ready while the model trains on the one before.
PREFETCHED_BATCHES = 2


def without_autotuning(batches: tf.data.Dataset) -> tf.data.Dataset:
    """``batches`` with tf.data's autotuning off.

    With it on, fit left the CPU idle for 4-20 s at the start of about one epoch in three (0.7 s
    of CPU in 6 s of wall time; no retracing, no page faults): 12 of 12 epoch starts of the
    demo translation model were stall-free without it, and its epochs took 15.3 s each against
    13.4-21.4 s (``bench/RESULTS.md``, 2026-11-30). Our pipelines read arrays already in memory,
    so a fixed prefetch does as well.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.with_options(options)
