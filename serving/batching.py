"""Running requests: a bounded pool, and optional batching of concurrent requests.

``Dispatcher.run`` is where every predict request (REST or gRPC) meets the model. It runs
signatures in a pool of ``max_concurrent`` threads (TensorFlow releases the GIL while it
computes) and refuses work beyond ``max_queued`` waiting requests with RESOURCE_EXHAUSTED, so an
overloaded server answers "retry later" at once instead of piling up requests until clients
time out.

With batching (``seqapps serve --enable-batching``, as TF Serving's ``--enable_batching``),
requests for the same model version and signature whose inputs have the same dtypes and the same
shape past the batch dimension wait up to ``batch_timeout_micros`` to run as one call of at
most ``max_batch_size`` examples; each request gets its own rows back. As in TF Serving, an
output padded to the longest example (tagging's ``tags``) is padded to the longest example of
the whole batch. The parameters are TF Serving's ``BatchingParameters`` text format, read from
the same ``batching_parameters.txt`` that ``seqapps export --batching-config`` writes for
``tensorflow_model_server --batching_parameters_file``; ``bench/bench_serving.py`` measures
what batching gives here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from serving.models import ServedVersion
from serving.tensors import RequestError

# TF Serving's BatchingParameters (tensorflow_serving/servables/tensorflow/
# session_bundle_config.proto), whose Python module the tensorflow-serving-api wheel does not
# ship. Declared here with the same field names and numbers, so that text_format reads and
# writes exactly the files TF Serving reads, and refuses a misspelled field with its line.
_BATCHING_FIELDS = {
    # name: (number, wrapper type)
    "max_batch_size": (1, "Int64Value"),
    "batch_timeout_micros": (2, "Int64Value"),
    "max_enqueued_batches": (3, "Int64Value"),
    "num_batch_threads": (4, "Int64Value"),
    "thread_pool_name": (5, "StringValue"),
    "allowed_batch_sizes": (6, None),
    "pad_variable_length_inputs": (7, "BoolValue"),
    "enable_large_batch_splitting": (8, "BoolValue"),
    "max_execution_batch_size": (9, "Int64Value"),
}


def _batching_parameters_class():
    from google.protobuf import wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="seqapps/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file.message_type.add(name="BatchingParameters")
    for name, (number, wrapper) in _BATCHING_FIELDS.items():
        if wrapper is None:
            message.field.add(
                name=name,
                number=number,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
            )
        else:
            message.field.add(
                name=name,
                number=number,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                type_name=f".google.protobuf.{wrapper}",
            )
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


BatchingParameters = _batching_parameters_class()


@dataclass(frozen=True)
class BatchingSettings:
    """TF Serving's batching parameters, with its defaults where the file is silent
    (max_batch_size 1000, batch_timeout_micros 0, max_enqueued_batches 10). ``seqapps serve``
    honours all but ``max_enqueued_batches``, which it reads and writes for TF Serving: its own
    queue is bounded by ``--max-queued-requests``."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0: the server's --max-concurrent-requests
    allowed_batch_sizes: tuple[int, ...] = ()

    @classmethod
    def read(cls, path: Path) -> BatchingSettings:
        text = Path(path).read_text()
        try:
            parameters = text_format.Parse(text, BatchingParameters())
        except text_format.ParseError as error:
            raise ValueError(f"{path}: {error}") from None
        values = {}
        for name in (
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
        ):
            if parameters.HasField(name):
                values[name] = getattr(parameters, name).value
                if values[name] < (0 if name == "batch_timeout_micros" else 1):
                    raise ValueError(f"{path}: {name} must be positive, got {values[name]}")
        values["allowed_batch_sizes"] = tuple(parameters.allowed_batch_sizes)
        settings = cls(**values)
        sizes = settings.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != settings.max_batch_size):
            raise ValueError(
                f"{path}: allowed_batch_sizes must increase and end with max_batch_size "
                f"({settings.max_batch_size}), as TF Serving requires; got {list(sizes)}"
            )
        return settings

    def padded_size(self, rows: int) -> int:
        """The batch size a call of ``rows`` examples runs at (the next allowed size)."""
        return next((size for size in self.allowed_batch_sizes if size >= rows), rows)


# The batching defaults of `seqapps export --batching-config` and `seqapps serve
# --enable-batching`, for a GPU behind TF Serving:
# - max_batch_size 64: the apps' requests are a few sentences or images each, and a GPU is
#   still far from saturated at 64 of them (translation's beam search runs 4 hypotheses per
#   sentence, so 256 sequences); larger batches mostly add queueing delay;
# - batch_timeout_micros 1000: the batching guide's "slightly above zero, e.g. 1 millisecond",
#   which smooths batch sizes at low request rates for at most 1 ms of added latency;
# - num_batch_threads 4: batches in flight at once, so that the CPU part of a batch
#   (tokenizing, decoding images, the beam search's loop) overlaps the GPU part of another;
# - max_enqueued_batches 16: at most 16 x 64 examples wait; past that TF Serving refuses at
#   once (UNAVAILABLE), which a client can retry elsewhere, rather than letting latency grow
#   without bound.
DEFAULT_BATCHING = BatchingSettings(
    max_batch_size=64, batch_timeout_micros=1000, max_enqueued_batches=16, num_batch_threads=4
)


def write_batching_parameters(path: Path, settings: BatchingSettings, comment: str) -> None:
    """Writes TF Serving's text format, with ``comment`` (``#`` lines) first."""
    parameters = BatchingParameters()
    parameters.max_batch_size.value = settings.max_batch_size
    parameters.batch_timeout_micros.value = settings.batch_timeout_micros
    parameters.max_enqueued_batches.value = settings.max_enqueued_batches
    if settings.num_batch_threads:
        parameters.num_batch_threads.value = settings.num_batch_threads
    parameters.allowed_batch_sizes.extend(settings.allowed_batch_sizes)
    header = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    Path(path).write_text(header + text_format.MessageToString(parameters))


BATCHING_PARAMETERS_FILE = "batching_parameters.txt"


def write_default_batching_parameters(base: Path) -> Path:
    """``BASE/batching_parameters.txt`` with ``DEFAULT_BATCHING``, replaced atomically (a
    server reading it never sees half a file)."""
    path = Path(base) / BATCHING_PARAMETERS_FILE
    temporary = path.with_name(f".{path.name}.tmp")
    write_batching_parameters(
        temporary,
        DEFAULT_BATCHING,
        "TF Serving batching parameters for a GPU, written by `seqapps export --batching-config`.\n"
        "tensorflow_model_server --enable_batching --batching_parameters_file=<this file>\n"
        "seqapps serve --batching-parameters-file <this file>\n"
        "Why these values: DEFAULT_BATCHING in serving/batching.py; measured: bench/RESULTS.md.",
    )
    os.replace(temporary, path)
    return path


@dataclass
class _Pending:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future


@dataclass
class _Queue:
    served: ServedVersion
    signature: str
    pending: list[_Pending] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


def _batch_key(served: ServedVersion, signature: str, inputs: dict[str, np.ndarray]):
    shapes = tuple(
        sorted((name, array.dtype.str, array.shape[1:]) for name, array in inputs.items())
    )
    return (id(served), signature, shapes)  # the queue holds ``served``: its id stays its own


class Dispatcher:
    """Runs signatures for the event loop's handlers: bounded, optionally batched."""

    def __init__(
        self, max_concurrent: int, max_queued: int, batching: BatchingSettings | None = None
    ):
        self.max_queued, self.batching = max_queued, batching
        self.threads = (batching.num_batch_threads if batching else 0) or max_concurrent
        self.executor = concurrent.futures.ThreadPoolExecutor(
            self.threads, thread_name_prefix="predict"
        )
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._queues: dict[tuple, _Queue] = {}
        self.calls = 0  # signature calls made (fewer than requests when batching)

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # created in the event loop that uses it
            self._slots = asyncio.Semaphore(self.threads)
        return self._slots

    def _admit(self) -> None:
        if self._waiting >= self.max_queued:
            raise RequestError(
                "RESOURCE_EXHAUSTED",
                f"the server is busy ({self._waiting} requests waiting, "
                f"--max-queued-requests {self.max_queued}); retry later",
            )

    async def _call(self, served: ServedVersion, signature: str, inputs: dict[str, np.ndarray]):
        slots = self._semaphore()
        self._waiting += 1
        try:
            await slots.acquire()
        finally:
            self._waiting -= 1
        try:
            self.calls += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, served.call, signature, inputs)
        finally:
            slots.release()

    async def run(self, served: ServedVersion, signature: str, inputs: dict[str, np.ndarray]):
        self._admit()
        rows = {array.shape[0] for array in inputs.values() if array.ndim}
        if self.batching is None or len(rows) != 1 or not all(a.ndim for a in inputs.values()):
            return await self._call(served, signature, inputs)
        (count,) = rows
        if count >= self.batching.max_batch_size:
            return await self._call(served, signature, inputs)
        loop = asyncio.get_running_loop()
        key = _batch_key(served, signature, inputs)
        queue = self._queues.setdefault(key, _Queue(served, signature))
        future = loop.create_future()
        queue.pending.append(_Pending(inputs, count, future))
        self._waiting += 1
        queued_rows = sum(item.rows for item in queue.pending)
        if queued_rows >= self.batching.max_batch_size:
            self._flush(key)
        elif queue.timer is None:
            delay = self.batching.batch_timeout_micros / 1e6
            queue.timer = loop.call_later(delay, self._flush, key)
        return await future

    def _flush(self, key) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        batch, rows = [], 0
        while queue.pending and rows + queue.pending[0].rows <= self.batching.max_batch_size:
            item = queue.pending.pop(0)
            batch.append(item)
            rows += item.rows
        if not queue.pending:
            del self._queues[key]
        else:  # what did not fit starts the next batch
            loop = asyncio.get_running_loop()
            queue.timer = loop.call_later(
                self.batching.batch_timeout_micros / 1e6, self._flush, key
            )
        self._waiting -= len(batch)
        asyncio.get_running_loop().create_task(
            self._run_batch(queue.served, queue.signature, batch, rows)
        )

    async def _run_batch(
        self, served: ServedVersion, signature: str, batch: list[_Pending], rows: int
    ):
        names = list(batch[0].inputs)
        merged = {name: np.concatenate([item.inputs[name] for item in batch]) for name in names}
        padded = self.batching.padded_size(rows)
        if padded > rows:  # repeat the first example up to an allowed size; its rows are dropped
            merged = {
                name: np.concatenate([array, np.repeat(array[:1], padded - rows, axis=0)])
                for name, array in merged.items()
            }
        try:
            outputs = await self._call(served, signature, merged)
        except Exception as error:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        start = 0
        for item in batch:
            answer = {name: value[start : start + item.rows] for name, value in outputs.items()}
            start += item.rows
            if not item.future.done():
                item.future.set_result(answer)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
