"""Progress of long work, as Keras users expect it: a bar on a terminal, lines in a log.

On a terminal, ``keras.utils.Progbar`` (the bar of ``model.fit``). Elsewhere (a log file, a
pipe, a CI job), one line every ``SEQAPPS_PROGRESS_SECONDS`` seconds (default 5) with the count,
the rate and the time left, so that a long epoch or a large dataset never looks hung::

    reading train/pos: 6,144/12,500 files (49 %), 2,310 files/s, 3 s left
    epoch 2/20: 340/~704 batches (48 %), 5.2 batches/s, 1 min 10 s left; loss 0.4123 ...

Work that ends before the first interval prints nothing here (its caller prints a summary).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

import keras

Item = TypeVar("Item")
SECONDS_ENVIRONMENT_VARIABLE = "SEQAPPS_PROGRESS_SECONDS"
DEFAULT_SECONDS = 5.0


def log_interval() -> float:
    """Seconds between progress lines in a log (``SEQAPPS_PROGRESS_SECONDS``)."""
    text = os.environ.get(SECONDS_ENVIRONMENT_VARIABLE)
    if not text:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(
            f"{SECONDS_ENVIRONMENT_VARIABLE} must be a positive number of seconds, got {text!r}"
        )
    return seconds


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"2 h 4 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def count_line(
    done: int, total: int | None, unit: str, started: float, estimated=False, rate=None
) -> str:
    """``"340/~704 batches (48 %), 5.2 batches/s, 1 min 10 s left"``; ``rate`` defaults to the
    mean since ``started``."""
    elapsed = max(time.perf_counter() - started, 1e-9)
    rate = done / elapsed if rate is None else rate
    rate_text = f"{rate:,.1f}" if rate < 100 else f"{rate:,.0f}"
    if not total:
        return f"{done:,} {unit}, {rate_text} {unit}/s, {duration(elapsed)} so far"
    total = max(total, done)
    approximately = "~" if estimated else ""
    left = (total - done) / rate if rate > 0 else float("inf")
    left_text = duration(left) if math.isfinite(left) else "unknown time"
    return (
        f"{done:,}/{approximately}{total:,} {unit} ({done / total:.0%}), "
        f"{rate_text} {unit}/s, {left_text} left"
    )


class Progress:
    """Counts work done towards ``total`` (None: unknown) and shows it (see the module).

    Args:
        what: what is being done, the start of each line ("reading train/pos").
        total: the amount of work, in ``unit``\\ s; None when unknown.
        unit: "files", "examples", "batches"...
        stream: where lines go (default stdout); a terminal gets a bar instead.
    """

    def __init__(self, what: str, total: int | None, unit: str, stream: TextIO | None = None):
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream or sys.stdout
        self.done = 0
        self.started = time.perf_counter()
        self.interval = log_interval()
        self.last_line = self.started
        self.printed = False
        self.bar = None
        if on_terminal(self.stream):
            print(f"{what}:", file=self.stream, flush=True)
            self.bar = keras.utils.Progbar(total, unit_name=unit.rstrip("s") or "step")

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self.bar is not None:
            self.bar.update(self.done)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.interval:
            self.last_line = now
            self.printed = True
            line = count_line(self.done, self.total, self.unit, self.started)
            print(f"{self.what}: {line}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None and self.total is None:
            self.bar.update(self.done, finalize=True)
        elif self.printed:
            elapsed = duration(time.perf_counter() - self.started)
            print(f"{self.what}: {self.done:,} {self.unit} in {elapsed}", file=self.stream)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def track(
    items: Iterable[Item], what: str, total: int | None, unit: str, step: int = 1
) -> Iterator[Item]:
    """Yields ``items`` while showing progress; each item counts as ``step`` units."""
    with Progress(what, total, unit) as progress:
        for item in items:
            yield item
            progress.advance(step)


class TrainingProgress(keras.callbacks.Callback):
    """Lines with rate and time left within each epoch, for ``fit`` in a log (not a terminal,
    where Keras draws its bar). The first epoch's batch count is ``expected_batches`` (an
    estimate: bucketed batches have no known count); later epochs use the first one's."""

    def __init__(self, epochs: int, expected_batches: int | None, stream: TextIO | None = None):
        super().__init__()
        self.epochs = epochs
        self.batches = expected_batches
        self.estimated = True
        self.stream = stream or sys.stdout
        self.interval = log_interval()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.started = self.last_line = time.perf_counter()
        self.first_step_done = None
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        now = time.perf_counter()
        if self.first_step_done is None:
            # The first step traces the graph: it would distort the rate and the time left.
            self.first_step_done = now
        if now - self.last_line < self.interval:
            return
        self.last_line = now
        steady = now - self.first_step_done
        if self.seen == 1 or steady <= 0:
            line = f"batch 1 (tracing the graph) took {duration(now - self.started)}"
        else:
            rate = (self.seen - 1) / steady
            line = count_line(
                self.seen, self.batches, "batches", self.started, self.estimated, rate
            )
        metrics = " ".join(f"{name} {float(value):.4f}" for name, value in (logs or {}).items())
        print(
            f"epoch {self.epoch + 1}/{self.epochs}: {line}" + (f"; {metrics}" if metrics else ""),
            file=self.stream,
            flush=True,
        )

    def on_test_begin(self, logs=None):
        self.validation_started = self.last_line = time.perf_counter()

    def on_test_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self.last_line < self.interval or not hasattr(self, "epoch"):
            return
        self.last_line = now
        line = count_line(batch + 1, None, "batches", self.validation_started)
        print(f"epoch {self.epoch + 1}/{self.epochs}: validating, {line}", file=self.stream)

    def on_epoch_end(self, epoch, logs=None):
        if self.seen:
            self.batches, self.estimated = self.seen, False
