"""``seqapps tune`` as real processes: resumed after ``kill -9``, and distributed on 127.0.0.1
with KerasTuner's chief/worker mode, one worker killed mid-trial.

Both run the test app (``python -m tests.apps.majority_task tune majority``), whose trials take
a second or two; with seed 0 its random search tries, in order: the defaults, a value that
does not build, a model that trains (trial 2), then models whose loss is NaN.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from apps.common import training
from tuning import search

ROOT = Path(__file__).resolve().parents[2]
TUNE = [sys.executable, "-m", "tests.apps.majority_task", "tune", "majority", "--tuner", "random"]
TUNE += ["--epochs", "3", "--patience", "3", "--seed", "0"]
DEADLINE_SECONDS = 300


class Process:
    """A ``seqapps`` process whose output lines are read as they come."""

    def __init__(self, *args):
        self.popen = subprocess.Popen(
            [*TUNE, *(str(a) for a in args)],
            cwd=ROOT,
            env={**os.environ, "SEQAPPS_PROGRESS_SECONDS": "60"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def started_trials(self) -> list[str]:
        return [words[1] for words in self._trial_lines() if not words[1].endswith(":")]

    def ended_trials(self) -> list[str]:
        return [words[1][:-1] for words in self._trial_lines() if words[1].endswith(":")]

    def _trial_lines(self) -> list[list[str]]:
        # "trial 3 (4 of 5): ..." or "trial 3 [worker0] (...)" begins one; "trial 3: ..." ends it.
        return [line.split() for line in self.lines if line.startswith("trial ")]

    def kill(self):
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=60)
        self.reader.join(timeout=10)

    def finish(self) -> int:
        code = self.popen.wait(timeout=DEADLINE_SECONDS)
        self.reader.join(timeout=10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def logged_epochs(directory: Path, trial: str) -> list[int]:
    path = directory / search.PROJECT / f"trial_{trial}" / training.LOG_FILE
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def backed_up_epochs(directory: Path, trial: str) -> int:
    path = directory / search.PROJECT / f"trial_{trial}" / training.BACKUP_DIR
    metadata = path / training.AtomicBackupAndRestore.METADATA
    return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


def wait_for_training(processes: list[Process], directory: Path, trial: str = ""):
    """Waits until one of ``processes`` has trained and backed up an epoch of a trial it has
    not finished (``trial`` if given); returns that process and the trial's id."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for process in processes:
            assert process.popen.poll() is None, process.output
            begun = process.started_trials()
            if not begun or begun[-1] in process.ended_trials() or trial not in ("", begun[-1]):
                continue
            if backed_up_epochs(directory, begun[-1]):
                return process, begun[-1]
        time.sleep(0.01)
    outputs = "\n\n".join(process.output for process in processes)
    raise AssertionError(f"no trial trained an epoch in time:\n{outputs}")


def results(directory: Path) -> list[dict]:
    with (directory / search.RESULTS_FILE).open(encoding="utf-8") as file:
        return list(csv.DictReader(file, delimiter="\t"))


def test_a_search_killed_mid_trial_continues_where_it_stopped(tmp_path):
    directory = tmp_path / "search"
    args = ["--max-trials", "4", "--directory", directory]
    first = Process(*args)
    # Trial 2: the seed's first model that trains after the default one and a failure.
    _, interrupted = wait_for_training([first], directory, trial="2")
    first.kill()
    backed_up = backed_up_epochs(directory, interrupted)
    assert 1 <= backed_up < 3

    second = Process(*args)
    assert second.finish() == 0, second.output
    assert f"continuing a random search of 4 trials in {directory} (2 done)" in second.output
    # Finished trials are not run again; the interrupted one goes on from its last epoch.
    assert second.started_trials() == ["2", "3"], second.output
    interrupted_part = second.output.split("\ntrial 3 ")[0]
    assert f"epoch {backed_up + 1}/3: " in interrupted_part
    assert f"epoch {backed_up}/3: " not in interrupted_part, second.output
    assert logged_epochs(directory, "2") == [0, 1, 2]
    assert logged_epochs(directory, "0") == [0, 1, 2]
    assert sorted(row["trial"] for row in results(directory)) == ["0", "1", "2", "3"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_distributed_search_finishes_every_trial_once_when_a_worker_dies(tmp_path):
    directory = tmp_path / "search"
    address = f"127.0.0.1:{free_port()}"
    args = ["--max-trials", "5", "--directory", directory, "--worker-timeout", "3"]
    chief = Process(*args, "--chief", address)
    workers = [Process(*args, "--worker", address, "--worker-id", n) for n in range(3)]

    victim, lost = wait_for_training(workers, directory)
    victim.kill()
    survivors = [worker for worker in workers if worker is not victim]
    codes = [chief.finish(), *(worker.finish() for worker in survivors)]
    outputs = "\n\n".join(p.output for p in (chief, *workers))
    assert codes == [0, 0, 0], outputs
    for worker in survivors:
        assert worker.lines[-1].endswith(": the search is over"), outputs
    victim_id = workers.index(victim)
    assert f"worker{victim_id} silent for " in chief.output
    assert f"trial {lost} goes to the next worker" in chief.output, outputs

    # Every trial ended exactly once, the lost one by a surviving worker, which went on from
    # the lost worker's last backup (the workers share the directory).
    ended = [
        line.split()[2].rstrip(":") for line in chief.lines if line.startswith("chief: trial ")
    ]
    assert sorted(ended) == [str(n) for n in range(5)], outputs
    ended_by_survivors = [t for worker in survivors for t in worker.ended_trials()]
    assert sorted(ended_by_survivors + victim.ended_trials()) == sorted(ended), outputs
    assert lost in ended_by_survivors
    assert logged_epochs(directory, lost) == [0, 1, 2]  # no epoch twice
    rows = results(directory)
    assert sorted(row["trial"] for row in rows) == [str(n) for n in range(5)]
    assert rows[0]["status"] == "COMPLETED"
    failed = [row for row in rows if row["status"] == "FAILED"]
    assert failed and all(row["reason"] not in ("", "unknown reason") for row in failed), rows
    assert (directory / search.BEST_TRIAL_FILE).exists()
