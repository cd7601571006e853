"""The shared base of job configs and job results: validation and the typed result file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..io import VersionedFile


class JobConfig(BaseModel):
    """A job's validated input (build it with ``training.validated``); unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class RunOptions(JobConfig):
    """How a training job runs (not what it computes)."""

    data_dir: Optional[Path] = Field(None, description="Directory holding a local dataset (CIFAR, SVHN, ImageFolder).")
    quiet: bool = Field(False, description="No progress bars.")
    resume: bool = Field(False, description="Continue the run in --out from its last finished epoch.")


class JobResult(VersionedFile):
    """A job's result, which is also its JSON file (``save``/``load`` from ``VersionedFile``).
    Subclasses set ``kind: Literal[...]``; results ignore unknown fields, so a newer writer's
    additions do not break an older reader."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    version: Literal[1] = 1

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)
