"""Sentiment: text -> label. See ``apps/sentiment/task.py`` for the commands and data formats."""

# Here, not in model.py, so that the command line can offer them without importing TensorFlow.
ARCHITECTURES = ("lstm", "tcn", "transformer")

# Models averaged by default (``--ensemble``): on SST-2, 10 LSTMs trained with different seeds
# score about 3 points of test accuracy above their average member and reach the 83 %
# within its 15 minutes of training (bench/RESULTS.md); ``--ensemble 1`` trains 10x faster.
DEFAULT_ENSEMBLE = 10
