"""Task apps built from ``seqlayers``: sentiment, tagging, translation and captioning.

Each app trains, evaluates, predicts and exports through the ``seqapps`` console command
(``apps/cli.py``); machinery they share (errors, data plumbing, export) lives in ``apps/common``.
"""
