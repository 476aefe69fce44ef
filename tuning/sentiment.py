"""Sentiment's search space (``seqapps tune sentiment``).

Tuned, per architecture (defaults in ``apps/sentiment/model.py``; batch size 16, 32 or 64):

=============  ==============================================================================
lstm           ``embedding_dim`` 64/128/256, ``units`` 48/96/192, ``dropout`` 0.2-0.6,
               ``token_dropout`` 0-0.3, ``learning_rate`` 3e-4-3e-3 (log)
tcn            ``embedding_dim`` 64/128/256, ``filters`` 64/128/256, ``kernel_size`` 2/3/5,
               ``dilations`` 1,2 / 1,2,4 / 1,2,4,8 / 1,2,4,8,16, ``dropout`` 0.1-0.5,
               ``learning_rate`` 1e-3-1e-2 (log)
transformer    ``embedding_dim`` 64/128/256, ``num_heads`` 2/4/8, ``intermediate_dim``
               128/256/512, ``layers`` 1-3, ``dropout`` 0.1-0.4, ``learning_rate`` 1e-4-1e-3
               (log)
=============  ==============================================================================

Not tuned (fixed for the search, ``--set`` to change): ``max_tokens`` and ``vocabulary_size``,
which shape the preprocessing every trial shares.
"""

from __future__ import annotations

from tuning.hypermodel import AppHyperModel, Space


class SentimentHyperModel(AppHyperModel):
    batch_sizes = (16, 32, 64)

    def architecture_space(self, space: Space, architecture: str) -> None:
        space.choice("embedding_dim", [64, 128, 256])
        if architecture == "lstm":
            space.choice("units", [48, 96, 192])
            space.real("dropout", 0.2, 0.6, step=0.1)
            space.real("token_dropout", 0.0, 0.3, step=0.1)
            space.real("learning_rate", 3e-4, 3e-3, log=True)
        elif architecture == "tcn":
            space.choice("filters", [64, 128, 256])
            space.choice("kernel_size", [2, 3, 5])
            space.choice("dilations", [[1, 2], [1, 2, 4], [1, 2, 4, 8], [1, 2, 4, 8, 16]])
            space.real("dropout", 0.1, 0.5, step=0.1)
            space.real("learning_rate", 1e-3, 1e-2, log=True)
        elif architecture == "transformer":
            space.choice("num_heads", [2, 4, 8])
            space.choice("intermediate_dim", [128, 256, 512])
            space.integer("layers", 1, 3)
            space.real("dropout", 0.1, 0.4, step=0.1)
            space.real("learning_rate", 1e-4, 1e-3, log=True)
