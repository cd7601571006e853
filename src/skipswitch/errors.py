"""The one exception type that the CLI and the HTTP server turn into a one-line message."""


class SkipswitchError(Exception):
    """A user-facing error: bad input, a bad file, a run that cannot continue.

    The message must fit on one line and name the offending value, because the CLI
    prints it as ``error: <message>`` and exits non-zero instead of showing a traceback.
    """
