"""Serving benchmarks: ``seqapps serve`` under load, against calling the SavedModel in-process.

    python bench/bench_serving.py load [--runs runs] [--requests 200]

exports each app's demo run (``make demo`` writes ``runs/demo-<app>``) into a fresh base
directory, starts ``seqapps serve`` on it as a user would (a separate process, default flags,
then ``--enable-batching`` with ``export --batching-config``'s parameters), and sends a fixed
number of one-example REST requests at concurrency 1, 8 and 32 from an asyncio client
(aiohttp). It reports requests per second, p50 and p99 latency and failed requests, and the
same requests made by calling the loaded SavedModel in this process with as many threads: the
ratio is what the server adds (HTTP, JSON, queueing). The client and the server share the
machine's cores, as they would on one host.

    python bench/bench_serving.py float16 [--runs runs]

exports each demo run twice, as float32 and with ``--float16``, and scores both exports with
``seqapps evaluate --json`` on the app's built-in test split: the drift of the float16 variant
(meant for GPUs) as measured on this CPU, where float16 is emulated and slower.

Results are printed as Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import describe_machine

APPS = ("sentiment", "tagging", "translation", "captioning")
CONCURRENCY = (1, 8, 32)

SENTENCES = {
    "sentiment": [
        "The story was gripping and the cast was truly superb.",
        "The plot was not clever, and the ending felt dull.",
        "I saw it last weekend. The acting was weak, but the soundtrack was wonderful.",
        "A tender, funny film with a script that never puts a foot wrong.",
    ],
    "tagging": [
        "Maria Keller of Siemens flew to New Delhi on Monday.",
        "The report says that Greenpeace may visit Lisbon in May.",
        "Officials in Chicago said the company would open an office there.",
        "John Smith will call the United Nations next week.",
    ],
    "translation": [
        "The big dog sees the small cat.",
        "Today the happy teacher helps the children because they are tired.",
        "The young woman reads a book in the garden.",
        "A man walks with his dog.",
    ],
}


def instances(app: str, pictures: list[Path]) -> list:
    if app == "captioning":
        return [{"b64": base64.b64encode(path.read_bytes()).decode("ascii")} for path in pictures]
    return SENTENCES[app]


def raw_inputs(app: str, pictures: list[Path]) -> tuple[str, list]:
    if app == "captioning":
        return "image_bytes", [path.read_bytes() for path in pictures]
    return "text", [text.encode() for text in SENTENCES[app]]


def seqapps(*arguments: str, capture: bool = True) -> str:
    command = [sys.executable, "-m", "apps.cli", *arguments]
    print("$ seqapps", " ".join(arguments), file=sys.stderr, flush=True)
    completed = subprocess.run(command, capture_output=capture, text=True)
    if completed.returncode != 0:
        sys.exit(f"seqapps {' '.join(arguments)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def export_demo_runs(runs: Path, base: Path) -> None:
    for app in APPS:
        run = runs / f"demo-{app}"
        if not (run / "model.keras").exists():
            sys.exit(f"{run}: no trained model; run `make demo` (or make demo-{app}) first")
        seqapps("export", app, "--model", str(run), "--base", str(base), "--batching-config")


class Server:
    """``seqapps serve`` in a subprocess, on free ports."""

    def __init__(self, base: Path, *flags: str):
        command = [sys.executable, "-m", "apps.cli", "serve", "--base", str(base)]
        command += ["--port", "0", "--grpc-port", "0", *flags]
        print("$ seqapps", " ".join(command[3:]), file=sys.stderr, flush=True)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
        for line in self.process.stdout:
            sys.stderr.write(line)
            match = re.match(r"REST on http://127\.0\.0\.1:(\d+)/", line)
            if match:
                self.port = int(match[1])
                return
        raise RuntimeError("seqapps serve ended before it listened")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def percentiles(latencies: list[float]) -> tuple[float, float]:
    values = np.array(latencies) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


async def load(url: str, bodies: list[str], concurrency: int, total: int) -> dict:
    import aiohttp

    latencies, failures = [], []
    next_index = 0

    async def worker(session):
        nonlocal next_index
        while next_index < total:
            body = bodies[next_index % len(bodies)]
            next_index += 1
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                text = await response.text()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(text[:200])

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for body in bodies:  # the first request of each input is not timed
            async with session.post(url, data=body) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return {"rps": total / elapsed, "p50": p50, "p99": p99, "failed": len(failures)}


def in_process(export_dir: Path, name: str, values: list, concurrency: int, total: int) -> dict:
    import apps.quiet_tensorflow  # noqa: F401  (before TensorFlow)

    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    function = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    for value in values:
        function(**{name: tf.constant([value])})
    latencies = []

    def one(index: int) -> None:
        started = time.perf_counter()
        function(**{name: tf.constant([values[index % len(values)]])})
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return {"rps": total / elapsed, "p50": p50, "p99": p99}


def requests_for(app: str, requests: int) -> int:
    # Beam search answers in tens of milliseconds a sentence, classification in a few.
    return requests if app in ("sentiment", "tagging") else max(32, requests // 4)


def run_load(args) -> None:
    from apps.captioning.builtin_data import write_pictures

    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    base = scratch / "saved_models"
    export_demo_runs(args.runs, base)
    pictures = write_pictures(scratch / "pictures", 4, seed=7)
    results = {}
    for mode, flags in (
        ("server", ()),
        ("server, batching", ("--batching-parameters-file", str(base / "batching_parameters.txt"))),
    ):
        server = Server(base, *flags)
        try:
            for app in APPS:
                url = f"http://127.0.0.1:{server.port}/v1/models/{app}:predict"
                bodies = [json.dumps({"instances": [item]}) for item in instances(app, pictures)]
                for concurrency in CONCURRENCY:
                    total = requests_for(app, args.requests)
                    result = asyncio.run(load(url, bodies, concurrency, total))
                    results[(app, concurrency, mode)] = result
                    print(app, concurrency, mode, result, file=sys.stderr, flush=True)
        finally:
            server.stop()
    for app in APPS:
        export_dir = base / app / "1"
        name, values = raw_inputs(app, pictures)
        for concurrency in CONCURRENCY:
            total = requests_for(app, args.requests)
            result = in_process(export_dir, name, values, concurrency, total)
            results[(app, concurrency, "in-process")] = result
            print(app, concurrency, "in-process", result, file=sys.stderr, flush=True)

    print(f"\n{describe_machine()}\n")
    print(
        "| app | requests | concurrency | in-process req/s (p50, p99 ms) | server req/s "
        "(p50, p99 ms) | failed | server / in-process | batching req/s (p50, p99 ms) | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for app in APPS:
        for concurrency in CONCURRENCY:
            local = results[(app, concurrency, "in-process")]
            served = results[(app, concurrency, "server")]
            batched = results[(app, concurrency, "server, batching")]

            def cell(result):
                return f"{result['rps']:.1f} ({result['p50']:.1f}, {result['p99']:.1f})"

            print(
                f"| {app} | {requests_for(app, args.requests)} | {concurrency} | {cell(local)} | "
                f"{cell(served)} | {served['failed']} | {served['rps'] / local['rps']:.2f} | "
                f"{cell(batched)} | {batched['failed']} |"
            )


def run_float16(args) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-float16-")) / "saved_models"
    rows = []
    for app in APPS:
        run = args.runs / f"demo-{app}"
        if not (run / "model.keras").exists():
            sys.exit(f"{run}: no trained model; run `make demo` (or make demo-{app}) first")
        reports = {}
        for precision, flags in (("float32", ()), ("mixed_float16", ("--float16",))):
            seqapps("export", app, "--model", str(run), "--base", str(base), *flags)
            version = max(int(p.name) for p in (base / app).iterdir() if p.name.isdigit())
            started = time.perf_counter()
            output = seqapps("evaluate", app, "--model", str(base / app / str(version)), "--json")
            reports[precision] = (
                json.loads(output.strip().splitlines()[-1]),
                time.perf_counter() - started,
            )
            print(app, precision, reports[precision], file=sys.stderr, flush=True)
        full, half = reports["float32"][0], reports["mixed_float16"][0]
        metrics = [
            key
            for key, value in sorted(full.items())
            if isinstance(value, float) and isinstance(half.get(key), float)
        ]
        changes = ", ".join(f"{key} {full[key]:.4g} → {half[key]:.4g}" for key in metrics)
        rows.append(
            f"| {app} | {full.get('examples', '?')} | {changes} | "
            f"{reports['float32'][1]:.0f} → {reports['mixed_float16'][1]:.0f} |"
        )
    print(f"\n{describe_machine()}\n")
    print("| app | test examples | metric: float32 → float16 | evaluate seconds |")
    print("|---|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    load_parser = commands.add_parser("load", help="requests per second and latency")
    load_parser.add_argument("--runs", type=Path, default=Path("runs"), help="holds demo-<app>")
    load_parser.add_argument("--requests", type=int, default=200, help="per app and concurrency")
    float16_parser = commands.add_parser("float16", help="drift of the --float16 export")
    float16_parser.add_argument("--runs", type=Path, default=Path("runs"), help="holds demo-<app>")
    args = parser.parse_args()
    if args.command == "load":
        run_load(args)
    else:
        run_float16(args)


if __name__ == "__main__":
    main()
