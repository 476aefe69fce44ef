"""The op audit of every export (``apps/common/export.py``), on a tiny SavedModel edited by hand.

A server can run an export only if it registers every op of its graph (TF Serving links core
TensorFlow and tensorflow-text) and may place every op itself. The tiny model uses one op of
each library; copies of it get a made-up op or a device pin written into ``saved_model.pb``.
Each app's own export is audited by its test module.
"""

import shutil
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_text

from apps.common import export
from apps.common.errors import SeqappsError

TOKENIZE_OP = "TFText>WhitespaceTokenizeWithOffsetsV2"  # tensorflow-text's, not core TensorFlow's


class ShoutedTokens(tf.Module):
    """Upper-cases text (core TensorFlow) and splits it on whitespace (tensorflow-text)."""

    def __init__(self):
        super().__init__()
        self.tokenizer = tensorflow_text.WhitespaceTokenizer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        return {"tokens": self.tokenizer.tokenize(tf.strings.upper(text)).to_tensor()}


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory) -> Path:
    export_dir = tmp_path_factory.mktemp("audit") / "clean"
    module = ShoutedTokens()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return export_dir


def edited_copy(export_dir: Path, destination: Path, edit) -> Path:
    """A copy of the export whose graph ``edit(graph_def)`` changed in place."""
    shutil.copytree(export_dir, destination)
    saved_model = export.read_saved_model(destination)
    edit(saved_model.meta_graphs[0].graph_def)
    (destination / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    return destination


def function_using(graph, op: str):
    return next(f for f in graph.library.function if any(n.op == op for n in f.node_def))


def node_of(function, op: str):
    return next(node for node in function.node_def if node.op == op)


def test_a_clean_export_passes_and_its_tensorflow_text_ops_are_named(clean_export):
    graph = export.read_saved_model(clean_export).meta_graphs[0].graph_def
    ops = export.graph_ops(clean_export)
    assert ops[TOKENIZE_OP] == [function_using(graph, TOKENIZE_OP).signature.name]
    summary = export.check_in_fresh_process(clean_export).serving_ops
    assert summary == {"op_count": len(ops), "tensorflow_text_ops": [TOKENIZE_OP]}


def test_a_second_audit_of_known_ops_needs_no_process(clean_export, monkeypatch):
    export.check_in_fresh_process(clean_export)

    def no_process(*args, **kwargs):
        raise AssertionError("a fresh process was started for ops already sorted out")

    monkeypatch.setattr(export.subprocess, "run", no_process)
    summary = export.check_in_fresh_process(clean_export).serving_ops
    assert summary["tensorflow_text_ops"] == [TOKENIZE_OP]
    with pytest.raises(AssertionError, match="fresh process"):  # answers still need one
        export.check_in_fresh_process(clean_export, [("serving_default", {"text": ["a"]})])


def test_an_op_of_neither_library_is_refused_with_the_function_that_uses_it(clean_export, tmp_path):
    renamed = []

    def made_up_op(graph):
        function = function_using(graph, "StringUpper")
        node_of(function, "StringUpper").op = "SeqappsMadeUpOp"
        renamed.append(function.signature.name)

    broken = edited_copy(clean_export, tmp_path / "broken", made_up_op)
    # With requests, as an export with its answers checked: the audit's message, not the
    # traceback of the load that fails on the op.
    requests = [("serving_default", {"text": ["a b"]})]
    with pytest.raises(SeqappsError) as raised:
        export.check_in_fresh_process(broken, requests)
    message = str(raised.value)
    assert f"SeqappsMadeUpOp (in {renamed[0]})" in message
    assert "TF Serving links those two op libraries only" in message
    assert TOKENIZE_OP not in message and "Traceback" not in message


def test_an_op_that_runs_only_under_xla_is_refused(tmp_path):
    ops = {"XlaDynamicUpdateSlice": ["__inference_decode_12"], "StringUpper": ["graph"]}
    libraries = {"XlaDynamicUpdateSlice": "tensorflow", "StringUpper": "tensorflow"}
    with pytest.raises(SeqappsError) as raised:
        export.check_serving_ops(tmp_path, ops, libraries)
    assert "XlaDynamicUpdateSlice (in __inference_decode_12)" in str(raised.value)
    assert "only when XLA compiles them" in str(raised.value)


def test_a_device_pin_in_a_serving_function_is_refused(clean_export, tmp_path):
    def pin_to_gpu(graph):
        node_of(function_using(graph, "StringUpper"), "StringUpper").device = "/device:GPU:0"

    pinned = edited_copy(clean_export, tmp_path / "pinned", pin_to_gpu)
    with pytest.raises(SeqappsError, match=r"1 node\(s\) pinned to a device: __inference_.*"):
        export.check_in_fresh_process(pinned)  # refused from the graph alone, before any process
    (pin,) = export.device_pins(pinned)
    assert pin.endswith("(StringUpper) on /device:GPU:0")


def test_only_cpu_pins_of_tensorflow_s_own_saver_are_allowed(clean_export, tmp_path):
    graph = export.read_saved_model(clean_export).meta_graphs[0].graph_def
    saver = function_using(graph, "RestoreV2")
    assert node_of(saver, "RestoreV2").device == "/device:CPU:0"  # as TensorFlow writes it
    assert export.device_pins(clean_export) == []

    def restore_on_gpu(graph):
        node_of(function_using(graph, "RestoreV2"), "RestoreV2").device = "/device:GPU:0"

    moved = edited_copy(clean_export, tmp_path / "restore_on_gpu", restore_on_gpu)
    assert export.device_pins(moved) == [
        f"{saver.signature.name}: {node_of(saver, 'RestoreV2').name} (RestoreV2) on /device:GPU:0"
    ]
