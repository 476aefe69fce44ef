"""Captioning's search space (``seqapps tune captioning``).

Tuned, per architecture (defaults in ``apps/captioning/model.py``; batch size 8, 16 or 32
images, each with its captions):

============  ================================================================================
both          ``encoder_width`` 16/32/48 (the built-in CNN encoder's stem), ``dropout``
              0.1-0.5, ``label_smoothing`` 0/0.1/0.2, ``learning_rate`` 3e-4-3e-3 (log, the
              schedule's peak), ``augment``
lstm          ``embedding_dim`` 128/256, ``units`` 128/256/512, ``attention_dim`` 128/256,
              ``attention_regularization`` 0/0.5/1
transformer   ``model_dim`` 128/256, ``num_heads`` 2/4/8, ``intermediate_dim`` 256/512/1024,
              ``decoder_layers`` 1-3
============  ================================================================================

Not tuned (fixed for the search, ``--set`` or ``--encoder`` to change): the image size and
the encoder (a ``keras.applications`` backbone computes its features once per search), the
vocabulary and caption lengths, which shape the preprocessing every trial shares, and
decoding (``beam_width``...). Trials are compared by greedy validation BLEU-4 (``val_bleu4``).
"""

from __future__ import annotations

from tuning.hypermodel import AppHyperModel, Space


class CaptioningHyperModel(AppHyperModel):
    batch_sizes = (8, 16, 32)

    def architecture_space(self, space: Space, architecture: str) -> None:
        if space.defaults["encoder"] == "cnn":
            space.choice("encoder_width", [16, 32, 48])
        space.real("dropout", 0.1, 0.5, step=0.1)
        space.choice("label_smoothing", [0.0, 0.1, 0.2])
        space.real("learning_rate", 3e-4, 3e-3, log=True)
        space.boolean("augment")
        if architecture == "lstm":
            space.choice("embedding_dim", [128, 256])
            space.choice("units", [128, 256, 512])
            space.choice("attention_dim", [128, 256])
            space.choice("attention_regularization", [0.0, 0.5, 1.0])
        elif architecture == "transformer":
            space.choice("model_dim", [128, 256])
            space.choice("num_heads", [2, 4, 8])
            space.choice("intermediate_dim", [256, 512, 1024])
            space.integer("decoder_layers", 1, 3)
