"""The shared base of job configs and job results: validation and the typed result file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import SkipswitchError

R = TypeVar("R", bound="JobResult")


class JobConfig(BaseModel):
    """A job's validated input (build it with ``training.validated``); unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class RunOptions(JobConfig):
    """How a training job runs (not what it computes)."""

    data_dir: Optional[Path] = Field(None, description="Directory holding a local dataset (CIFAR, SVHN, ImageFolder).")
    quiet: bool = Field(False, description="No progress bars.")
    resume: bool = Field(False, description="Continue the run in --out from its last finished epoch.")


class JobResult(BaseModel):
    """A job's result, which is also its JSON file: ``save`` writes it atomically, ``load`` checks
    the file's ``kind`` and ``version`` before validating the rest.

    Subclasses set KIND and VERSION; the fields carry them into the file."""

    model_config = ConfigDict(populate_by_name=True)
    KIND: ClassVar[str] = "result"
    VERSION: ClassVar[int] = 1
    kind: str = ""
    version: int = 0

    def model_post_init(self, _context) -> None:
        self.kind, self.version = self.KIND, self.VERSION

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)

    def save(self, path: str | Path) -> Path:
        from ..checkpoint import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SkipswitchError(f"result file {path} not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SkipswitchError(f"result file {path} is not readable JSON ({exc})") from None
        found = (data.get("kind"), data.get("version")) if isinstance(data, dict) else (None, None)
        if found != (cls.KIND, cls.VERSION):
            raise SkipswitchError(f"result file {path} holds kind {found[0]!r} version {found[1]!r}; "
                                  f"expected kind {cls.KIND!r} version {cls.VERSION}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise SkipswitchError(f"result file {path}: invalid {field}: {err['msg']}") from None
