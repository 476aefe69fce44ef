"""The chief's oracle without processes: a silent worker's trial goes to the next worker, a late
report of it is ignored, and workers wait rather than stop while a trial may still come back.
(``test_processes.py`` runs the same with real workers.)"""

import keras_tuner
import pytest

from tuning import distributed, search


@pytest.fixture
def oracle(tmp_path, monkeypatch):
    clock = {"now": 1000.0}
    monkeypatch.setattr(distributed, "now", lambda: clock["now"])
    monkeypatch.setattr(distributed, "_worker_timeout", 10.0)
    _, oracle_class = search.tuner_class("random")
    oracle = oracle_class(objective=keras_tuner.Objective("score", "max"), max_trials=2, seed=1)
    oracle._set_project_dir(str(tmp_path), "trials")
    space = keras_tuner.HyperParameters()
    space.Choice("x", [1, 2, 3], default=2)
    oracle.update_space(space)
    oracle.clock = clock
    return oracle


def end(oracle, trial, score):
    trial.status = "COMPLETED"
    oracle.update_trial(trial.trial_id, {"score": score})
    oracle.end_trial(trial)


def test_a_silent_workers_trial_goes_to_the_next_worker_and_the_first_report_stands(oracle):
    first = oracle.create_trial("worker0")
    assert first.hyperparameters.values == {"x": 2}  # the default configuration first
    oracle.clock["now"] += 8
    oracle.update_trial(first.trial_id, {})  # worker0's heartbeat
    second = oracle.create_trial("worker1")
    oracle.clock["now"] += 9  # worker0 heard from 9 s ago: alive
    assert oracle.check_workers() == ([], True)
    assert oracle.ongoing_trials["worker0"] is first

    oracle.clock["now"] += 2  # 11 s: worker0 is lost, worker1 (17 s) too
    oracle.update_trial(second.trial_id, {})  # ... but worker1 beats just in time
    third = oracle.create_trial("worker2")
    assert third.trial_id == first.trial_id  # handed on, not a new trial
    assert "worker0" not in oracle.ongoing_trials and "worker0" not in oracle.tuner_ids

    end(oracle, second, 0.5)
    end(oracle, third, 0.7)
    late = oracle.get_trial(first.trial_id)
    late.status = "COMPLETED"
    oracle.end_trial(late)  # worker0 was alive after all: its report comes second
    assert oracle.end_order == [second.trial_id, first.trial_id]
    assert oracle.get_trial(first.trial_id).score == pytest.approx(0.7)


def test_workers_wait_while_a_trial_may_come_back_then_stop(oracle):
    first = oracle.create_trial("worker0")
    second = oracle.create_trial("worker1")
    end(oracle, second, 0.5)
    # The last trial runs on worker0: worker1 waits instead of stopping.
    assert oracle.create_trial("worker1").status == "IDLE"
    oracle.update_trial(first.trial_id, {})
    end(oracle, first, 0.6)
    assert oracle.create_trial("worker1").status == "STOPPED"
    assert oracle.create_trial("worker0").status == "STOPPED"
    assert oracle.check_workers() == ([second.trial_id, first.trial_id], False)


def test_a_failed_trials_reason_comes_from_the_worker(oracle):
    trial = oracle.create_trial("worker0")
    trial.status = "FAILED"
    trial.hyperparameters.values[search.FAILURE_VALUE] = "out of memory (ResourceExhaustedError)"
    oracle.end_trial(trial)
    recorded = oracle.get_trial(trial.trial_id)
    assert recorded.message == "out of memory (ResourceExhaustedError)"
    assert search.FAILURE_VALUE not in recorded.hyperparameters.values


def test_a_restarted_chief_does_not_hand_out_again_a_trial_that_comes_back(oracle, tmp_path):
    running = oracle.create_trial("worker0")
    oracle.update_trial(running.trial_id, {"score": 0.4})
    _, oracle_class = search.tuner_class("random")
    restarted = oracle_class(objective=keras_tuner.Objective("score", "max"), max_trials=2, seed=1)
    restarted._set_project_dir(str(tmp_path), "trials")
    restarted.reload()  # KerasTuner queues the trials that were running again
    assert restarted._retry_queue == [running.trial_id]
    running.status = "COMPLETED"
    restarted.end_trial(running)  # worker0 kept training and reports
    assert restarted._retry_queue == []
    assert restarted.create_trial("worker1").trial_id != running.trial_id
