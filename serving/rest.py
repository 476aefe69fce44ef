"""TF Serving's REST API on aiohttp (https://www.tensorflow.org/tfx/serving/api_rest).

    GET  /v1/models/NAME[/versions/V]            status of the model's versions
    GET  /v1/models/NAME[/versions/V]/metadata   signature defs
    POST /v1/models/NAME[/versions/V]:predict    {"instances": ...} or {"inputs": ...}

Every error is ``{"error": "..."}`` with TF Serving's status (400 a bad request, 404 an unknown
model, version or signature, 413 a body over ``--max-request-bytes``, 429 when the queue is
full), and the server goes on serving.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from serving.batching import Dispatcher
from serving.metadata import as_json, metadata_response, status_response
from serving.models import SERVING_DEFAULT, ModelManager
from serving.tensors import RequestError, inputs_from_json, outputs_to_json

# NAME, then /versions/V or /labels/L, then /metadata or :VERB.
MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[a-z]+)?$"
)


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def parse_path(path: str):
    match = MODEL_PATH.match(path)
    if not match:
        raise RequestError(
            "NOT_FOUND",
            f"no such resource {path!r}: the API is /v1/models/NAME[/versions/V]"
            "[/metadata|:predict]",
        )
    if match["label"] is not None:
        raise RequestError(
            "NOT_FOUND",
            f"no version label {match['label']!r}: this server serves versions by number",
        )
    version = match["version"]
    if version is not None:
        if not version.isdigit() or int(version) < 1:
            raise RequestError(
                "INVALID_ARGUMENT", f"version must be a positive integer, got {version!r}"
            )
        version = int(version)
    return match["name"], version, match["suffix"] or ""


def parse_json_body(data: bytes) -> dict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"the request body is not valid UTF-8 (byte 0x{data[error.start]:02x} at offset "
            f'{error.start}); JSON text is UTF-8, and binary values go in {{"b64": ...}}',
        ) from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"the request body is not valid JSON: {error.msg} at line {error.lineno} column "
            f"{error.colno}",
        ) from None
    if not isinstance(body, dict):
        raise RequestError("INVALID_ARGUMENT", "the request body must be a JSON object")
    return body


def create_app(
    manager: ModelManager, dispatcher: Dispatcher, max_request_bytes: int, log=print
) -> web.Application:
    async def status_or_metadata(request: web.Request) -> web.Response:
        name, version, suffix = parse_path(request.path)
        if suffix == "":
            return web.json_response(
                as_json(status_response(manager, name, version), defaults=True)
            )
        if suffix == "/metadata":
            return web.json_response(as_json(metadata_response(manager.lookup(name, version))))
        raise RequestError("NOT_FOUND", f"{request.path}: use POST for {suffix}")

    async def predict(request: web.Request) -> web.Response:
        name, version, suffix = parse_path(request.path)
        if suffix != ":predict":
            verb = suffix or "(none)"
            raise RequestError(
                "NOT_FOUND" if suffix.startswith(":") else "INVALID_ARGUMENT",
                f"unsupported verb {verb!r}: this server answers :predict (the apps' exports "
                f"have no classify or regress signatures)",
            )
        body = parse_json_body(await request.read())
        signature = body.get("signature_name", "")
        if not isinstance(signature, str):
            raise RequestError("INVALID_ARGUMENT", '"signature_name" must be a string')
        signature = signature or SERVING_DEFAULT
        served = manager.lookup(name, version)
        specs = served.signature(signature)
        inputs, row_format = inputs_from_json(body, specs, signature)
        outputs = await dispatcher.run(served, signature, inputs)
        text = json.dumps(outputs_to_json(outputs, row_format), ensure_ascii=False)
        return web.Response(text=text, content_type="application/json")

    @web.middleware
    async def errors_as_json(request: web.Request, handler):
        try:
            return await handler(request)
        except RequestError as error:
            return error_response(error.http_status, error.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                413,
                f"the request body is larger than {max_request_bytes:,} bytes "
                f"(--max-request-bytes); send fewer examples per request",
            )
        except web.HTTPException as error:  # unknown path, wrong method
            return error_response(error.status, f"{error.reason}: {request.method} {request.path}")
        except Exception as error:  # a bug or a model failing: the answer says so, in JSON
            log(f"serving: {request.method} {request.path} failed: {error!r}")
            return error_response(500, f"the server failed on this request: {error}")

    app = web.Application(middlewares=[errors_as_json], client_max_size=max_request_bytes)
    app.router.add_get("/v1/models/{tail:.*}", status_or_metadata)
    app.router.add_post("/v1/models/{tail:.*}", predict)
    return app
