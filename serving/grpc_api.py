"""TF Serving's gRPC API on grpc.aio, with the ``tensorflow-serving-api`` protos:
``tensorflow.serving.PredictionService/{Predict,GetModelMetadata}`` and
``tensorflow.serving.ModelService/GetModelStatus``, so that a stock TF Serving client
(``prediction_service_pb2_grpc.PredictionServiceStub``) works unchanged. Classify, Regress,
MultiInference and HandleReloadConfigRequest answer UNIMPLEMENTED (the servicers' defaults).
"""

from __future__ import annotations

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.batching import Dispatcher
from serving.metadata import check_metadata_fields, metadata_response, status_response
from serving.models import SERVING_DEFAULT, ModelManager
from serving.tensors import RequestError, inputs_from_protos


def requested_version(model_spec) -> int | None:
    if model_spec.version_label:
        raise RequestError(
            "NOT_FOUND",
            f"no version label {model_spec.version_label!r}: this server serves versions by number",
        )
    return model_spec.version.value if model_spec.HasField("version") else None


async def _abort(context: grpc.aio.ServicerContext, error: RequestError):
    await context.abort(getattr(grpc.StatusCode, error.code), error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, dispatcher: Dispatcher):
        self.manager, self.dispatcher = manager, dispatcher

    async def Predict(self, request, context):  # (the proto names it)
        try:
            spec = request.model_spec
            served = self.manager.lookup(spec.name, requested_version(spec))
            signature = spec.signature_name or SERVING_DEFAULT
            inputs = inputs_from_protos(request.inputs, served.signature(signature), signature)
            outputs = await self.dispatcher.run(served, signature, inputs)
            wanted = list(request.output_filter) or sorted(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"output_filter names {unknown}, which signature {signature!r} does not "
                    f"have (it has {sorted(outputs)})",
                )
        except RequestError as error:
            await _abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = served.name
        response.model_spec.version.value = served.version
        response.model_spec.signature_name = signature
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response

    async def GetModelMetadata(self, request, context):
        try:
            check_metadata_fields(request.metadata_field)
            spec = request.model_spec
            return metadata_response(self.manager.lookup(spec.name, requested_version(spec)))
        except RequestError as error:
            await _abort(context, error)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    async def GetModelStatus(self, request, context):
        try:
            spec = request.model_spec
            return status_response(self.manager, spec.name, requested_version(spec))
        except RequestError as error:
            await _abort(context, error)


def create_server(
    manager: ModelManager, dispatcher: Dispatcher, max_request_bytes: int
) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, dispatcher), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    return server
