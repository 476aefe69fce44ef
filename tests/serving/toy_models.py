"""Small SavedModels in TF Serving layout for the server's tests: built in about a second,
with a string signature, a binary (``_bytes``) one, a numeric one and warm-up requests, and
the version number in a variable so that a test sees which version answered."""

from __future__ import annotations

import shutil
from pathlib import Path

import tensorflow as tf

from apps.common import export as export_tools

MODEL = "toy"


class ToyModel(tf.Module):
    def __init__(self, version: int):
        super().__init__()
        self.version = tf.Variable(version, dtype=tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def shout(self, text):
        count = tf.shape(text)[0]
        return {
            "upper": tf.strings.upper(text, encoding="utf-8"),
            "length": tf.strings.length(text, unit="UTF8_CHAR"),
            "version": tf.fill([count], self.version),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def measure(self, image_bytes):
        return {"size": tf.strings.length(image_bytes), "echo_bytes": image_bytes}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="values")])
    def scale(self, values):
        return {"scaled": values * tf.cast(self.version, tf.float32)}


WARMUP = [
    ("serving_default", {"text": ["warm", "up"]}),
    ("measure", {"image_bytes": [b"\x89PNG\x00\xff"]}),
]


def write_version(directory: Path, version: int, warmup=WARMUP) -> Path:
    model = ToyModel(version)
    signatures = {"serving_default": model.shout, "measure": model.measure, "scale": model.scale}
    tf.saved_model.save(model, str(directory), signatures=signatures)
    export_tools.write_warmup_requests(directory, MODEL, warmup)
    return directory


def publish(base: Path, version: int, template: Path | None = None, warmup=WARMUP) -> Path:
    """``base/toy/<version>``, published atomically as ``seqapps export`` does; a copy of
    ``template`` (a written version) with its version variable unchanged when given."""

    def write(directory: Path) -> None:
        if template is not None:
            shutil.copytree(template, directory)
        else:
            write_version(directory, version, warmup)

    return export_tools.publish_atomically(write, base, MODEL, version)
