"""Serving the apps' exports: ``seqapps serve``, TF Serving's REST and gRPC APIs over
``saved_models/`` (``serving/server.py``), so that clients written against it work unchanged
against ``tensorflow_model_server``, and the other way round."""
