"""Keras' own unit tests, run against our layers: the proof of "drop-in" claims.

Keras ships its tests in the wheel (``keras/src/layers/.../*_test.py``). ``KerasSuite`` copies
one of them out of the installed wheel, replaces the class under test by ours (textual
substitutions, each of which must match, so that a Keras release that renames things fails
loudly instead of silently testing Keras against itself), runs it with pytest in a fresh
process, and compares every test's outcome with the suite's list of expected failures: each is a
documented difference, with its reason. A test that fails unlisted, or a listed one that passes,
fails the check, so the list stays exact as our layers and Keras change.

Starting that process and importing TensorFlow takes 5-8 s, as long as most suites' own tests,
so ``run_suites`` runs several suites in one process, each in a file of its own, and
``SuiteOutcomes`` (the ``keras_suite_outcomes`` fixture of ``tests/seqlayers/conftest.py``)
runs the suites a test session needs together.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

KERAS_SOURCE = Path(keras.__file__).parent / "src"


@dataclass(frozen=True)
class Outcome:
    passed: bool
    message: str = ""


@dataclass
class KerasSuite:
    """One Keras test file with our classes substituted in.

    Args:
        path: the test file, relative to ``keras/src`` (``"layers/rnn/lstm_test.py"``).
        substitutions: ``(Keras text, our text)`` pairs, applied in order; each must occur.
        preamble: code put after the file's imports (``import seqlayers``, shims).
        expected_failures: ``{test name: reason}``; names are pytest's (``test_basics``,
            ``test_masking_0``...), without the class.
    """

    path: str
    substitutions: list[tuple[str, str]]
    preamble: str = "import seqlayers\n"
    expected_failures: dict[str, str] = field(default_factory=dict)

    def source(self) -> str:
        """The substituted test file."""
        text = (KERAS_SOURCE / self.path).read_text(encoding="utf-8")
        for old, new in self.substitutions:
            if old not in text:
                raise AssertionError(
                    f"keras/src/{self.path} no longer contains {old!r}: Keras changed its test "
                    "file; update the substitutions of this suite"
                )
            text = text.replace(old, new)
        # After the last top-level import, so that the preamble may use what the file imports.
        lines = text.splitlines(keepends=True)
        last_import = max(
            index
            for index, line in enumerate(lines)
            if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
        )
        return (
            "".join(lines[: last_import + 1])
            + "\n"
            + self.preamble
            + "".join(lines[last_import + 1 :])
        )

    def run(self, directory: Path, timeout: float = 1800) -> dict[str, Outcome]:
        """Runs the substituted file with pytest in a fresh process: ``{test name: outcome}``."""
        return run_suites([self], directory, timeout)[0]

    def check(self, outcomes: dict[str, Outcome]) -> None:
        """Every test passes but the expected failures, which fail; else an explanation."""
        unknown = sorted(set(self.expected_failures) - set(outcomes))
        unexpected = {
            name: outcome.message
            for name, outcome in outcomes.items()
            if not outcome.passed and name not in self.expected_failures
        }
        now_passing = sorted(
            name for name in self.expected_failures if name in outcomes and outcomes[name].passed
        )
        problems = []
        if unexpected:
            problems.append(
                "failed, and not listed as a documented difference:\n"
                + "\n".join(
                    f"  {name}: {textwrap.shorten(message, 300)}"
                    for name, message in sorted(unexpected.items())
                )
            )
        if now_passing:
            problems.append(
                "listed as expected failures but passing now (remove them from the list): "
                + ", ".join(now_passing)
            )
        if unknown:
            problems.append(f"listed but not in keras/src/{self.path}: {', '.join(unknown)}")
        assert not problems, f"keras/src/{self.path} against seqlayers:\n" + "\n".join(problems)


def run_suites(
    suites: Sequence[KerasSuite], directory: Path, timeout: float = 1800
) -> list[dict[str, Outcome]]:
    """Runs the suites' substituted files with one pytest in a fresh process.

    Returns ``{test name: outcome}`` for each suite, in order. Each suite gets its own file
    (``test_keras_<index>_<Keras file>.py``), so two suites may substitute the same Keras file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    modules = {}  # file stem -> index of its suite
    for index, suite in enumerate(suites):
        test_file = directory / f"test_keras_{index}_{Path(suite.path).stem}.py"
        test_file.write_text(suite.source(), encoding="utf-8")
        modules[test_file.stem] = index
    report = directory / "report.xml"
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        # --continue-on-collection-errors: a file that fails to import is a failed test of
        # its own suite, and the other suites still run.
        [sys.executable, "-m", "pytest", *(f"{stem}.py" for stem in modules), "-q",
         "--continue-on-collection-errors", "-p", "no:cacheprovider", "-o", "addopts=",
         "-o", "filterwarnings=", "--rootdir", str(directory), f"--junitxml={report}"],
        cwd=directory, env=environment, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if not report.exists():
        raise AssertionError(f"pytest did not run {sorted(modules)}:\n{completed.stdout[-3000:]}")
    outcomes = [{} for _ in suites]
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        # classname is "<file stem>.<class>" ("<file stem>" for a test function or a file
        # that failed to import, which pytest reports under its name).
        module = (case.get("classname") or case.get("name")).split(".")[0]
        if module not in modules:
            raise AssertionError(f"a test case of no suite: {case.attrib}")
        problems = [child for child in case if child.tag in ("failure", "error")]
        skipped = [child for child in case if child.tag == "skipped"]
        if skipped and not problems:
            continue  # skipped by Keras itself (another backend, a missing package)
        message = problems[0].get("message", "") if problems else ""
        outcomes[modules[module]][case.get("name")] = Outcome(not problems, message)
    for stem, index in modules.items():
        if not outcomes[index]:
            raise AssertionError(f"no test ran in {stem}.py:\n{completed.stdout[-3000:]}")
    return outcomes


class SuiteOutcomes:
    """The outcomes of any suite; those of ``together`` come from one shared process.

    The first time a suite of ``together`` is asked for, all of them run in one pytest process
    (``run_suites``) in a directory from ``new_directory``; any other suite runs on its own.
    """

    def __init__(self, together: Sequence[KerasSuite], new_directory: Callable[[], Path]):
        self.together = list(together)
        self.new_directory = new_directory
        self.shared: list[dict[str, Outcome]] | None = None

    def __call__(self, suite: KerasSuite) -> dict[str, Outcome]:
        for index, member in enumerate(self.together):
            if member is suite:
                if self.shared is None:
                    self.shared = run_suites(self.together, self.new_directory())
                return self.shared[index]
        return suite.run(self.new_directory())
