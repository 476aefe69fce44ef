"""Requests and answers as TF Serving writes them: JSON (REST) and ``TensorProto`` (gRPC).

Both wire formats become ``{input name: numpy array}``, checked against the signature (names,
dtypes, ranks and fixed dimensions) before anything runs, and every problem is a
``RequestError`` whose message names the input, the value and what was expected. The rules are
TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest):

- row format: ``{"instances": [...]}`` (one value per example for a single input, one object of
  named values per example otherwise) answered by ``{"predictions": [...]}``;
- columnar format: ``{"inputs": value or {name: value}}`` answered by ``{"outputs": ...}``;
- binary strings as ``{"b64": "..."}``; outputs whose name ends in ``_bytes`` are written so. We
  require the ``b64`` object for inputs whose name ends in ``_bytes`` (captioning's
  ``image_bytes``): TF Serving would take a plain string there and fail inside the graph with a
  message about image decoding instead of about the request.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import types_pb2

BYTES_SUFFIX = "_bytes"

# gRPC status codes and the HTTP status TF Serving's REST handler gives each (the mapping of
# google.rpc.Code to HTTP).
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
}


class RequestError(Exception):
    """A request the server refuses: ``code`` is the gRPC status name, ``message`` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def invalid(message: str) -> RequestError:
    return RequestError("INVALID_ARGUMENT", message)


@dataclass(frozen=True)
class InputSpec:
    """One input of a signature: its dtype (a ``types_pb2`` enum) and its shape (``None`` for an
    unknown rank, ``-1`` for an unknown dimension)."""

    name: str
    dtype: int
    shape: tuple[int, ...] | None

    @property
    def dtype_name(self) -> str:
        return types_pb2.DataType.Name(self.dtype)[3:].lower()  # DT_STRING -> string

    def describe(self) -> str:
        dims = (
            "..."
            if self.shape is None
            else ", ".join("None" if d < 0 else str(d) for d in self.shape)
        )
        return f"{self.name}: {self.dtype_name}[{dims}]"


def input_specs(signature_def) -> dict[str, InputSpec]:
    specs = {}
    for name, info in signature_def.inputs.items():
        shape = None
        if not info.tensor_shape.unknown_rank:
            shape = tuple(dim.size for dim in info.tensor_shape.dim)
        specs[name] = InputSpec(name, info.dtype, shape)
    return specs


NUMPY_DTYPES = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_HALF: np.float16,
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_UINT16: np.uint16,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_UINT64: np.uint64,
    types_pb2.DT_BOOL: np.bool_,
    types_pb2.DT_STRING: object,
}


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _string_leaf(value, spec: InputSpec, where: str) -> bytes:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise invalid(
                f'{where}: a binary value must be an object with one key, "b64", holding '
                f"base64 text; got {_shown(value)}"
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise invalid(f'{where}: the "b64" value is not valid base64 ({error})') from None
    if spec.name.endswith(BYTES_SUFFIX):
        raise invalid(
            f"{where} takes binary values, written as "
            f'{{"b64": "<base64 of the bytes>"}}; got {_json_kind(value)}'
        )
    if not isinstance(value, str):
        raise invalid(f"{where} takes strings; got {_json_kind(value)} {_shown(value)}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, as "\ud800" in JSON
        raise invalid(f"{where}: the string {_shown(value)} is not valid Unicode") from None


def _number_leaf(value, spec: InputSpec, where: str):
    integral = np.issubdtype(NUMPY_DTYPES[spec.dtype], np.integer)
    if spec.dtype == types_pb2.DT_BOOL:
        if isinstance(value, bool):
            return value
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        pass
    elif not integral or isinstance(value, int):
        return value
    raise invalid(
        f"{where} takes {spec.dtype_name} values; got {_json_kind(value)} {_shown(value)}"
    )


def _leaves_to_array(value, spec: InputSpec, where: str) -> np.ndarray:
    """A nested JSON list as an array of the input's dtype, checking it is rectangular."""
    if spec.dtype not in NUMPY_DTYPES:
        raise invalid(f"input {spec.name!r} has dtype {spec.dtype_name}, which JSON cannot carry")
    leaf = _string_leaf if spec.dtype == types_pb2.DT_STRING else _number_leaf

    def shape_of(item) -> tuple[int, ...]:
        if isinstance(item, list):
            if not item:
                return (0,)
            inner = {shape_of(element) for element in item}
            if len(inner) > 1:
                raise invalid(
                    f"{where} is not rectangular (lists of different lengths at the same depth)"
                )
            return (len(item), *inner.pop())
        return ()

    def convert(item):
        if isinstance(item, list):
            return [convert(element) for element in item]
        return leaf(item, spec, where)

    shape = shape_of(value)
    converted = convert(value)
    array = np.empty(shape, dtype=NUMPY_DTYPES[spec.dtype])
    if shape == ():
        array[()] = converted
    elif array.size:
        try:
            flat = np.array(converted, dtype=NUMPY_DTYPES[spec.dtype]).reshape(-1)
        except OverflowError:
            raise invalid(f"{where} has a value out of the range of {spec.dtype_name}") from None
        array.reshape(-1)[:] = flat
    return array


def check_shape(array: np.ndarray, spec: InputSpec) -> None:
    """Refuses a rank or a fixed dimension the signature does not take, and an empty batch."""
    if spec.shape is not None:
        if array.ndim != len(spec.shape) or any(
            want >= 0 and got != want for want, got in zip(spec.shape, array.shape, strict=True)
        ):
            raise invalid(
                f"input {spec.name!r} has shape {list(array.shape)}; the signature takes "
                f"{spec.describe()}"
            )
    if array.ndim and array.shape[0] == 0:
        raise invalid(f"input {spec.name!r} is an empty batch: send at least one example")


def _is_b64(value) -> bool:
    return isinstance(value, dict) and "b64" in value


def _check_names(given, specs: dict[str, InputSpec], signature: str) -> None:
    missing, unknown = sorted(set(specs) - set(given)), sorted(set(given) - set(specs))
    if missing or unknown:
        parts = [f"unknown input {name!r}" for name in unknown]
        parts += [f"missing input {name!r}" for name in missing]
        expected = ", ".join(spec.describe() for spec in specs.values())
        raise invalid(f"{'; '.join(parts)}: signature {signature!r} takes ({expected})")


def inputs_from_json(body: dict, specs: dict[str, InputSpec], signature: str):
    """``(inputs, row_format)`` of a parsed predict request body."""
    if "instances" in body and "inputs" in body:
        raise invalid('a request has either "instances" (rows) or "inputs" (columns), not both')
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise invalid(
            f'unknown request fields {unknown}: a predict request has "signature_name" and '
            f'one of "instances" or "inputs"'
        )
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise invalid(f'"instances" must be a list of examples; got {_json_kind(instances)}')
        if not instances:
            raise invalid('"instances" is an empty list: send at least one example')
        named = all(isinstance(row, dict) and not _is_b64(row) for row in instances)
        if len(specs) == 1 and not named:
            (name,) = specs
            columns = {name: instances}
        else:
            if not named:
                raise invalid(
                    f"signature {signature!r} takes {len(specs)} inputs, so each instance must "
                    f"be an object of named values"
                )
            names = set(instances[0])
            for index, row in enumerate(instances):
                if set(row) != names:
                    raise invalid(
                        f"instance {index} has inputs {sorted(row)}, instance 0 has "
                        f"{sorted(names)}: every instance names the same inputs"
                    )
            columns = {name: [row[name] for row in instances] for name in names}
        row_format = True
    elif "inputs" in body:
        value = body["inputs"]
        if isinstance(value, dict) and not _is_b64(value):
            columns = value
        elif len(specs) == 1:
            columns = {next(iter(specs)): value}
        else:
            raise invalid(
                f'signature {signature!r} takes {len(specs)} inputs: "inputs" must be an object'
            )
        row_format = False
    else:
        raise invalid('a predict request needs "instances" (rows) or "inputs" (columns)')
    _check_names(columns, specs, signature)
    inputs = {}
    for name, value in columns.items():
        array = _leaves_to_array(value, specs[name], f"input {name!r}")
        check_shape(array, specs[name])
        inputs[name] = array
    return inputs, row_format


def _json_value(array: np.ndarray, name: str):
    if array.dtype.kind in ("O", "S"):
        binary = name.endswith(BYTES_SUFFIX)

        def text(item: bytes):
            if not binary:
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    pass  # not text after all: binary, as TF Serving writes bytes
            return {"b64": base64.b64encode(item).decode("ascii")}

        return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def outputs_to_json(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """``{"predictions": ...}`` (rows) or ``{"outputs": ...}`` (columns); a single output is
    written without its name, as TF Serving does."""
    values = {name: _json_value(array, name) for name, array in sorted(outputs.items())}
    if not row_format:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    sizes = {len(value) if isinstance(value, list) else None for value in values.values()}
    if len(sizes) != 1 or None in sizes:
        raise invalid(
            "the outputs do not share a batch dimension, so they cannot be written as rows; "
            'send the request in the columnar format ("inputs")'
        )
    count = sizes.pop()
    return {
        "predictions": [{name: value[i] for name, value in values.items()} for i in range(count)]
    }


def inputs_from_protos(
    protos, specs: dict[str, InputSpec], signature: str
) -> dict[str, np.ndarray]:
    """A gRPC ``PredictRequest.inputs`` map as arrays, checked like the JSON ones."""
    import tensorflow as tf

    _check_names(protos, specs, signature)
    inputs = {}
    for name, proto in protos.items():
        spec = specs[name]
        if proto.dtype != spec.dtype:
            given = types_pb2.DataType.Name(proto.dtype)[3:].lower()
            raise invalid(
                f"input {name!r} is {given}; signature {signature!r} takes {spec.describe()}"
            )
        try:
            array = tf.make_ndarray(proto)
        except (ValueError, TypeError) as error:
            raise invalid(f"input {name!r} is not a valid TensorProto: {error}") from None
        check_shape(array, spec)
        inputs[name] = array
    return inputs
