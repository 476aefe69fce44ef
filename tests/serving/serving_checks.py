"""Checks every app's tests run on their export: it passed the op audit (nothing TF Serving
lacks), and ``seqapps serve`` answers the app's requests over REST (rows and columns) and gRPC
exactly as the SavedModel does when called in-process."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc
import numpy as np
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from apps.common import export
from serving.server import BackgroundServer, ServerSettings
from serving.tensors import BYTES_SUFFIX, outputs_to_json


def check_passed_the_op_audit(export_dir: Path, tensorflow_text_ops: list[str]) -> None:
    """``seqapps.json`` records the audit of every op, with the tensorflow-text ones named, and
    the graph has no op that runs only under XLA and no device pin."""
    serving_ops = export.read_export_config(export_dir)["serving_ops"]
    ops = export.graph_ops(export_dir)
    assert serving_ops == {"op_count": len(ops), "tensorflow_text_ops": tensorflow_text_ops}
    assert not [op for op in ops if op.startswith(export.XLA_OP_PREFIX)]
    assert export.device_pins(export_dir) == []


def _json_value(name: str, value):
    if isinstance(value, bytes):
        try:
            if not name.endswith(BYTES_SUFFIX):
                return value.decode("utf-8")
        except UnicodeDecodeError:
            pass  # JSON carries only text: other bytes go as base64, which any string input takes
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_json_value(name, item) for item in value]
    return value


def assert_json_close(actual, expected, where: str = "") -> None:
    """Equal JSON, floats within 1e-5."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), (where, actual)
        for key in expected:
            assert_json_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual)
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_json_close(a, e, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert abs(actual - expected) <= 1e-5 * max(1.0, abs(expected)), (where, actual, expected)
    else:
        assert actual == expected, (where, actual, expected)


def check_served_like_the_export(export_dir: Path, requests_: list[tuple[str, dict]]) -> None:
    """Serves ``export_dir``'s base directory and sends each ``(signature, inputs)`` request
    (inputs as lists of ``str`` or ``bytes``) over REST and gRPC to its version, which must be
    the newest there when the server starts."""
    export_dir = Path(export_dir)
    name, base = export_dir.parent.name, export_dir.parent.parent
    settings = ServerSettings(base=base, port=0, grpc_port=0, poll_seconds=0.2)
    with BackgroundServer(settings) as server:
        version = int(export_dir.name)  # the module's other tests may publish newer ones
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/{name}/versions/{version}:predict"
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for signature, inputs in requests_:
            # The SavedModel as the server loaded it, called directly: what the wire must carry.
            served = server.manager.lookup(name, version)
            arrays = {key: np.array(values, dtype=object) for key, values in inputs.items()}
            expected = served.call(signature, arrays)
            columns = {key: _json_value(key, list(values)) for key, values in inputs.items()}
            body = {"signature_name": signature, "inputs": columns}
            response = requests.post(url, json=body, timeout=120)
            assert response.status_code == 200, (signature, response.text)
            assert_json_close(response.json(), outputs_to_json(expected, row_format=False))
            if len(inputs) == 1:  # rows: one value per example
                (key,) = inputs
                rows = {"signature_name": signature, "instances": columns[key]}
                response = requests.post(url, json=rows, timeout=120)
                assert response.status_code == 200, (signature, response.text)
                assert_json_close(response.json(), outputs_to_json(expected, row_format=True))
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = signature
            request.model_spec.version.value = version
            for key, values in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(values))
            answer = stub.Predict(request, timeout=120)
            assert sorted(answer.outputs) == sorted(expected), signature
            for key, value in expected.items():
                got = tf.make_ndarray(answer.outputs[key])
                if value.dtype.kind == "f":
                    np.testing.assert_allclose(got, value, atol=1e-5)
                else:
                    np.testing.assert_array_equal(got, value)
        channel.close()
