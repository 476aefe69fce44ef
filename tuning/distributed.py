"""Distributed search with KerasTuner's own chief/worker mode, made to finish when a worker dies.

KerasTuner distributes a search through three environment variables: ``KERASTUNER_ORACLE_IP``
and ``KERASTUNER_ORACLE_PORT`` (where the chief's oracle listens, gRPC) and
``KERASTUNER_TUNER_ID`` (``chief`` for the chief, a unique name per worker). ``seqapps tune
--chief HOST:PORT`` and ``--worker HOST:PORT --worker-id N`` set them. The chief runs only the
oracle: it hands out trials and records results; each worker asks for a trial, trains it and
reports back, until the oracle says the search is over.

KerasTuner's chief alone waits forever for a worker that died holding a trial (and polls every
20 s). Here:

- while a worker trains, a thread sends the chief a heartbeat every ``HEARTBEAT_SECONDS`` (5 s,
  or a quarter of ``--worker-timeout`` if that is shorter; an ``UpdateTrial`` call without
  metrics, which the chief's oracle treats as "alive");
- the chief gives the trial of a worker silent for ``--worker-timeout`` seconds (default 60) to
  the next worker that asks (it goes on from the trial's last finished epoch when the workers
  share the search directory, otherwise from the start);
- a worker told "no trial for now" (others still train trials that may come back) asks again
  after ``IDLE_SECONDS``; when the last trial is reported, every worker is told to stop and
  exits 0, and the chief writes the results and exits 0.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass

from apps.common.errors import SeqappsError

ORACLE_IP, ORACLE_PORT, TUNER_ID = (
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
    "KERASTUNER_TUNER_ID",
)
CHIEF_ID = "chief"
HEARTBEAT_SECONDS = 5.0
IDLE_SECONDS = 1.0
DEFAULT_WORKER_TIMEOUT = 60.0
SERVER_THREADS = 8


@dataclass(frozen=True)
class Role:
    """This process's part in a search: alone (the default), the chief or a worker."""

    chief: str | None = None  # HOST:PORT to listen on
    worker: str | None = None  # HOST:PORT of the chief
    worker_id: int | None = None
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT

    def __post_init__(self):
        if self.chief and self.worker:
            raise SeqappsError("--chief and --worker exclude each other")
        if self.worker and self.worker_id is None:
            raise SeqappsError("--worker needs --worker-id N (a number unique to each worker)")
        if self.worker_id is not None and not self.worker:
            raise SeqappsError("--worker-id goes with --worker HOST:PORT")
        if not self.worker_timeout > 0:
            raise SeqappsError(f"--worker-timeout must be positive, got {self.worker_timeout}")
        for flag, address in (("--chief", self.chief), ("--worker", self.worker)):
            if address is not None:
                split_address(address, flag)

    @property
    def is_worker(self) -> bool:
        return self.worker is not None

    @property
    def tuner_id(self) -> str | None:
        if self.chief:
            return CHIEF_ID
        if self.worker:
            return f"worker{self.worker_id}"
        return None


def split_address(address: str, flag: str) -> tuple[str, int]:
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SeqappsError(f"{flag}: expected HOST:PORT (e.g. 127.0.0.1:8470), got {address!r}")
    return host.strip("[]"), int(port)


def _parent_condition_to_proto(self):
    """KerasTuner 1.4.8's ``conditions.Parent.to_proto`` without its stray ``print``: it wrote
    a conditional hyperparameter's first parent value to stdout for every one in every gRPC
    message (hundreds of lines of "lstm" in the chief's log)."""
    from keras_tuner.src import protos

    proto = protos.get_proto()
    first = self.values[0]
    if isinstance(first, str):
        kind = "string_value"
    elif isinstance(first, bool):
        kind = "boolean_value"
    elif isinstance(first, int):
        kind = "int_value"
    else:
        kind = "float_value"
    values = [proto.Value(**{kind: value}) for value in self.values]
    return proto.Condition(parent=proto.Condition.Parent(name=self.name, values=values))


def silence_keras_tuner() -> None:
    from keras_tuner.src.engine import conditions

    conditions.Parent.to_proto = _parent_condition_to_proto


@contextlib.contextmanager
def environment(role: Role):
    """KerasTuner's variables for ``role`` while the search runs (restored afterwards, so that
    a program that runs several searches is not left distributed)."""
    saved = {name: os.environ.get(name) for name in (ORACLE_IP, ORACLE_PORT, TUNER_ID)}
    address = role.chief or role.worker
    if address:
        silence_keras_tuner()
        host, port = split_address(address, "--chief" if role.chief else "--worker")
        os.environ.update({ORACLE_IP: host, ORACLE_PORT: str(port), TUNER_ID: role.tuner_id})
    else:
        for name in saved:
            os.environ.pop(name, None)
    global _worker_timeout
    _worker_timeout = role.worker_timeout
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_worker_timeout = DEFAULT_WORKER_TIMEOUT


def now() -> float:
    """The chief's clock for worker liveness (tests replace it)."""
    return time.monotonic()


def is_chief() -> bool:
    return ORACLE_IP in os.environ and os.environ.get(TUNER_ID) == CHIEF_ID


@contextlib.contextmanager
def quiet_reload():
    """KerasTuner prints "Reloading Tuner from ..." on resume; we say it our way."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# === The chief's bookkeeping of live workers (called inside the oracle's lock) ===


def note_alive(oracle, tuner_id: str) -> None:
    seen = _last_seen(oracle)
    seen[tuner_id] = now()
    reclaim_lost_trials(oracle, seen[tuner_id])


def note_heartbeat(oracle, trial_id: str) -> None:
    seen = _last_seen(oracle)
    for tuner_id, trial in oracle.ongoing_trials.items():
        if trial.trial_id == trial_id:
            seen[tuner_id] = now()


def _last_seen(oracle) -> dict:
    if not hasattr(oracle, "_seqapps_last_seen"):
        oracle._seqapps_last_seen = {}
    return oracle._seqapps_last_seen


def reclaim_lost_trials(oracle, time_now: float) -> None:
    """Hands the trials of workers silent for longer than the timeout back to the queue."""
    seen = _last_seen(oracle)
    for tuner_id in list(oracle.tuner_ids):
        # A tuner the chief never heard from in this process (ongoing before a restart)
        # counts from now.
        last = seen.setdefault(tuner_id, time_now)
        if time_now - last <= _worker_timeout:
            continue
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        oracle.tuner_ids.discard(tuner_id)
        seen.pop(tuner_id, None)
        silence = f"{tuner_id} silent for {time_now - last:.0f} s"
        if trial is not None:
            oracle._retry_queue.append(trial.trial_id)
            oracle.save()
            print(f"{silence}: trial {trial.trial_id} goes to the next worker", flush=True)
        else:
            print(f"{silence}: no longer waited for", flush=True)


# === The chief's server ===


def serve(oracle) -> None:
    """Serves KerasTuner's oracle service until every trial is reported and every worker was
    told to stop; then returns (KerasTuner's ``oracle_chief.start_server``, with the dead
    worker handling above, a shorter poll, and a clean shutdown)."""
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    host, port = os.environ[ORACLE_IP], os.environ[ORACLE_PORT]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_THREADS))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise SeqappsError(f"--chief {host}:{port}: cannot listen there ({error})") from error
    if not bound:
        raise SeqappsError(f"--chief {host}:{port}: cannot listen there (in use?)")
    server.start()
    print(f"chief: the oracle listens on {host}:{port}; waiting for workers", flush=True)
    reported = set(oracle.end_order)
    try:
        while True:
            time.sleep(IDLE_SECONDS / 2)
            ended, busy = oracle.check_workers()
            for trial_id in ended:
                if trial_id not in reported:
                    reported.add(trial_id)
                    trial = oracle.trials[trial_id]
                    outcome = (
                        f"{oracle.objective.name} {trial.score:.4f}"
                        if trial.status == "COMPLETED"
                        else f"{trial.status.lower()}: {trial.message}"
                    )
                    print(f"chief: trial {trial_id} {outcome}", flush=True)
            if servicer.stop_triggered and not busy:
                break
    finally:
        server.stop(grace=2).wait()


# === The worker's side ===


@contextlib.contextmanager
def heartbeat(oracle, trial_id: str, enabled: bool):
    """While a worker trains ``trial_id``, tells the chief every ``HEARTBEAT_SECONDS``."""
    if not enabled:
        yield
        return
    stop = threading.Event()
    # Four beats within the timeout (workers are started with the chief's --worker-timeout).
    interval = min(HEARTBEAT_SECONDS, _worker_timeout / 4)

    def beat():
        while not stop.wait(interval):
            try:
                oracle.update_trial(trial_id, {})
            except Exception:
                pass

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def check_same_space(client, space) -> None:
    """A worker must search the chief's space (same app version, flags and data); otherwise
    its trials would be built from other values than the ones recorded."""
    from tuning.search import space_summary

    theirs, ours = space_summary(client.get_space()), space_summary(space)
    if theirs != ours:
        differences = [
            f"{name}: chief {theirs.get(name)}, worker {ours.get(name)}"
            for name in sorted(set(theirs) | set(ours))
            if theirs.get(name) != ours.get(name)
        ]
        raise SeqappsError(
            "this worker's search space differs from the chief's (start both with the same "
            f"app, --arch and --set): {'; '.join(differences[:5])}"
        )
