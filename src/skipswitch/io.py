"""Files every part writes: atomic writers (bytes, text, JSON, PNG), a Markdown table, and the
versioned JSON file contract (``VersionedFile``) that result, Pareto, workload and task files share.

Free of torch at import time, so the CLI can validate and render without loading it.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any, Optional, Self, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

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


def with_hand_written(page: str, path: Path, heading: str) -> str:
    """A rendered results ``page`` followed by the hand-written section that starts at the line
    ``heading`` in the file at ``path`` (kept when a benchmark re-renders its page), if it has one."""
    old = path.read_text() if path.is_file() else ""
    marker = "\n" + heading
    if marker not in old:
        return page
    return page.rstrip("\n") + "\n" + marker + old.split(marker, 1)[1]


_UMASK_LOCK = threading.Lock()


def _file_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` would give (mkstemp gives 0600)."""
    with _UMASK_LOCK:  # the umask can only be read by setting it
        umask = os.umask(0o22)
        os.umask(umask)
    return 0o666 & ~umask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphan_temporaries(directory: Path) -> None:
    """Delete ``.<name>.<pid>.<random>.tmp`` files whose writer process is gone (a kill mid-write);
    temporaries of live writers stay. Temporaries without a pid (older writers) count as orphans."""
    for tmp in directory.glob(".*.tmp"):
        parts = tmp.name.split(".")
        if len(parts) >= 4 and parts[-3].isdigit() and _pid_alive(int(parts[-3])):
            continue
        tmp.unlink(missing_ok=True)


def atomic_temporary(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temporary beside ``path`` for an atomic write (``atomic_commit``);
    orphans of killed writers in that directory are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temporaries(path.parent)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")


def atomic_commit(tmp: str, path: Path) -> None:
    """Give the written temporary the mode a plain ``open()`` would and rename it over ``path``."""
    os.chmod(tmp, _file_mode())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = atomic_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        atomic_commit(tmp, path)
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


SECRET_FIELDS = frozenset({"token"})


def validation_line(exc: ValidationError) -> str:
    """The first error of a pydantic validation as one line naming the field and the bad value."""
    err = exc.errors()[0]
    if not err["loc"]:  # a model-level check: its message names the values
        return err["msg"].removeprefix("Value error, ")
    field = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"{field} is missing"
    value = err.get("input")
    shown = str(value) if isinstance(value, Path) else repr(value)
    if err["loc"][-1] in SECRET_FIELDS:  # a rejected secret must not reach logs or the terminal
        shown = "<hidden>"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"invalid {field}={shown}: {err['msg'].removeprefix('Value error, ')}"


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


# -- validated paths: checked when a config is built, before any work (and before torch is imported) --

def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _creatable_dir(path: Path) -> Path:
    """``path`` if it is, or can be created as, a writable directory; else a ValueError naming why."""
    found = _nearest_existing(path)
    if not found.is_dir():
        raise ValueError(f"{found} is not a directory, so {path} cannot be created")
    if not os.access(found, os.W_OK | os.X_OK):
        raise ValueError(f"{found} is not writable")
    return path


def writable_dir(path: Path) -> Path:
    return _creatable_dir(path)


def writable_file(path: Path) -> Path:
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{path} is not writable")
    _creatable_dir(path.parent)
    return path


def utf8_file(path: Path) -> Path:
    """``path`` if it is a readable UTF-8 text file."""
    if not path.is_file():
        raise ValueError(f"{path} not found" if not path.exists() else f"{path} is not a file")
    try:
        with open(path, encoding="utf-8") as f:
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    return path


def utf8_file_unless(*names: str, binary_suffixes: tuple[str, ...] = ()):
    """A str check: a built-in name or a binary-suffixed path passes; any other value naming a file
    must be UTF-8 text (so a reader never meets undecodable bytes)."""
    def check(value: Optional[str]) -> Optional[str]:
        if value is None or value in names or value.endswith(binary_suffixes) or not Path(value).exists():
            return value
        utf8_file(Path(value))
        return value
    return check


OutDir = Annotated[Path, AfterValidator(writable_dir)]
OutFile = Annotated[Path, AfterValidator(writable_file)]
TextFile = Annotated[Path, AfterValidator(utf8_file)]
