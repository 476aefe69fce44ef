"""The framework every app shares; an app implements ``task.Task`` and the drivers do the rest.

- ``app.py``: ``App``, an app's command-line face (importable without TensorFlow);
- ``task.py``: ``Task``, the interface an app implements (data, preprocessing, pipeline, model,
  serving signatures, report);
- ``command_line.py``: the shared flags, defined once, and the dispatch to ``drivers.py``, which
  runs ``train``, ``evaluate``, ``predict`` and ``export`` for any task;
- ``training.py`` (run directories, resumable fit, ensembles), ``predictor.py`` (a run or an
  export, answering through the same signatures), ``export.py`` (TF Serving layout, checked in a
  fresh process, published atomically), ``hyperparameters.py``, ``progress.py``;
- building blocks: ``datasets.py`` (splits, hold-outs, UTF-8 reading), ``text.py`` (tokenizer,
  vocabularies, encoding and decoding), ``pipeline.py`` (length-bucketed batches),
  ``classification.py`` (accuracy, F1, confusion matrix), ``layers.py``, ``errors.py``.
"""
