"""Attention benchmarks: seqlayers.MultiHeadAttention vs. keras.layers.MultiHeadAttention, and
greedy decoding with the key/value cache vs. recomputing the prefix.

    .venv/bin/python bench/bench_attention.py            # full run (alone on the machine)
    .venv/bin/python bench/bench_attention.py --quick    # tiny smoke run

1. Multi-head attention, side by side in one process on identical inputs: forward time
   (a compiled ``tf.function``, plain graph and XLA) and training-step time (``train_on_batch``
   of ``Input -> attention -> mse`` with ``jit_compile=True``), for self-attention without mask,
   with the causal mask, and with padded keys (a quarter of each sequence).
2. Greedy decoding with a decoder-only Transformer (embedding, learned positions,
   ``TransformerDecoder`` blocks, logits): time per generated token for 32, 64 and 128 tokens,
   recomputing the prefix at every step versus reading the key/value cache, each both as one
   ``tf.function`` call per token (the prefix version traced once for any length) and as the
   whole generation in one XLA-compiled loop (the prefix version then runs the full token
   buffer, causally masked, at every step). With the cache the time per token stays flat;
   without it, it grows with the length.

Every timing is the median of ``--repeats`` runs after ``--warmup`` untimed runs; the
implementations compared in one row take turns, run by run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import apps.quiet_tensorflow  # noqa: F401  (first: TensorFlow loads without its C++ start-up noise)

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seqlayers.multi_head_attention import MultiHeadAttention
from seqlayers.position_embedding import PositionEmbedding
from seqlayers.transformer_decoder import TransformerDecoder


def interleaved_median_seconds(functions: dict, warmup: int, repeats: int) -> dict:
    """Median time of each function; the functions take turns, so load drifts hit all alike."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    timings = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timings.items()}


def to_numpy(result):
    """Forces the computation to finish before the clock stops."""
    return [np.asarray(x) for x in keras.tree.flatten(result)]


# === 1. Multi-head attention, ours vs. Keras ===


def attention_cases(batch: int, length: int):
    padding_mask = np.ones((batch, length), bool)
    padding_mask[:, length - length // 4 :] = False
    return {
        "self-attention, no mask": {},
        "causal mask": {"use_causal_mask": True},
        # Keys only: keras.layers.MultiHeadAttention ignores an explicit query_mask.
        "padded keys (value_mask)": {"value_mask": padding_mask},
    }


def built(make_layer, x):
    layer = make_layer()
    layer(x[:1], x[:1])  # variables are created outside the compiled functions
    return layer


def forward_function(layer, x, call_kwargs, jit: bool):
    kwargs = {k: tf.constant(v) if isinstance(v, np.ndarray) else v for k, v in call_kwargs.items()}
    forward = tf.function(lambda x: layer(x, x, training=False, **kwargs), jit_compile=jit)
    x = tf.constant(x)
    return lambda: to_numpy(forward(x))


def training_step_function(layer, x, call_kwargs):
    inputs = keras.Input(x.shape[1:])
    masks = {k: v for k, v in call_kwargs.items() if isinstance(v, np.ndarray)}
    if masks:  # masks as model inputs, so both layers get the same tensors
        mask_input = keras.Input(x.shape[1:2], dtype="bool")
        kwargs = {k: mask_input for k in masks}
        model = keras.Model([inputs, mask_input], layer(inputs, inputs, **kwargs))
        feed = [x, next(iter(masks.values()))]
    else:
        model = keras.Model(inputs, layer(inputs, inputs, **call_kwargs))
        feed = x
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    target = np.zeros_like(x)
    return lambda: model.train_on_batch(feed, target)


def bench_attention(args) -> str:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.length, args.width)).astype("float32")
    implementations = {
        "seqlayers": lambda: MultiHeadAttention(args.heads, args.key_dim),
        "keras": lambda: keras.layers.MultiHeadAttention(args.heads, args.key_dim),
    }
    lines = [
        f"### MultiHeadAttention: {args.heads} heads, key_dim {args.key_dim}, batch "
        f"{args.batch}, length {args.length}, width {args.width} (float32, median ms)",
        "",
        "| case | step | seqlayers | keras | seqlayers / keras |",
        "|---|---|---:|---:|---:|",
    ]
    for case, call_kwargs in attention_cases(args.batch, args.length).items():
        steps = {
            "forward (graph)": lambda make, kw=call_kwargs: forward_function(
                built(make, x), x, kw, jit=False
            ),
            "forward (XLA)": lambda make, kw=call_kwargs: forward_function(
                built(make, x), x, kw, jit=True
            ),
            "training step (XLA)": lambda make, kw=call_kwargs: training_step_function(
                make(), x, kw
            ),
        }
        for step, make_function in steps.items():
            times = interleaved_median_seconds(
                {name: make_function(make) for name, make in implementations.items()},
                args.warmup,
                args.repeats,
            )
            ratio = times["seqlayers"] / times["keras"]
            lines.append(
                f"| {case} | {step} | {1e3 * times['seqlayers']:.2f} | "
                f"{1e3 * times['keras']:.2f} | {ratio:.2f} |"
            )
    return "\n".join(lines)


# === 2. Greedy decoding, with and without the cache ===


class GreedyDecoder:
    """Embedding -> learned positions -> decoder blocks -> logits; greedy generation."""

    def __init__(self, vocabulary, width, heads, layers, max_length):
        self.embedding = keras.layers.Embedding(vocabulary, width)
        self.positions = PositionEmbedding(max_length)
        self.blocks = [
            TransformerDecoder(intermediate_dim=4 * width, num_heads=heads) for _ in range(layers)
        ]
        self.logits = keras.layers.Dense(vocabulary)
        self.next_token_from_prefix(np.zeros((1, 1), "int32"))  # builds the layers

    def next_token_from_prefix(self, tokens):
        hidden = self.positions(self.embedding(tokens))
        for block in self.blocks:
            hidden = block(hidden)
        return ops.cast(ops.argmax(self.logits(hidden[:, -1:]), axis=-1), "int32")

    def next_token_with_cache(self, token, caches, index):
        hidden = self.positions(self.embedding(token), start_index=index)
        new_caches = []
        for block, cache in zip(self.blocks, caches, strict=True):
            hidden, cache = block(
                hidden, self_attention_cache=cache, self_attention_cache_update_index=index
            )
            new_caches.append(cache)
        return ops.cast(ops.argmax(self.logits(hidden), axis=-1), "int32"), tuple(new_caches)

    def empty_caches(self, batch, length):
        return tuple(block.empty_self_attention_cache(batch, length) for block in self.blocks)


def bench_decoding(args) -> str:
    model = GreedyDecoder(
        args.vocabulary, args.decoder_width, args.decoder_heads, args.decoder_layers,
        max(args.decode_lengths) + 1,
    )  # fmt: skip
    batch = args.decode_batch
    start = tf.constant(np.ones((batch, 1), "int32"))

    prefix_step = tf.function(
        model.next_token_from_prefix,
        input_signature=[tf.TensorSpec((batch, None), tf.int32)],
    )

    def generate_recomputing(length):
        tokens = start
        for _ in range(length):
            tokens = tf.concat([tokens, prefix_step(tokens)], axis=1)
        return tokens.numpy()

    cached_step = tf.function(model.next_token_with_cache)

    def generate_cached(length):
        token, caches, generated = start, model.empty_caches(batch, length), [start]
        for index in range(length):
            token, caches = cached_step(token, caches, tf.constant(index))
            generated.append(token)
        return tf.concat(generated, axis=1).numpy()

    def make_xla_loop(length, use_cache):
        """The whole generation in one XLA-compiled loop over a fixed token buffer."""

        @tf.function(jit_compile=True)
        def generate(start):
            def recompute(index, state):
                # The whole buffer every step; the causal mask hides the unwritten tokens.
                tokens = state
                hidden = model.positions(model.embedding(tokens[:, :length]))
                for block in model.blocks:
                    hidden = block(hidden)
                hidden = ops.slice(hidden, [0, index, 0], [batch, 1, hidden.shape[-1]])
                token = ops.cast(ops.argmax(model.logits(hidden), axis=-1), "int32")
                return ops.slice_update(tokens, [0, index + 1], token)

            def cached(index, state):
                token, caches, tokens = state
                token, caches = model.next_token_with_cache(token, caches, index)
                return token, caches, ops.slice_update(tokens, [0, index + 1], token)

            tokens = ops.concatenate([start, ops.zeros((batch, length), "int32")], axis=1)
            if use_cache:
                state = (start, model.empty_caches(batch, length), tokens)
                return ops.fori_loop(0, length, cached, state)[2]
            return ops.fori_loop(0, length, recompute, tokens)

        return lambda: generate(start).numpy()

    lines = [
        f"### Greedy decoding: {args.decoder_layers} x TransformerDecoder (width "
        f"{args.decoder_width}, {args.decoder_heads} heads), vocabulary {args.vocabulary}, "
        f"batch {batch} (float32, median ms per generated token)",
        "",
        "| tokens | recompute, step per call | cache, step per call | recompute, XLA loop | "
        "cache, XLA loop | recompute / cache (XLA) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for length in args.decode_lengths:
        generators = [
            lambda n=length: generate_recomputing(n),
            lambda n=length: generate_cached(n),
            make_xla_loop(length, use_cache=False),
            make_xla_loop(length, use_cache=True),
        ]
        results = [generate() for generate in generators]
        same = all(np.array_equal(results[0], result) for result in results[1:])
        times = interleaved_median_seconds(dict(enumerate(generators)), args.warmup, args.repeats)
        times = [times[index] / length for index in range(len(generators))]
        lines.append(
            "| "
            + " | ".join([str(length), *(f"{1e3 * t:.2f}" for t in times)])
            + f" | {times[2] / times[3]:.1f} |"
            + ("" if same else " tokens differ!")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--key-dim", type=int, default=64)
    parser.add_argument("--decode-lengths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--decode-batch", type=int, default=8)
    parser.add_argument("--decoder-width", type=int, default=256)
    parser.add_argument("--decoder-heads", type=int, default=4)
    parser.add_argument("--decoder-layers", type=int, default=2)
    parser.add_argument("--vocabulary", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.length, args.width, args.heads, args.key_dim = 2, 16, 32, 2, 16
        args.decode_lengths, args.decode_batch = [4, 8, 16], 2
        args.decoder_width, args.decoder_heads, args.decoder_layers = 16, 2, 1
        args.vocabulary, args.warmup, args.repeats = 50, 1, 3

    # One tf.function per layer and case, each traced once; TF's retracing heuristic would
    # still warn, as they share their Python code.
    tf.get_logger().setLevel("ERROR")
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices()) or "CPU"
    print(
        f"## Attention benchmark{' (--quick smoke run)' if args.quick else ''}\n\n"
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: {devices}, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print(bench_attention(args))
    print()
    print(bench_decoding(args))


if __name__ == "__main__":
    main()
