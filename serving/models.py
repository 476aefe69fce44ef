"""The models a server answers with: every model folder under a base directory, newest version.

As TF Serving's file-system poller (``--file_system_poll_wait_seconds``) with its default version
policy (the latest version of each model), ``ModelManager`` scans ``base/NAME/VERSION/`` every
``poll_seconds``:

- a version directory is an integer name holding ``saved_model.pb``; hidden or other names (our
  exports' ``.tmp-*`` directories while they are written) are never looked at;
- a version is loaded only when it is complete (its ``variables/variables.index`` present when
  it has variables) and its files were unchanged at two polls ``poll_seconds`` apart, so a
  version copied in by hand (``cp -r``, ``rsync``) is not loaded half-written;
- a new version is loaded and warmed up (its ``assets.extra/tf_serving_warmup_requests``
  replayed, as TF Serving does, so that the first client does not pay for tracing) while the
  previous one keeps answering; then it replaces it. Requests already running on the old
  version finish on it;
- a version that fails to load (or whose warm-up fails) is reported in the model's status and
  not retried until its files change; the previous version goes on serving;
- removing the newest version directory brings back the newest one left.

The status of each version follows TF Serving's ``ModelVersionStatus`` (START, LOADING,
AVAILABLE, END), which ``GET /v1/models/NAME`` and ``ModelService/GetModelStatus`` report.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops, which TF Serving links)
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2, prediction_log_pb2

from serving.tensors import InputSpec, RequestError, input_specs

SERVING_DEFAULT = "serving_default"
INIT_OP_SIGNATURE = "__saved_model_init_op"  # in every TF2 SavedModel; not callable
WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

State = get_model_status_pb2.ModelVersionStatus.State


class ServedVersion:
    """One loaded SavedModel version: its signatures, callable with arrays."""

    def __init__(self, name: str, version: int, path: Path):
        self.name, self.version, self.path = name, version, Path(path)
        meta_graph = saved_model_pb2.SavedModel.FromString(
            (self.path / "saved_model.pb").read_bytes()
        ).meta_graphs[0]
        self.signature_defs = dict(meta_graph.signature_def)
        self.loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self.loaded.signatures)
        self.input_specs: dict[str, dict[str, InputSpec]] = {
            name: input_specs(self.signature_defs[name]) for name in self.signatures
        }

    def signature(self, name: str) -> dict[str, InputSpec]:
        """The inputs of signature ``name`` (``""`` means serving_default)."""
        name = name or SERVING_DEFAULT
        if name not in self.signatures:
            raise RequestError(
                "NOT_FOUND",
                f"model {self.name!r} version {self.version} has no signature {name!r} "
                f"(it has {', '.join(sorted(self.signatures))})",
            )
        return self.input_specs[name]

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on checked inputs (``serving/tensors.py``)."""
        signature = signature or SERVING_DEFAULT
        specs = self.signature(signature)
        tensors = {
            name: tf.constant(array, dtype=tf.as_dtype(specs[name].dtype))
            for name, array in inputs.items()
        }
        try:
            outputs = self.signatures[signature](**tensors)
        except tf.errors.InvalidArgumentError as error:
            # An input the graph itself refuses (an image that does not decode, say).
            raise RequestError("INVALID_ARGUMENT", error.message.splitlines()[0]) from None
        return {name: value.numpy() for name, value in outputs.items()}

    def warm_up(self) -> int:
        """Replays ``assets.extra/tf_serving_warmup_requests``; returns how many ran."""
        path = self.path / WARMUP_PATH
        if not path.exists():
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if not log.HasField("predict_log"):
                raise ValueError(f"{path}: record {count} is not a PredictLog")
            request = log.predict_log.request
            signature = request.model_spec.signature_name or SERVING_DEFAULT
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            self.call(signature, inputs)
            count += 1
        return count


@dataclass
class VersionStatus:
    state: int
    error: str = ""


@dataclass
class ServedModel:
    """A model folder: the version it serves and the status of every version it has seen."""

    name: str
    current: ServedVersion | None = None
    statuses: dict[int, VersionStatus] = field(default_factory=dict)
    failed: dict[int, tuple] = field(default_factory=dict)  # version: its files when it failed
    seen: dict[int, tuple] = field(default_factory=dict)  # version: its files at the last poll


def file_snapshot(directory: Path) -> tuple:
    """Names, sizes and modification times of every file below ``directory``."""
    entries = []
    for path in sorted(directory.rglob("*")):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we looked
            continue
        entries.append((str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def is_complete(version_dir: Path) -> bool:
    if not (version_dir / "saved_model.pb").is_file():
        return False
    variables = version_dir / "variables"
    return not variables.exists() or (variables / "variables.index").is_file()


class ModelManager:
    """Loads and swaps the versions under ``base`` (see the module's docstring); thread-safe."""

    def __init__(self, base: Path, poll_seconds: float = 1.0, log: Callable[[str], None] = print):
        self.base, self.poll_seconds, self.log = Path(base), poll_seconds, log
        self.models: dict[str, ServedModel] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what requests see -------------------------------------------------------------------

    def lookup(self, name: str, version: int | None = None) -> ServedVersion:
        with self._lock:
            model = self.models.get(name)
            current = model.current if model else None
        wanted = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        if current is None or (version is not None and version != current.version):
            served = ", ".join(self.available()) or "none"
            raise RequestError(
                "NOT_FOUND", f"Servable not found for request: {wanted} (serving: {served})"
            )
        return current

    def available(self) -> list[str]:
        with self._lock:
            return [
                f"{name} version {model.current.version}"
                for name, model in sorted(self.models.items())
                if model.current is not None
            ]

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionStatus]]:
        with self._lock:
            model = self.models.get(name)
            statuses = sorted(model.statuses.items(), reverse=True) if model else []
        if version is not None:
            statuses = [(v, status) for v, status in statuses if v == version]
        if not statuses:
            wanted = f"version {version} of " if version is not None else ""
            raise RequestError(
                "NOT_FOUND", f"Could not find {wanted}model {name!r} under {self.base}"
            )
        return statuses

    # -- polling -------------------------------------------------------------------------------

    def start(self) -> None:
        """Loads what is there now (waiting for it to settle), then polls in a thread."""
        if not self.base.is_dir():
            raise FileNotFoundError(f"{self.base}: no such directory (export a model first)")
        self.poll()
        if any(self._unsettled()):
            time.sleep(min(self.poll_seconds, 0.5))
            self.poll()
        self._thread = threading.Thread(target=self._watch, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception as error:  # a poll must never end the poller
                self.log(f"serving: polling {self.base} failed: {error}")

    def _unsettled(self):
        for model in self.models.values():
            for status in model.statuses.values():
                if status.state == State.START:
                    yield status

    def poll(self) -> None:
        """One scan of the base directory: load what is new and settled, drop what is gone."""
        folders = {
            p.name: p for p in self.base.iterdir() if p.is_dir() and MODEL_NAME.match(p.name)
        }
        for name in sorted(set(self.models) - set(folders)):
            self.log(f"serving: {name} removed from {self.base}; no longer served")
            with self._lock:
                del self.models[name]
        for name, folder in sorted(folders.items()):
            with self._lock:
                model = self.models.setdefault(name, ServedModel(name))
            self._poll_model(model, folder)

    def _poll_model(self, model: ServedModel, folder: Path) -> None:
        versions = {
            int(p.name): p
            for p in folder.iterdir()
            if p.is_dir() and p.name.isdigit() and int(p.name) > 0
        }
        for gone in set(model.statuses) - set(versions):
            if model.statuses[gone].state != State.END:
                self._set_status(model, gone, VersionStatus(State.END))
            model.seen.pop(gone, None)
        if not versions:
            if model.current is not None:
                self.log(f"serving: {model.name} has no versions left; no longer served")
                with self._lock:
                    model.current = None
            return
        # As TF Serving's default policy: aspire to the newest version only. The current one
        # answers until it is loaded (even if its own directory was removed meanwhile).
        newest = max(versions)
        path = versions[newest]
        if model.current is not None and model.current.version == newest:
            return
        if not is_complete(path):
            self._set_status(model, newest, VersionStatus(State.START))
            return
        snapshot = file_snapshot(path)
        settled = model.seen.get(newest) == snapshot
        model.seen[newest] = snapshot
        if newest in model.failed:
            if model.failed[newest] == snapshot:
                return  # failed with these files: wait for them to change
            del model.failed[newest]
        known = model.statuses.get(newest)
        if not settled and not (known and known.state == State.END and not known.error):
            self._set_status(model, newest, VersionStatus(State.START))
            return  # a version served before (and superseded) needs no settling
        self._load(model, newest, path)

    def _set_status(self, model: ServedModel, version: int, status: VersionStatus) -> None:
        # Written by the poller only, read by request threads: under the lock.
        with self._lock:
            model.statuses[version] = status

    def _load(self, model: ServedModel, version: int, path: Path) -> None:
        self._set_status(model, version, VersionStatus(State.LOADING))
        started = time.monotonic()
        try:
            served = ServedVersion(model.name, version, path)
            warmed = served.warm_up()
        except Exception as error:  # any failure to load is the version's, not the server's
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            model.failed[version] = model.seen.get(version, ())
            self._set_status(model, version, VersionStatus(State.END, message))
            keeping = f"; still serving version {model.current.version}" if model.current else ""
            self.log(f"serving: {model.name} version {version} failed to load: {message}{keeping}")
            return
        with self._lock:
            previous, model.current = model.current, served
            model.statuses[version] = VersionStatus(State.AVAILABLE)
            if previous is not None:
                model.statuses[previous.version] = VersionStatus(State.END)
        took = time.monotonic() - started
        self.log(
            f"serving: {model.name} version {version} ({', '.join(sorted(served.signatures))}) "
            f"loaded in {took:.1f} s, {warmed} warm-up requests replayed"
            + (f"; replaces version {previous.version}" if previous else "")
        )
