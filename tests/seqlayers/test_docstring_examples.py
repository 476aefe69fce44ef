"""The docstring examples of the public layers run as doctests in `make test`, and can fail."""

import doctest
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import seqlayers

ROOT = Path(__file__).parents[2]
# One-line docstrings that point at ConvLSTMCell, whose example covers them.
WITHOUT_EXAMPLES = {"ConvLSTM1DCell", "ConvLSTM2DCell", "ConvLSTM3DCell"}


def test_pytest_collects_the_layers_docstring_examples():
    tomllib = pytest.importorskip("tomllib")
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert "seqlayers" in options["ini_options"]["testpaths"]
    assert "--doctest-modules" in options["ini_options"]["addopts"].split()


@pytest.mark.parametrize("name", sorted(set(seqlayers.__all__) - WITHOUT_EXAMPLES))
def test_every_public_name_has_an_example_that_checks_an_output(name):
    tests = doctest.DocTestFinder(recurse=False).find(getattr(seqlayers, name), name)
    examples = [example for test in tests for example in test.examples]
    assert examples, f"seqlayers.{name} has no >>> example in its docstring"
    assert any(example.want for example in examples), (
        f"the example of seqlayers.{name} prints nothing, so no output is checked"
    )


def test_a_wrong_example_fails_under_the_project_settings(tmp_path):
    module = tmp_path / "wrong_example.py"
    module.write_text(
        textwrap.dedent(
            '''
            def double(x):
                """Twice x.

                >>> double(2)
                5
                """
                return 2 * x
            '''
        )
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), str(module)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "1 failed" in completed.stdout
