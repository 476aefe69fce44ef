"""tf.data pipelines: token ids in length buckets, so that padding does not dominate the cost."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common.text import PADDING_ID, TextEncoder


def bucket_boundaries(max_tokens: int) -> list[int]:
    """Bucket upper bounds growing by about 1.5x from 8 up to ``max_tokens``."""
    boundaries, bound = [], 8
    while bound < max_tokens:
        boundaries.append(bound)
        bound = int(bound * 1.5) + 1
    return boundaries


def encoded_text_dataset(
    texts: list[str],
    label_ids: np.ndarray | None,
    encoder: TextEncoder,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(ids int32[batch, time], label int32[batch])`` (ids alone without labels).

    Examples of similar length are batched together (``bucket_by_sequence_length``) and padded
    with 0, which ``Embedding(mask_zero=True)`` turns into a mask. Bucketing reorders examples
    even without ``shuffle_seed``: callers that need the input order batch texts themselves and
    call ``encoder.encode``.
    """
    dataset = tf.data.Dataset.from_tensor_slices(texts)
    if label_ids is not None:
        dataset = tf.data.Dataset.zip(
            dataset, tf.data.Dataset.from_tensor_slices(label_ids.astype("int32"))
        )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(texts), seed=shuffle_seed, reshuffle_each_iteration=True)

    def encode(text, *label):
        return (encoder.encode(tf.reshape(text, [1]))[0], *label)

    dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = bucket_boundaries(encoder.max_tokens)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda ids, *label: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(PADDING_ID, 0) if label_ids is not None else PADDING_ID,
        pad_to_bucket_boundary=False,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
