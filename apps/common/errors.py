"""Errors that reach the user as one clear line instead of a traceback."""


class SeqappsError(Exception):
    """A problem with the user's input (a file, a line, a value) that the user can fix.

    The ``seqapps`` command prints ``seqapps: error: <message>`` and exits with status 2 for these;
    anything else is a bug and keeps its traceback.
    """
