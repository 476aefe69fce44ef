"""``seqapps serve`` on TF Serving's wire contract, with small models (``toy_models.py``): REST and
gRPC answers, every kind of bad request, version swaps under load, half-written and broken
versions, warm-up, limits, batching and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from apps import cli
from serving.batching import (
    DEFAULT_BATCHING,
    BatchingSettings,
    Dispatcher,
    write_batching_parameters,
)
from serving.server import BackgroundServer, ServerSettings
from serving.tensors import InputSpec, RequestError, inputs_from_json
from tests.serving.toy_models import MODEL, publish, write_version

POLL_SECONDS = 0.1


def settings_for(base, **overrides) -> ServerSettings:
    return ServerSettings(base=base, port=0, grpc_port=0, poll_seconds=POLL_SECONDS, **overrides)


def wait_until(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Client:
    """TF Serving's REST and gRPC APIs of one running server."""

    def __init__(self, server):
        self.rest = f"http://127.0.0.1:{server.rest_port}/v1/models"
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def post(self, path, body, **kwargs):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return requests.post(f"{self.rest}/{path}", data=data, timeout=60, **kwargs)

    def get(self, path):
        return requests.get(f"{self.rest}/{path}", timeout=60)

    def predict_grpc(self, inputs, model=MODEL, signature="", version=None, output_filter=()):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(
                value
                if isinstance(value, type(request.inputs[name]))
                else tf.make_tensor_proto(value)
            )
        request.output_filter.extend(output_filter)
        response = self.predictions.Predict(request, timeout=60)
        return response, {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One written toy version, copied into each test's base directory (saving takes a second)."""
    return write_version(tmp_path_factory.mktemp("toy") / "1", 1)


@pytest.fixture(scope="module")
def served(tmp_path_factory, template):
    base = tmp_path_factory.mktemp("saved_models")
    publish(base, 1, template)
    lines = []
    with BackgroundServer(settings_for(base), log=lines.append) as server:
        client = Client(server)
        yield server, client, lines
        client.channel.close()


def test_status_and_metadata_as_tf_serving_writes_them(served):
    _, client, lines = served
    status = client.get(MODEL)
    assert status.status_code == 200
    assert status.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert client.get(f"{MODEL}/versions/1").json() == status.json()
    metadata = client.get(f"{MODEL}/versions/1/metadata").json()
    assert metadata["model_spec"] == {"name": MODEL, "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "measure", "scale"} <= set(signatures)
    text = signatures["serving_default"]["inputs"]["text"]
    assert text["dtype"] == "DT_STRING" and text["tensor_shape"] == {"dim": [{"size": "-1"}]}
    assert any(re.search(r"toy version 1 .* 2 warm-up requests replayed", line) for line in lines)


def test_predict_in_row_and_columnar_formats(served):
    _, client, _ = served
    rows = client.post(f"{MODEL}:predict", {"instances": ["héllo", "a"]})
    assert rows.status_code == 200, rows.text
    assert rows.json() == {
        "predictions": [
            {"upper": "HÉLLO", "length": 5, "version": 1},
            {"upper": "A", "length": 1, "version": 1},
        ]
    }
    columns = client.post(f"{MODEL}/versions/1:predict", {"inputs": {"text": ["héllo", "a"]}})
    assert columns.json() == {
        "outputs": {"upper": ["HÉLLO", "A"], "length": [5, 1], "version": [1, 1]}
    }
    # A single named input may be given without its name; a single output comes without its.
    scaled = client.post(
        f"{MODEL}:predict", {"signature_name": "scale", "inputs": [[1.0, 2.0, 3.5]]}
    )
    assert scaled.json() == {"outputs": [[1.0, 2.0, 3.5]]}


def test_binary_values_go_as_b64_both_ways(served):
    _, client, _ = served
    data = bytes(range(256))
    body = {"signature_name": "measure", "instances": [{"b64": base64.b64encode(data).decode()}]}
    answer = client.post(f"{MODEL}:predict", body).json()["predictions"][0]
    assert answer["size"] == 256
    assert base64.b64decode(answer["echo_bytes"]["b64"]) == data  # _bytes outputs are b64


BAD_REQUESTS = [
    # (what, path, body, status, words the message must contain)
    ("malformed JSON", "toy:predict", b'{"instances": ["a",', 400, "not valid JSON"),
    ("not an object", "toy:predict", b'["a"]', 400, "must be a JSON object"),
    ("wrong input name", "toy:predict", {"inputs": {"txt": ["a"]}}, 400, "unknown input 'txt'"),
    ("wrong dtype", "toy:predict", {"instances": [1, 2]}, 400, "takes strings; got a number"),
    (
        "missing b64",
        "toy:predict",
        {"signature_name": "measure", "instances": ["raw bytes"]},
        400,
        '{"b64": "<base64 of the bytes>"}',
    ),
    (
        "b64 object without b64",
        "toy:predict",
        {"signature_name": "measure", "inputs": {"image_bytes": [{"b46": "AA=="}]}},
        400,
        'one key, "b64"',
    ),
    (
        "bad base64",
        "toy:predict",
        {"signature_name": "measure", "instances": [{"b64": "%%%"}]},
        400,
        "not valid base64",
    ),
    ("empty batch", "toy:predict", {"instances": []}, 400, "empty"),
    ("empty columns", "toy:predict", {"inputs": {"text": []}}, 400, "empty batch"),
    ("invalid UTF-8", "toy:predict", b'{"instances": ["\xff\xfe"]}', 400, "not valid UTF-8"),
    ("lone surrogate", "toy:predict", b'{"instances": ["\\ud800"]}', 400, "not valid Unicode"),
    ("both formats", "toy:predict", {"instances": ["a"], "inputs": ["a"]}, 400, "not both"),
    ("neither format", "toy:predict", {"signature_name": ""}, 400, "needs"),
    (
        "ragged rows",
        "toy:predict",
        {"signature_name": "scale", "inputs": [[1.0, 2.0, 3.0], [1.0]]},
        400,
        "not rectangular",
    ),
    (
        "wrong shape",
        "toy:predict",
        {"signature_name": "scale", "inputs": [[1.0, 2.0]]},
        400,
        "values: float[None, 3]",
    ),
    ("unknown model", "nope:predict", {"instances": ["a"]}, 404, "Latest(nope)"),
    ("unknown version", "toy/versions/7:predict", {"instances": ["a"]}, 404, "Specific(toy, 7)"),
    (
        "version not a number",
        "toy/versions/x:predict",
        {"instances": ["a"]},
        400,
        "positive integer",
    ),
    (
        "unknown signature",
        "toy:predict",
        {"signature_name": "nope", "instances": ["a"]},
        404,
        "no signature 'nope'",
    ),
    ("unknown verb", "toy:classify", {"examples": []}, 404, "unsupported verb"),
    ("10 MB body", "toy:predict", b'{"instances": ["' + b"a" * 10_000_000 + b'"]}', 413, "larger"),
]


def test_every_bad_request_gets_its_status_and_the_server_keeps_serving(served):
    _, client, _ = served
    for what, path, body, status, words in BAD_REQUESTS:
        response = client.post(path, body)
        assert response.status_code == status, (what, response.status_code, response.text)
        error = response.json()["error"]
        assert words in error, (what, error)
    assert client.get("nope").status_code == 404
    assert client.get("toy/versions/3").status_code == 404
    assert requests.get(client.rest.replace("/v1/models", "/v2/x"), timeout=10).status_code == 404
    good = client.post(f"{MODEL}:predict", {"instances": ["still here"]})
    assert good.status_code == 200 and good.json()["predictions"][0]["upper"] == "STILL HERE"


def test_an_unexpected_failure_is_a_500_in_json_and_the_server_goes_on(served, monkeypatch):
    server, client, lines = served

    async def failing(*args):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(server.dispatcher, "run", failing)
    response = client.post(f"{MODEL}:predict", {"instances": ["a"]})
    assert response.status_code == 500
    assert "the model fell over" in response.json()["error"]
    assert any("failed: RuntimeError" in line for line in lines)
    monkeypatch.undo()
    assert client.post(f"{MODEL}:predict", {"instances": ["a"]}).status_code == 200


@pytest.mark.parametrize(
    "value, words",
    [(2**40, "out of the range of int32"), (1.5, "takes int32"), (True, "takes int32")],
)
def test_numbers_of_the_wrong_kind_or_range_are_refused(value, words):
    specs = {"ids": InputSpec("ids", tf.int32.as_datatype_enum, (-1,))}
    with pytest.raises(RequestError, match=words):
        inputs_from_json({"instances": [value]}, specs, "serving_default")
    inputs, _ = inputs_from_json({"instances": [1, 2]}, specs, "serving_default")
    assert inputs["ids"].dtype == np.int32 and inputs["ids"].tolist() == [1, 2]


def test_grpc_predict_metadata_and_status_with_stock_protos(served):
    _, client, _ = served
    response, outputs = client.predict_grpc({"text": ["héllo", "b"]})
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    assert [t.decode() for t in outputs["upper"]] == ["HÉLLO", "B"]
    _, only = client.predict_grpc({"text": ["x"]}, version=1, output_filter=["length"])
    assert list(only) == ["length"]
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    signatures = get_model_metadata_pb2.SignatureDefMap()
    client.predictions.GetModelMetadata(request, timeout=10).metadata["signature_def"].Unpack(
        signatures
    )
    assert signatures.signature_def["scale"].inputs["values"].dtype == tf.float32.as_datatype_enum
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = MODEL
    (version,) = client.models.GetModelStatus(status, timeout=10).model_version_status
    assert version.version == 1 and version.state == version.AVAILABLE


@pytest.mark.parametrize(
    "inputs, kwargs, code, words",
    [
        ({"text": ["a"]}, {"model": "nope"}, grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
        ({"text": ["a"]}, {"version": 9}, grpc.StatusCode.NOT_FOUND, "Specific(toy, 9)"),
        ({"text": ["a"]}, {"signature": "x"}, grpc.StatusCode.NOT_FOUND, "no signature 'x'"),
        ({"text": [1, 2]}, {}, grpc.StatusCode.INVALID_ARGUMENT, "is int32"),
        ({"txt": ["a"]}, {}, grpc.StatusCode.INVALID_ARGUMENT, "unknown input 'txt'"),
        ({"text": [[b"a"]]}, {}, grpc.StatusCode.INVALID_ARGUMENT, "has shape [1, 1]"),
        ({"text": ["a"]}, {"output_filter": ["nope"]}, grpc.StatusCode.INVALID_ARGUMENT, "nope"),
        ({"text": ["a" * 5_000_000]}, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    ],
)
def test_grpc_errors_carry_tf_serving_codes(served, inputs, kwargs, code, words):
    _, client, _ = served
    with pytest.raises(grpc.RpcError) as raised:
        client.predict_grpc(inputs, **kwargs)
    assert raised.value.code() == code and words in raised.value.details()


def test_a_new_version_replaces_the_old_one_under_load_without_a_failed_request(tmp_path, template):
    """Clients keep sending while version 2 is published: every request succeeds, answers
    switch to version 2 and stay there, and version 1 ends."""
    publish(tmp_path, 1, template)
    with BackgroundServer(settings_for(tmp_path)) as server:
        client = Client(server)
        answers, failures, stop = [], [], threading.Event()

        def send():
            while not stop.is_set():
                response = client.post(f"{MODEL}:predict", {"instances": ["x", "y"]})
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    answers.append((time.monotonic(), response.json()["predictions"][0]["version"]))

        senders = [threading.Thread(target=send) for _ in range(4)]
        for thread in senders:
            thread.start()
        wait_until(lambda: len(answers) >= 20, what="answers from version 1")
        published = time.monotonic()
        publish(tmp_path, 2)  # a new model, saved while requests are running
        wait_until(lambda: any(v == 2 for _, v in answers), what="version 2 to answer")
        switched = time.monotonic()
        wait_until(lambda: sum(1 for t, _ in answers if t > switched + 0.5) >= 20, what="more")
        stop.set()
        for thread in senders:
            thread.join()
        states = {
            s["version"]: s["state"] for s in client.get(MODEL).json()["model_version_status"]
        }
        client.channel.close()
    assert failures == []
    assert {v for t, v in answers if t < published} == {1}
    assert {v for t, v in answers if t > switched + 0.5} == {2}  # in-flight ones finished first
    assert states == {"2": "AVAILABLE", "1": "END"}


def test_half_written_hidden_and_broken_versions_are_never_served(tmp_path, template):
    publish(tmp_path, 1, template)
    lines = []
    with BackgroundServer(settings_for(tmp_path), log=lines.append) as server:
        client = Client(server)
        # Our exports' temporary directory, complete but hidden: never looked at.
        shutil.copytree(template, tmp_path / MODEL / ".tmp-5-abcd")
        # A version being copied in by hand: its variables are not there yet.
        partial = tmp_path / MODEL / "3"
        partial.mkdir()
        shutil.copy(template / "saved_model.pb", partial / "saved_model.pb")
        (partial / "variables").mkdir()
        time.sleep(10 * POLL_SECONDS)
        statuses = client.get(MODEL).json()["model_version_status"]
        assert {s["version"]: s["state"] for s in statuses} == {"3": "START", "1": "AVAILABLE"}
        assert (
            client.post(f"{MODEL}:predict", {"instances": ["a"]}).json()["predictions"][0][
                "version"
            ]
            == 1
        )
        # The copy completes: version 3 (a copy of version 1's files, so it answers 1) loads.
        shutil.rmtree(partial)
        shutil.copytree(template, partial)
        wait_until(lambda: any("toy version 3" in line and "loaded" in line for line in lines))
        # A broken version 4: reported, not retried, and version 3 goes on serving.
        broken = tmp_path / MODEL / "4"
        shutil.copytree(template, broken)
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        wait_until(lambda: any("toy version 4 failed to load" in line for line in lines))
        time.sleep(5 * POLL_SECONDS)
        status = client.get(f"{MODEL}/versions/4").json()["model_version_status"][0]
        assert status["state"] == "END" and status["status"]["error_code"] == "UNKNOWN"
        assert status["status"]["error_message"]
        assert sum("toy version 4 failed" in line for line in lines) == 1
        _, outputs = client.predict_grpc({"text": ["b"]})
        assert outputs["version"].tolist() == [1]
        assert client.get(f"{MODEL}/versions/3").json()["model_version_status"][0]["state"] == (
            "AVAILABLE"
        )
        client.channel.close()
    assert not any("version 5" in line for line in lines)


def test_a_version_whose_warmup_fails_is_not_served(tmp_path, template):
    publish(tmp_path, 1, template)
    lines = []
    with BackgroundServer(settings_for(tmp_path), log=lines.append) as server:
        publish(tmp_path, 2, warmup=[("serving_default", {"wrong_name": ["a"]})])
        wait_until(lambda: any("version 2 failed" in line for line in lines))
        client = Client(server)
        assert (
            client.post(f"{MODEL}:predict", {"instances": ["a"]}).json()["predictions"][0][
                "version"
            ]
            == 1
        )
        client.channel.close()
    assert "still serving version 1" in next(line for line in lines if "version 2 failed" in line)


class BlockingVersion:
    """Stands in for a loaded version: each call waits until ``release`` is set."""

    name, version = "blocking", 1

    def __init__(self):
        self.release = threading.Event()
        self.calls = []

    def call(self, signature, inputs):
        self.calls.append(len(next(iter(inputs.values()))))
        self.release.wait(30)
        return {"echo": next(iter(inputs.values()))}


def test_requests_beyond_the_queue_are_refused_at_once():
    async def scenario():
        dispatcher = Dispatcher(max_concurrent=1, max_queued=1)
        version = BlockingVersion()
        first = asyncio.ensure_future(dispatcher.run(version, "", {"x": np.array([1])}))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(dispatcher.run(version, "", {"x": np.array([2])}))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestError) as refused:
            await dispatcher.run(version, "", {"x": np.array([3])})
        version.release.set()
        answers = [await first, await second]
        dispatcher.shutdown()
        return refused.value, answers

    refused, answers = asyncio.run(scenario())
    assert refused.code == "RESOURCE_EXHAUSTED" and refused.http_status == 429
    assert "retry later" in refused.message
    assert [a["echo"].tolist() for a in answers] == [[1], [2]]


def test_batching_merges_concurrent_requests_and_splits_their_answers():
    async def scenario():
        batching = BatchingSettings(max_batch_size=8, batch_timeout_micros=200_000)
        dispatcher = Dispatcher(max_concurrent=2, max_queued=100, batching=batching)
        version = BlockingVersion()
        version.release.set()
        requests_ = [np.arange(i, i + 1 + i % 2) for i in range(6)]  # 1 or 2 rows each
        answers = await asyncio.gather(
            *(dispatcher.run(version, "", {"x": rows}) for rows in requests_)
        )
        dispatcher.shutdown()
        return requests_, answers, version.calls

    sent, answers, calls = asyncio.run(scenario())
    for rows, answer in zip(sent, answers, strict=True):
        np.testing.assert_array_equal(answer["echo"], rows)
    assert sum(calls) == 9 and len(calls) < len(sent)  # 9 rows in fewer calls than requests


def test_batched_answers_over_the_wire_equal_unbatched_ones(tmp_path, template):
    publish(tmp_path, 1, template)
    texts = [f"text number {i}" for i in range(12)]
    batching = BatchingSettings(max_batch_size=4, batch_timeout_micros=20_000)
    with BackgroundServer(settings_for(tmp_path, batching=batching)) as server:
        client = Client(server)
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(lambda t: client.post(f"{MODEL}:predict", {"instances": [t]}), texts)
            )
        calls = server.dispatcher.calls
        client.channel.close()
    assert [a.json()["predictions"][0]["upper"] for a in answers] == [t.upper() for t in texts]
    assert calls < len(texts) - 1  # warm-up calls are not counted; requests were merged


def test_batching_parameters_file_round_trips_and_names_mistakes(tmp_path):
    path = tmp_path / "batching_parameters.txt"
    write_batching_parameters(path, DEFAULT_BATCHING, "why\nthese values")
    text = path.read_text()
    assert text.startswith("# why\n# these values\n")
    assert "max_batch_size {\n  value: 64\n}" in text
    assert BatchingSettings.read(path) == DEFAULT_BATCHING
    path.write_text("max_batch_size { value: 8 }\nbatch_timeout_micro { value: 5 }\n")
    with pytest.raises(ValueError, match=r"2:1.*batch_timeout_micro"):
        BatchingSettings.read(path)
    path.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 6\n")
    with pytest.raises(ValueError, match="end with max_batch_size"):
        BatchingSettings.read(path)


def test_serve_command_errors_name_the_problem(tmp_path, capsys):
    assert cli.main(["serve", "--base", str(tmp_path / "missing")]) == 2
    assert "--base" in capsys.readouterr().err
    assert cli.main(["serve", "--base", str(tmp_path), "--batching-parameters-file", "no.txt"]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["serve", "--port", "http"])


def test_the_command_binds_localhost_and_stops_cleanly_on_sigterm(tmp_path, template):
    publish(tmp_path, 1, template)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apps.cli",
            "serve",
            "--base",
            str(tmp_path),
            "--port",
            "0",
            "--grpc-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("REST on"):
                break
        match = re.search(
            r"REST on http://127\.0\.0\.1:(\d+)/v1/models/NAME, gRPC on 127\.0\.0\.1:(\d+)", line
        )
        assert match, lines
        url = f"http://127.0.0.1:{match[1]}/v1/models/{MODEL}:predict"
        assert requests.post(url, json={"instances": ["hi"]}, timeout=30).status_code == 200
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "SIGTERM: stopping" in rest and "stopped after" in rest
