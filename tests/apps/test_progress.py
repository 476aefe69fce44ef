"""Progress of long work in a log: lines with count, rate and time left; none for short work."""

import pytest

from apps.common import progress


def test_a_log_gets_lines_with_rate_and_time_left(monkeypatch, capsys):
    monkeypatch.setenv(progress.SECONDS_ENVIRONMENT_VARIABLE, "0.000001")
    assert list(progress.track(range(4), "reading files", 4, "files")) == [0, 1, 2, 3]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("reading files: 1/4 files (25%), ")
    assert "files/s" in lines[0] and lines[0].endswith(" left")
    assert lines[-1].startswith("reading files: 4 files in ")


def test_short_work_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv(progress.SECONDS_ENVIRONMENT_VARIABLE, "3600")
    with progress.Progress("tokenizing", 10, "texts") as counter:
        counter.advance(10)
    assert capsys.readouterr().out == ""


def test_unknown_totals_and_bad_settings(monkeypatch):
    assert "12 batches, " in progress.count_line(12, None, "batches", started=0.0)
    assert progress.duration(3725) == "1 h 2 min" and progress.duration(65) == "1 min 5 s"
    monkeypatch.setenv(progress.SECONDS_ENVIRONMENT_VARIABLE, "often")
    with pytest.raises(ValueError, match="SEQAPPS_PROGRESS_SECONDS must be a positive number"):
        progress.log_interval()
