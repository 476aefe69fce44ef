"""The console command, the packaging pins and the quiet start-up, as a user meets them."""

import configparser
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from apps import cli

ROOT = Path(__file__).resolve().parents[1]
SEQAPPS = Path(sys.executable).with_name("seqapps")


def run_command(*args, env_update=None):
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_update or {})
    return subprocess.run([*args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_console_script_is_installed():
    assert SEQAPPS.exists(), f"{SEQAPPS} missing: is the package installed (make test)?"


def test_help_lists_every_subcommand():
    completed = run_command(str(SEQAPPS), "--help")
    assert completed.returncode == 0, completed.stderr
    for subcommand in cli.SUBCOMMANDS:
        assert subcommand.name in completed.stdout
        assert subcommand.summary in completed.stdout
    for command in ("train", "evaluate", "predict", "export"):
        assert command in completed.stdout
        listed = run_command(str(SEQAPPS), command, "--help")
        assert listed.returncode == 0, listed.stderr
        for app in cli.APPS:
            assert app.name in listed.stdout


def test_version_prints_the_installed_version():
    completed = run_command(str(SEQAPPS), "--version")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"seqapps {metadata.version('seqapps')}"


def test_version_matches_the_package():
    import seqlayers

    assert metadata.version("seqapps") == seqlayers.__version__


def test_no_subcommand_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "SUBCOMMAND" in capsys.readouterr().out


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["no-such-command"])
    assert raised.value.code == 2
    assert "no-such-command" in capsys.readouterr().err


def test_user_errors_become_one_line_without_traceback(monkeypatch, capsys):
    from apps.common.errors import SeqappsError

    def fail(args):
        raise SeqappsError("data.tsv, line 3: missing label")

    monkeypatch.setattr(
        cli, "SUBCOMMANDS", [cli.Subcommand("boom", "fails", cli._add_no_arguments, fail)]
    )
    assert cli.main(["boom"]) == 2
    assert capsys.readouterr().err == "seqapps: error: data.tsv, line 3: missing label\n"


def test_info_runs_quietly():
    completed = run_command(str(SEQAPPS), "info")
    assert completed.returncode == 0, completed.stderr
    assert "tensorflow 2.21" in completed.stdout
    assert "devices: CPU" in completed.stdout
    assert completed.stderr == ""


def test_the_quiet_import_prints_nothing():
    completed = run_command(
        sys.executable,
        "-c",
        "import apps.quiet_tensorflow, seqlayers, keras; keras.ops.sum(keras.ops.ones(3))",
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr == ""


def test_user_can_ask_for_tensorflow_logs():
    completed = run_command(
        sys.executable,
        "-c",
        "import apps.quiet_tensorflow",
        env_update={"TF_CPP_MIN_LOG_LEVEL": "0"},
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr != ""


LIBRARY_IMPORT = """
import json, os, sys
before = (dict(os.environ), os.fstat(2).st_ino, os.fstat(1).st_ino)
import seqlayers
after = (dict(os.environ), os.fstat(2).st_ino, os.fstat(1).st_ino)
print(json.dumps({"unchanged": before == after, "tensorflow": "tensorflow" in sys.modules,
                  "apps": sorted(m for m in sys.modules if m.split(".")[0] == "apps")}))
"""


def test_importing_seqlayers_has_no_process_wide_side_effects():
    completed = run_command(sys.executable, "-c", LIBRARY_IMPORT)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"unchanged": True, "tensorflow": True, "apps": []}
    # TensorFlow's own start-up notices reach stderr as they would without us (nothing redirected).
    plain = run_command(sys.executable, "-c", "import tensorflow")
    assert bool(completed.stderr) == bool(plain.stderr)


def test_dependencies_are_pinned_as_designed():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirements = config["options"]["install_requires"].split()
    for pin in (
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "keras>=3.15.1,<3.16",
        "keras-tuner>=1.4.8,<1.5",
    ):
        assert pin in requirements
    assert config["options.entry_points"]["console_scripts"].strip() == "seqapps = apps.cli:main"


def test_installed_stack_matches_the_pins():
    import keras
    import keras_tuner
    import tensorflow as tf
    import tensorflow_text

    assert tf.__version__.startswith("2.21.")
    assert tensorflow_text.__version__.startswith("2.21.")
    assert keras.__version__.split(".")[0] == "3"
    assert keras_tuner.__version__.startswith("1.4.")
    assert keras.backend.backend() == "tensorflow"


def test_ci_runs_the_readme_test_command():
    ci_script = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    commands = [
        line.strip()
        for line in ci_script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "make test"


def test_help_answers_without_loading_tensorflow():
    completed = run_command(
        sys.executable,
        "-c",
        "import sys, apps.cli; print(sorted(set(sys.modules) & {'tensorflow', 'keras'}))",
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_app_help_lists_the_shared_flags_and_the_apps_own():
    completed = run_command(str(SEQAPPS), "train", "sentiment", "--help")
    assert completed.returncode == 0, completed.stderr
    for flag in ("--data", "--out", "--arch", "--set", "--hyperparameters", "--seed", "--epochs",
                 "--batch-size", "--patience", "--ensemble", "--overwrite", "--json",
                 "--text-column", "--label-column"):  # fmt: skip
        assert flag in completed.stdout, flag
    completed = run_command(str(SEQAPPS), "export", "sentiment", "--help")
    for flag in ("--model", "--base", "--version", "--no-check", "--json"):
        assert flag in completed.stdout, flag
    assert "--text-column" not in completed.stdout
