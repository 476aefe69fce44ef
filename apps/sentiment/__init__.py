"""Sentiment: text -> label. See ``apps/sentiment/task.py`` for the commands and data formats."""

# Here, not in model.py, so that the command line can offer them without importing TensorFlow.
ARCHITECTURES = ("lstm", "tcn", "transformer")
