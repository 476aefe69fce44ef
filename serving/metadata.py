"""Model status and metadata as TF Serving's protos, shared by the REST and gRPC front ends."""

from __future__ import annotations

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.models import ModelManager, ServedVersion
from serving.tensors import RequestError

SIGNATURE_DEF_FIELD = "signature_def"  # the only metadata TF Serving has


def status_response(
    manager: ModelManager, name: str, version: int | None
) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in manager.status(name, version):
        entry = response.model_version_status.add(version=number, state=status.state)
        # tensorflow.error.Code: OK is 0, UNKNOWN 2 (a version that failed to load).
        entry.status.error_code = 2 if status.error else 0
        entry.status.error_message = status.error
    return response


def metadata_response(served: ServedVersion) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = served.name
    response.model_spec.version.value = served.version
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for name, signature_def in served.signature_defs.items():
        signatures.signature_def[name].CopyFrom(signature_def)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
    return response


def check_metadata_fields(fields) -> None:
    if list(fields) != [SIGNATURE_DEF_FIELD]:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"metadata_field must be [{SIGNATURE_DEF_FIELD!r}] (the only metadata served); "
            f"got {list(fields)}",
        )


def as_json(message, defaults: bool = False) -> dict:
    """A response as TF Serving's REST API writes it (proto field names; with ``defaults``,
    fields at their default value too, as its status API does)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=defaults
    )
