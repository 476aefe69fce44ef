"""Exports in TensorFlow Serving layout, published atomically, with warm-up requests.

``saved_models/<app>/<version>/`` is what ``tensorflow_model_server --model_base_path`` watches.
A version is written in full to a hidden temporary directory beside it (TF Serving ignores names
that are not integers) and renamed into place, so a watching server never loads half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

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
    export_dir: Path, model_name: str, inputs: list[dict[str, list]], signature="serving_default"
) -> Path:
    """Writes ``assets.extra/tf_serving_warmup_requests``: one PredictionLog per request."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    extra = export_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    path = extra / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request_inputs in inputs:
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
