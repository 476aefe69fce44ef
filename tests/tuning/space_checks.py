"""A check every app's tests run on their trained run: its search space (``tuning/<app>.py``)
builds the app's model for every architecture, and its default trial is the app's defaults."""

import json

import keras_tuner
import pytest

from tuning import search
from tuning.hypermodel import ARCHITECTURE, SearchContext


def values_for(space: keras_tuner.HyperParameters, architecture: str, seed: int | None) -> dict:
    """A trial's values: ``architecture``, and every hyperparameter it activates at random
    (``seed``) or at its default (``None``)."""
    trial = keras_tuner.HyperParameters()
    chosen = {}
    for hp in space.space:
        trial.merge([hp])
        if hp.name == ARCHITECTURE:
            value = architecture
        elif not trial.is_active(hp):
            continue
        else:
            value = hp.default if seed is None else hp.random_sample(seed + len(chosen))
        chosen[hp.name] = trial.values[hp.name] = value
    return chosen


def check_search_space(app, run_dir, samples: int = 1) -> None:
    task = app.load_task()
    config = json.loads((run_dir / "config.json").read_text())
    context = SearchContext(
        task=task,
        data=None,
        preprocessor=task.load_preprocessor(run_dir, config["hyperparameters"]),
        fixed={},
        seed=0,
        epochs=1,
        patience=1,
        objective="val_loss",
        direction="min",
    )
    hypermodel = app.load_hypermodel()(context)
    space = search.declared_space(hypermodel)
    choice = next(hp for hp in space.space if hp.name == ARCHITECTURE)
    assert (choice.values, choice.default) == (list(app.architectures), app.default_architecture)

    def trial(values):
        hp = keras_tuner.HyperParameters()
        hp.merge(space.space)
        hp.values.update(values)
        return hp

    # The first trial of a search is exactly `seqapps train APP`'s configuration.
    default = trial(search.default_values(space))
    assert hypermodel.resolve(default) == (
        task.default_hyperparameters(app.default_architecture),
        app.batch_size,
    )
    for architecture in app.architectures:
        tuned = {name for name in (h.name for h in space.space) if name.startswith(architecture)}
        assert tuned, f"{architecture} tunes nothing"
        for seed in range(samples):
            hp = trial(values_for(space, architecture, seed))
            hyperparameters, _ = hypermodel.resolve(hp)
            assert hyperparameters["architecture"] == architecture
            for name in tuned:  # the values reach the app's hyperparameters
                key = name.split("/", 1)[1]
                value = hp.values[name]
                expected = [int(i) for i in value.split(",")] if key == "dilations" else value
                if isinstance(value, float):
                    expected = pytest.approx(value, rel=1e-9)
                assert hyperparameters[key] == expected, (name, hyperparameters[key], value)
            model = hypermodel.build(hp)
            assert model.optimizer is not None and model.count_params() > 0
