"""Exports in TensorFlow Serving layout, checked, published atomically, with warm-up requests.

``saved_models/<app>/<version>/`` is what ``tensorflow_model_server --model_base_path`` watches.
A version is written in full to a hidden temporary directory beside it (TF Serving ignores names
that are not integers), with

- ``assets.extra/seqapps.json``: the export config (app, architecture, hyperparameters, the
  data it was trained on, each signature's inputs and outputs, and what the task adds, such as
  label names);
- ``assets.extra/tf_serving_warmup_requests``: requests TF Serving replays before it serves;

then audited (every op of its graph must be one that TF Serving links, from core TensorFlow or
tensorflow-text, and no node outside TensorFlow's own saver may be pinned to a device), loaded
in a fresh Python process that imports only TensorFlow and tensorflow-text (as TF Serving has no
Python at all), where the warm-up requests must give the answers the run directory gives here,
and only then renamed into place: a watching server never loads half a model, nor one that
cannot answer.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2

from apps.common.errors import SeqappsError

EXPORT_CONFIG = "seqapps.json"  # in assets.extra/: what the export is, for seqapps itself
WARMUP_FILE = "tf_serving_warmup_requests"


MIXED_FLOAT16 = "mixed_float16"


def _float32_policies_to_mixed(node):
    if isinstance(node, dict):
        policy = node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
        if policy and node.get("config", {}).get("name") == "float32":
            return {**node, "config": {**node["config"], "name": MIXED_FLOAT16}}
        return {key: _float32_policies_to_mixed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_policies_to_mixed(value) for value in node]
    return node


def mixed_float16_copy(model):
    """The model with every float32 layer under Keras' ``mixed_float16`` policy (computing in
    float16, variables kept in float32, so the trained weights carry over unchanged): what a
    GPU's tensor cores run at twice the float32 rate and more. Rebuilt from the model's own
    config, so it holds for every app's model without knowing its layers."""
    import keras

    config = _float32_policies_to_mixed(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def with_float32_outputs(function):
    """A serving function whose float16 outputs are cast to float32, so that the float16
    variant keeps the signatures (names, dtypes) of the float32 export and its clients."""
    import inspect

    specs = function.input_signature

    def serve(*inputs):
        outputs = function(*inputs)
        return {
            name: tf.cast(value, tf.float32) if value.dtype == tf.float16 else value
            for name, value in outputs.items()
        }

    # The SavedModel's input names come from the Python parameters: keep the function's own.
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    serve.__signature__ = inspect.Signature([inspect.Parameter(s.name, kind) for s in specs])
    return tf.function(serve, input_signature=specs)


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


# === The op audit: what a server must have to run the graph ===

# Where FRESH_PROCESS_SCRIPT finds an op: the names it writes.
TENSORFLOW, TENSORFLOW_TEXT, UNKNOWN = "tensorflow", "tensorflow-text", "unknown"
GRAPH = "graph"  # where graph_ops and device_pins put the top-level graph's nodes
# The ops of tensorflow/compiler/tf2xla/ops (XlaDynamicUpdateSlice, which keras.ops.slice_update
# becomes, ...) are registered in core TensorFlow but have no kernel of their own: TensorFlow
# compiles each with XLA as it runs, which TF Serving does on the CPU only with
# --xla_cpu_compilation_enabled, and its GPU image has failed to (tensorflow/serving#2217). The
# audit refuses them with the others a server may lack.
XLA_OP_PREFIX = "Xla"


def read_saved_model(export_dir: Path) -> saved_model_pb2.SavedModel:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    return saved_model


def node_lists(graph) -> list[tuple[str, Sequence]]:
    """``(place, nodes)`` for the top-level graph and each function of its library."""
    functions = [(f.signature.name, f.node_def) for f in graph.library.function]
    return [(GRAPH, graph.node), *functions]


def called_functions(node, library: set[str]) -> list[str]:
    """The library functions a node calls: a call's ``f``, While's ``cond`` and ``body``, If's
    branches, or the function a node names as its op."""
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        names += [value.func.name] if value.func.name else []
        names += [function.name for function in value.list.func]
    return names


def graph_ops(export_dir: Path) -> dict[str, list[str]]:
    """Every op type of the export, with the places that use it: ``"graph"`` and/or names of
    library functions. A node whose op is a library function's name calls that function: it is
    not an op a server has to register."""
    places: dict[str, set[str]] = {}
    for meta_graph in read_saved_model(export_dir).meta_graphs:
        library = {f.signature.name for f in meta_graph.graph_def.library.function}
        for place, nodes in node_lists(meta_graph.graph_def):
            for node in nodes:
                if node.op not in library:
                    places.setdefault(node.op, set()).add(place)
    return {op: sorted(where) for op, where in sorted(places.items())}


def reached_from(graph, tensor_names: Iterable[str]) -> tuple[set[str], set[str]]:
    """The graph nodes that the tensors (``"name:0"``, ``"^name"``, ``"name"``) depend on, and the
    library functions those nodes call, directly or through other functions."""
    nodes = {node.name: node for node in graph.node}
    bodies = {f.signature.name: f for f in graph.library.function}
    library = set(bodies)

    def node_name(tensor_name: str) -> str:
        return tensor_name.lstrip("^").split(":")[0]

    pending = [node_name(t) for t in tensor_names if t]
    reached_nodes: set[str] = set()
    calls: list[str] = []
    while pending:
        name = pending.pop()
        if name in reached_nodes or name not in nodes:
            continue
        reached_nodes.add(name)
        pending += [node_name(t) for t in nodes[name].input]
        calls += called_functions(nodes[name], library)
    reached_functions: set[str] = set()
    while calls:
        name = calls.pop()
        if name in reached_functions or name not in bodies:
            continue
        reached_functions.add(name)
        for node in bodies[name].node_def:
            calls += called_functions(node, library)
    return reached_nodes, reached_functions


def device_pins(export_dir: Path) -> list[str]:
    """The nodes pinned to a device, as ``"<place>: <node> (<op>) on <device>"``, but for the
    CPU pins of TensorFlow's own saver.

    A SavedModel for TF Serving leaves placement to the server: a node pinned to a GPU keeps a
    model off a machine without that GPU, one pinned to the CPU copies tensors off the GPU on
    every request. TensorFlow itself pins the saver (SaveV2, RestoreV2, MergeV2Checkpoints and
    the file-name ops around them, reached from the meta graph's ``saver_def``) to the CPU,
    where those ops have their only kernels: TF Serving runs the restore once, at load, and
    never the save. Those CPU pins are allowed, as long as no signature reaches the node; any
    other non-empty device is a pin.
    """
    pins = []
    for meta_graph in read_saved_model(export_dir).meta_graphs:
        graph, saver = meta_graph.graph_def, meta_graph.saver_def
        saver_tensors = (saver.filename_tensor_name, saver.save_tensor_name, saver.restore_op_name)
        saver_nodes, saver_functions = reached_from(graph, saver_tensors)
        served_tensors = [
            tensor.name
            for signature in meta_graph.signature_def.values()
            for tensor in (*signature.inputs.values(), *signature.outputs.values())
        ]
        served_nodes, served_functions = reached_from(graph, served_tensors)
        saver_only_nodes = saver_nodes - served_nodes
        saver_only_functions = saver_functions - served_functions
        for place, nodes in node_lists(graph):
            for node in nodes:
                if not node.device:
                    continue
                saver_only = place in saver_only_functions or (
                    place == GRAPH and node.name in saver_only_nodes
                )
                on_cpu = tf.DeviceSpec.from_string(node.device).device_type == "CPU"
                if not (saver_only and on_cpu):
                    pins.append(f"{place}: {node.name} ({node.op}) on {node.device}")
    return pins


def shortened(items: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def check_serving_ops(
    export_dir: Path, ops: dict[str, list[str]], op_libraries: dict[str, str]
) -> dict:
    """The audit's summary for ``seqapps.json``; a SeqappsError naming each op of ``ops`` (from
    ``graph_ops``) that ``op_libraries`` (op -> ``"tensorflow"``, ``"tensorflow-text"`` or
    ``"unknown"``) finds in neither library, with the functions that use it."""
    unknown = [op for op in ops if op_libraries.get(op, UNKNOWN) == UNKNOWN]
    if unknown:
        named = "; ".join(f"{op} (in {shortened(ops[op])})" for op in unknown)
        raise SeqappsError(
            f"{export_dir}: the graph uses ops that are neither core TensorFlow nor "
            f"tensorflow-text: {named}. TF Serving links those two op libraries only: build the "
            "serving functions from their ops, or serve with a TF Serving build that links the rest"
        )
    compiled_only = [op for op in ops if op.startswith(XLA_OP_PREFIX)]
    if compiled_only:
        named = "; ".join(f"{op} (in {shortened(ops[op])})" for op in compiled_only)
        raise SeqappsError(
            f"{export_dir}: the graph uses ops that run only when XLA compiles them: {named}. "
            "TF Serving does not compile with XLA by default (keras.ops.slice_update becomes "
            "XlaDynamicUpdateSlice on TensorFlow): build the serving functions from other ops"
        )
    return {
        "op_count": len(ops),
        "tensorflow_text_ops": [op for op in ops if op_libraries[op] == TENSORFLOW_TEXT],
    }


def refuse_device_pins(export_dir: Path) -> None:
    pins = device_pins(export_dir)
    if pins:
        raise SeqappsError(
            f"{export_dir}: {len(pins)} node(s) pinned to a device: {shortened(pins, 5)}. "
            "A SavedModel for TF Serving must let the server place its ops; build the serving "
            "functions outside any tf.device() scope"
        )


# Runs in a fresh interpreter (python -I, elsewhere than the project): imports only TensorFlow
# and tensorflow-text, as TF Serving would have them. It writes where each of the export's ops
# comes from before it loads the export (which fails on an op that nothing registers), then
# answers the requests it is given, if any.
FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import base64, json, sys
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.python.framework import op_def_registry

    def decode(text):
        return tf.make_ndarray(tensor_pb2.TensorProto.FromString(base64.b64decode(text)))

    def encode(value):
        proto = tf.make_tensor_proto(value)
        return base64.b64encode(proto.SerializeToString()).decode("ascii")

    export_dir, job_file, op_libraries_file = sys.argv[1:4]
    job = json.load(open(job_file))
    libraries = {op: "tensorflow" for op in job["ops"] if op_def_registry.get(op)}
    # Its import loads every op library of tensorflow-text (none waits for a submodule).
    import tensorflow_text  # noqa: F401  (TF Serving links these ops)
    for op in set(job["ops"]) - set(libraries):
        libraries[op] = "tensorflow-text" if op_def_registry.get(op) else "unknown"
    json.dump(libraries, open(op_libraries_file, "w"))
    if "unknown" in libraries.values() or not job["requests"]:
        sys.exit(0)
    loaded = tf.saved_model.load(export_dir)
    answers = []
    for signature, inputs in job["requests"]:
        function = loaded.signatures[signature]
        outputs = function(**{name: tf.constant(decode(v)) for name, v in inputs.items()})
        answers.append({name: encode(value.numpy()) for name, value in outputs.items()})
    project = sorted({m.split(".")[0] for m in sys.modules} & {"apps", "seqlayers", "tuning"})
    print(json.dumps({"answers": answers, "project_modules": project}))
    """
)


# Which library registers an op depends only on the installed TensorFlow and tensorflow-text:
# what a fresh process found is kept for this one, so that an audit alone (--no-check) of ops
# already sorted out, a second export of the same model say, needs no process of its own.
_OP_LIBRARIES: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class FreshProcessCheck:
    """What ``check_in_fresh_process`` found: the op audit's summary, an answer per request."""

    serving_ops: dict
    answers: list[dict[str, np.ndarray]]


def check_in_fresh_process(
    export_dir: Path, requests: Sequence[tuple[str, dict[str, list]]] = (), timeout: float = 600
) -> FreshProcessCheck:
    """Audits the export's ops and answers ``requests``, in one fresh Python process that imports
    nothing but TensorFlow and tensorflow-text; without requests, the audit alone.

    The ops are sorted out there, not here, because this process's imports (Keras, the project,
    whatever a test loaded) may have registered ops that a server would not have. Raises
    SeqappsError for a device pin (``device_pins``, before any process starts), an op of
    neither library (``check_serving_ops``), a failure of the process, or an import of this
    project's modules.
    """
    refuse_device_pins(export_dir)
    ops = graph_ops(export_dir)
    if not requests and set(ops) <= set(_OP_LIBRARIES):
        return FreshProcessCheck(check_serving_ops(export_dir, ops, _OP_LIBRARIES), [])
    encoded = [
        [signature, {name: encode_tensor(values) for name, values in inputs.items()}]
        for signature, inputs in requests
    ]
    with tempfile.TemporaryDirectory() as scratch:
        job_file = Path(scratch) / "job.json"
        job_file.write_text(json.dumps({"ops": sorted(ops), "requests": encoded}))
        op_libraries_file = Path(scratch) / "op_libraries.json"
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        absolute = str(Path(export_dir).resolve())  # the process runs elsewhere
        arguments = [absolute, str(job_file), str(op_libraries_file)]
        completed = subprocess.run(
            [sys.executable, "-I", "-c", FRESH_PROCESS_SCRIPT, *arguments],
            capture_output=True,
            text=True,
            cwd=scratch,
            env=environment,
            timeout=timeout,
        )
        op_libraries = (
            json.loads(op_libraries_file.read_text()) if op_libraries_file.exists() else None
        )
    # The traceback, without the native start-up lines before it.
    error = completed.stderr[completed.stderr.rfind("Traceback") :][-3000:]
    failure = SeqappsError(f"{export_dir}: the export failed in a fresh Python process:\n{error}")
    if op_libraries is None:  # it failed before it sorted the ops out
        raise failure
    _OP_LIBRARIES.update(op_libraries)
    serving_ops = check_serving_ops(export_dir, ops, op_libraries)  # before a load's failure
    if completed.returncode != 0:
        raise failure
    if not requests:
        return FreshProcessCheck(serving_ops, [])
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if result["project_modules"]:
        raise SeqappsError(
            f"{export_dir}: serving it imported this project's modules "
            f"{result['project_modules']}; an export must need only TensorFlow"
        )
    answers = [
        {name: decode_tensor(value) for name, value in answer.items()}
        for answer in result["answers"]
    ]
    return FreshProcessCheck(serving_ops, answers)


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
