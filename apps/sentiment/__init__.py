"""Sentiment: text -> label. See ``apps/sentiment/task.py`` for the commands and data formats."""
