"""One typed function per command: ``job(config) -> result``.

Each area's module holds pydantic config models (validated input: the CLI derives its options
from them) and result models (the JSON file each job writes, read back with ``Result.load``).
The config models import nothing heavy, so the CLI can build its options without torch; the
jobs import the libraries when they run.
"""
