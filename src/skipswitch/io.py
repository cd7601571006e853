"""Files every part writes: atomic writers (bytes, text, JSON, PNG), a Markdown table, and the
versioned JSON file contract (``VersionedFile``) that result, Pareto, workload and task files share.

Free of torch at import time, so the CLI can validate and render without loading it.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Self, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import SkipswitchError


def atomic_write_figure(path: str | Path, fig, dpi: int = 120) -> None:
    """Render a matplotlib figure as PNG in memory, write it atomically and close the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (no trailing newline); cells are ``str()``-ed."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def validation_line(exc: ValidationError) -> str:
    """The first error of a pydantic validation as one line naming the field and the bad value."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "value"
    if err["type"] == "missing":
        return f"{field} is missing"
    return f"invalid {field}={repr(err.get('input'))[:80]}: {err['msg'].removeprefix('Value error, ')}"


class VersionedFile(BaseModel):
    """A JSON file contract: subclasses give ``kind`` and ``version`` a ``Literal`` type and
    default, so a file of another kind or version is refused before its fields are read."""

    model_config = ConfigDict(extra="forbid")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.model_dump_json(indent=2, by_alias=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SkipswitchError(f"{path} not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SkipswitchError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
        return cls.from_data(data, str(path))

    @classmethod
    def from_data(cls, data: Any, source: str) -> Self:
        kind, version = cls.model_fields["kind"].default, cls.model_fields["version"].default
        found = (data.get("kind"), data.get("version")) if isinstance(data, dict) else (None, None)
        if found != (kind, version):
            raise SkipswitchError(f"{source} is kind {found[0]!r} version {found[1]!r}; "
                                  f"expected kind {kind!r} version {version!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SkipswitchError(f"{source}: {validation_line(exc)}") from None
