"""``seqapps serve [flags]``: the command line of the model server (``serving/server.py``).

Nothing here imports TensorFlow, so that ``seqapps serve --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from apps.common import command_line
from apps.common.errors import SeqappsError

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024  # gRPC's default message limit, for REST as well
SUMMARY = "serve saved_models/ with TF Serving's REST and gRPC APIs"


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number (0 picks a free one), got {text!r}"
        )
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        type=Path,
        default=command_line.EXPORTS_DIR,
        help=f"the base directory: one folder per model, numbered versions below (default "
        f"{command_line.EXPORTS_DIR})",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    parser.add_argument("--port", type=port, default=8501, help="REST port (default 8501)")
    parser.add_argument("--grpc-port", type=port, default=8500, help="gRPC port (default 8500)")
    parser.add_argument(
        "--poll-seconds",
        type=positive_float,
        default=1.0,
        help="how often the base directory is scanned for new versions (default 1, as TF "
        "Serving's --file_system_poll_wait_seconds)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=command_line.positive_int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help=f"largest request body or message (default {DEFAULT_MAX_REQUEST_BYTES:,}, gRPC's "
        "own default); larger ones get 413 / RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--max-concurrent-requests",
        type=command_line.positive_int,
        default=os.cpu_count() or 1,
        help="model calls running at once (default: the CPU count); more wait in a queue",
    )
    parser.add_argument(
        "--max-queued-requests",
        type=command_line.positive_int,
        default=256,
        help="requests waiting beyond that before new ones are refused with 429 / "
        "RESOURCE_EXHAUSTED (default 256)",
    )
    parser.add_argument(
        "--enable-batching",
        action="store_true",
        help="run concurrent requests for the same signature as one batch (TF Serving's "
        "--enable_batching); see bench/RESULTS.md for what it gives",
    )
    parser.add_argument(
        "--batching-parameters-file",
        type=Path,
        help="TF Serving's batching_parameters.txt (what `seqapps export --batching-config` "
        "writes); implies --enable-batching",
    )


def run(args: argparse.Namespace) -> int:
    from serving.batching import BatchingSettings
    from serving.server import ServerSettings, serve

    batching = None
    if args.batching_parameters_file is not None:
        if not args.batching_parameters_file.is_file():
            raise SeqappsError(
                f"--batching-parameters-file {args.batching_parameters_file}: no such file"
            )
        try:
            batching = BatchingSettings.read(args.batching_parameters_file)
        except ValueError as error:
            raise SeqappsError(str(error)) from None
    elif args.enable_batching:
        from serving.batching import DEFAULT_BATCHING

        batching = DEFAULT_BATCHING
    if not args.base.is_dir():
        raise SeqappsError(f"--base {args.base}: no such directory (export a model first)")
    settings = ServerSettings(
        base=args.base,
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        poll_seconds=args.poll_seconds,
        max_request_bytes=args.max_request_bytes,
        max_concurrent_requests=args.max_concurrent_requests,
        max_queued_requests=args.max_queued_requests,
        batching=batching,
    )
    try:
        return serve(settings, log=lambda line: print(line, flush=True))
    except OSError as error:  # a port in use, an address not on this machine
        raise SeqappsError(f"cannot listen on {args.host}: {error.strerror or error}") from None
