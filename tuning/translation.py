"""Translation's search space (``seqapps tune translation``).

Tuned, per architecture (defaults in ``apps/translation/model.py``; batch size 32, 64 or 128):

============  ================================================================================
both          ``dropout`` 0.1-0.3, ``label_smoothing`` 0/0.1/0.2, ``learning_rate`` 3e-4-2e-3
              (log, the schedule's peak), ``warmup_steps`` 200/500/1000
transformer   ``model_dim`` 128/256/512, ``num_heads`` 4/8, ``intermediate_dim`` 512/1024/2048,
              ``encoder_layers`` 2-4, ``decoder_layers`` 2-4, ``normalize_first``
lstm          ``units`` 256/512 (``embedding_dim`` follows it: tied embeddings need the two
              equal; with ``--set tie_embeddings=false`` it is tuned, 128/256/512),
              ``attention`` dot/additive
============  ================================================================================

Not tuned (fixed for the search, ``--set`` to change): the subword vocabulary
(``vocabulary_size``, ``shared_vocabulary``) and ``max_source_tokens``/``max_target_tokens``,
which shape the preprocessing every trial shares, and decoding (``beam_width``,
``length_penalty``...), which does not change training (``evaluate --search``,
``export --beam-width``). Trials are compared by greedy validation BLEU (``val_bleu``).
"""

from __future__ import annotations

from tuning.hypermodel import AppHyperModel, Space


class TranslationHyperModel(AppHyperModel):
    batch_sizes = (32, 64, 128)

    def architecture_space(self, space: Space, architecture: str) -> None:
        space.real("dropout", 0.1, 0.3, step=0.1)
        space.choice("label_smoothing", [0.0, 0.1, 0.2])
        space.real("learning_rate", 3e-4, 2e-3, log=True)
        space.choice("warmup_steps", [200, 500, 1000])
        if architecture == "transformer":
            space.choice("model_dim", [128, 256, 512])
            space.choice("num_heads", [4, 8])
            space.choice("intermediate_dim", [512, 1024, 2048])
            space.integer("encoder_layers", 2, 4)
            space.integer("decoder_layers", 2, 4)
            space.boolean("normalize_first")
        elif architecture == "lstm":
            space.choice("units", [256, 512])
            if space.defaults["tie_embeddings"]:
                space.values["embedding_dim"] = space.values["units"]
            else:
                space.choice("embedding_dim", [128, 256, 512])
            space.choice("attention", ["dot", "additive"])
