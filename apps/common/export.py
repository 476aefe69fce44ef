"""Exports in TensorFlow Serving layout, checked, published atomically, with warm-up requests.

``saved_models/<app>/<version>/`` is what ``tensorflow_model_server --model_base_path`` watches.
A version is written in full to a hidden temporary directory beside it (TF Serving ignores names
that are not integers), with

- ``assets.extra/seqapps.json``: the export config (app, architecture, hyperparameters, the
  data it was trained on, each signature's inputs and outputs, and what the task adds, such as
  label names);
- ``assets.extra/tf_serving_warmup_requests``: requests TF Serving replays before it serves;

then loaded in a fresh Python process that imports only TensorFlow and tensorflow-text (as TF
Serving has no Python at all), where the warm-up requests must give the answers the run
directory gives here, and only then renamed into place: a watching server never loads half a
model, nor one that cannot answer.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from apps.common.errors import SeqappsError

EXPORT_CONFIG = "seqapps.json"  # in assets.extra/: what the export is, for seqapps itself
WARMUP_FILE = "tf_serving_warmup_requests"


def existing_versions(app_dir: Path) -> list[int]:
    if not app_dir.is_dir():
        return []
    return sorted(int(p.name) for p in app_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(app_dir: Path) -> int:
    versions = existing_versions(app_dir)
    return versions[-1] + 1 if versions else 1


def publish_atomically(
    write: Callable[[Path], None], base: Path, app: str, version: int | None = None
) -> Path:
    """Runs ``write(temporary_dir)``, then renames the directory to ``base/app/version``.

    ``version`` defaults to the next free integer; an existing version is never replaced.
    """
    app_dir = Path(base) / app
    app_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = next_version(app_dir)
    if version < 1:
        raise SeqappsError(f"--version must be a positive integer, got {version}")
    target = app_dir / str(version)
    if target.exists():
        raise SeqappsError(f"{target} already exists; versions are never overwritten")
    temporary = app_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        write(temporary)
        # rename() is atomic within one file system; it fails rather than replace a directory
        # that another exporter created meanwhile.
        os.rename(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def write_export_config(export_dir: Path, config: dict) -> None:
    extra = export_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / EXPORT_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_export_config(export_dir: Path) -> dict:
    path = Path(export_dir) / "assets.extra" / EXPORT_CONFIG
    if not path.exists():
        raise SeqappsError(f"{export_dir}: not a seqapps export (no assets.extra/{EXPORT_CONFIG})")
    return json.loads(path.read_text())


def is_export(path: Path) -> bool:
    return (Path(path) / "saved_model.pb").exists()


def write_warmup_requests(
    export_dir: Path, model_name: str, requests: Sequence[tuple[str, dict[str, list]]]
) -> Path:
    """Writes ``assets.extra/tf_serving_warmup_requests``: one PredictionLog per
    ``(signature name, inputs)`` request."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    extra = export_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    path = extra / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, request_inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for name, values in request_inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def describe_signature(name: str, function) -> str:
    """``"serving_default(text: string[None]) -> {label: string[None], ...}"``."""

    def spec(tensor_name: str, tensor_spec) -> str:
        dims = ", ".join(str(d) for d in tensor_spec.shape.as_list())
        return f"{tensor_name}: {tensor_spec.dtype.name}[{dims}]"

    concrete = function.get_concrete_function()
    inputs = ", ".join(spec(s.name, s) for s in function.input_signature)
    outputs = ", ".join(
        spec(key, value) for key, value in sorted(concrete.structured_outputs.items())
    )
    return f"{name}({inputs}) -> {{{outputs}}}"


def export_config(app: str, run_config: dict, extras: dict) -> dict:
    """What an export is, for ``seqapps`` and for people (``assets.extra/seqapps.json``), less
    its ``"signatures"`` (``describe_signatures``), which the export adds: describing them
    traces every one, seconds for translation's beam search, that evaluate and predict on a
    run directory may never call."""
    return {
        "app": app,
        "architecture": run_config["hyperparameters"].get("architecture"),
        "hyperparameters": run_config["hyperparameters"],
        "ensemble": run_config.get("ensemble", 1),
        "trained_on": run_config["data"],
        **extras,
    }


def describe_signatures(signatures: dict) -> list[str]:
    return [describe_signature(name, function) for name, function in signatures.items()]


def encode_tensor(value) -> str:
    """Any array-like as base64 of a ``TensorProto`` (keeps dtype, shape and raw bytes)."""
    return base64.b64encode(tf.make_tensor_proto(value).SerializeToString()).decode("ascii")


def decode_tensor(text: str) -> np.ndarray:
    return tf.make_ndarray(tensor_pb2.TensorProto.FromString(base64.b64decode(text)))


# Runs in a fresh interpreter (python -I, elsewhere than the project): imports only TensorFlow
# and tensorflow-text, as TF Serving would have them, and answers the requests it is given.
FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import base64, json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (TF Serving links these ops)
    from tensorflow.core.framework import tensor_pb2

    def decode(text):
        return tf.make_ndarray(tensor_pb2.TensorProto.FromString(base64.b64decode(text)))

    def encode(value):
        proto = tf.make_tensor_proto(value)
        return base64.b64encode(proto.SerializeToString()).decode("ascii")

    export_dir, requests_file = sys.argv[1], sys.argv[2]
    loaded = tf.saved_model.load(export_dir)
    answers = []
    for signature, inputs in json.load(open(requests_file)):
        function = loaded.signatures[signature]
        outputs = function(**{name: tf.constant(decode(v)) for name, v in inputs.items()})
        answers.append({name: encode(value.numpy()) for name, value in outputs.items()})
    project = sorted({m.split(".")[0] for m in sys.modules} & {"apps", "seqlayers", "tuning"})
    print(json.dumps({"answers": answers, "project_modules": project}))
    """
)


def answers_in_fresh_process(
    export_dir: Path, requests: Sequence[tuple[str, dict[str, list]]], timeout: float = 600
) -> list[dict[str, np.ndarray]]:
    """The export's answers to ``requests``, computed by a fresh Python process that imports
    nothing but TensorFlow and tensorflow-text. Raises SeqappsError if it fails or imports any
    of this project's modules."""
    encoded = [
        [signature, {name: encode_tensor(values) for name, values in inputs.items()}]
        for signature, inputs in requests
    ]
    with tempfile.TemporaryDirectory() as scratch:
        requests_file = Path(scratch) / "requests.json"
        requests_file.write_text(json.dumps(encoded))
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        absolute = str(Path(export_dir).resolve())  # the process runs elsewhere
        completed = subprocess.run(
            [sys.executable, "-I", "-c", FRESH_PROCESS_SCRIPT, absolute, str(requests_file)],
            capture_output=True,
            text=True,
            cwd=scratch,
            env=environment,
            timeout=timeout,
        )
    if completed.returncode != 0:
        # The traceback, without the native start-up lines before it.
        error = completed.stderr[completed.stderr.rfind("Traceback") :][-3000:]
        raise SeqappsError(f"{export_dir}: the export failed in a fresh Python process:\n{error}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if result["project_modules"]:
        raise SeqappsError(
            f"{export_dir}: serving it imported this project's modules "
            f"{result['project_modules']}; an export must need only TensorFlow"
        )
    return [
        {name: decode_tensor(value) for name, value in answer.items()}
        for answer in result["answers"]
    ]


def assert_same_answers(
    expected: Sequence[dict[str, np.ndarray]],
    actual: Sequence[dict[str, np.ndarray]],
    requests: Sequence[tuple[str, dict]],
    tolerance: float = 1e-4,
) -> None:
    """Strings and integers equal, floats within ``tolerance``; else a SeqappsError that names
    the request and the output."""
    for (signature, inputs), want, got in zip(requests, expected, actual, strict=True):
        for name in sorted(set(want) | set(got)):
            a, b = np.asarray(want.get(name)), np.asarray(got.get(name))
            if a.dtype.kind == "f" and b.dtype.kind == "f" and a.shape == b.shape:
                same = np.allclose(a, b, atol=tolerance, rtol=tolerance, equal_nan=True)
            else:
                same = a.shape == b.shape and np.array_equal(a, b)
            if not same:
                shown = {key: list(values)[:3] for key, values in inputs.items()}
                raise SeqappsError(
                    f"the export answers the warm-up request {signature}({shown}) differently "
                    f"from the run directory: output {name!r} {b!r} instead of {a!r}"
                )
