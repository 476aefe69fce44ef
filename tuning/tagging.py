"""Tagging's search space (``seqapps tune tagging``).

Tuned, per architecture (defaults in ``apps/tagging/model.py``; batch size 16, 32 or 64):

=======  ===================================================================================
both     ``word_dim`` 50/100/200, ``char_filters`` 32/64/128, ``dropout`` 0.1-0.5,
         ``word_dropout`` 0-0.3, ``decoder`` crf/softmax, ``learning_rate`` 5e-4-5e-3 (log)
lstm     ``units`` 64/128/256
tcn      ``filters`` 128/256/384, ``kernel_size`` 3/5, ``dilations`` 1,2 / 1,2,4 / 1,2,4,8
=======  ===================================================================================

Not tuned (fixed for the search, ``--set`` to change): ``max_tokens``,
``max_word_characters``, ``vocabulary_size`` (the preprocessing every trial shares) and
``char_dim``.
"""

from __future__ import annotations

from tuning.hypermodel import AppHyperModel, Space


class TaggingHyperModel(AppHyperModel):
    batch_sizes = (16, 32, 64)

    def architecture_space(self, space: Space, architecture: str) -> None:
        space.choice("word_dim", [50, 100, 200])
        space.choice("char_filters", [32, 64, 128])
        space.real("dropout", 0.1, 0.5, step=0.1)
        space.real("word_dropout", 0.0, 0.3, step=0.1)
        space.choice("decoder", ["crf", "softmax"])
        space.real("learning_rate", 5e-4, 5e-3, log=True)
        if architecture == "lstm":
            space.choice("units", [64, 128, 256])
        elif architecture == "tcn":
            space.choice("filters", [128, 256, 384])
            space.choice("kernel_size", [3, 5])
            space.choice("dilations", [[1, 2], [1, 2, 4], [1, 2, 4, 8]])
