"""The shared base of job configs and job results: validation and the typed result file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import SkipswitchError
from ..io import VersionedFile


class JobConfig(BaseModel):
    """A job's validated input (build it with ``training.validated``); unknown fields are errors.

    This is the one validation layer every command goes through before any work (and before
    torch is imported): value ranges are ``Field`` bounds, output paths ``io.OutDir``/``OutFile``
    (writable, or creatable under a writable directory), input text files ``io.TextFile`` (UTF-8)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RunOptions(JobConfig):
    """How a training job runs (not what it computes)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    data_dir: Optional[Path] = Field(None, description="Directory holding a local dataset (CIFAR, SVHN, ImageFolder).")
    quiet: bool = Field(False, description="No progress bars.")
    resume: bool = Field(False, description="Continue the run in --out from its last finished epoch.")


def run_kind(run_dir: Path) -> Optional[str]:
    """Which command's run ``run_dir`` holds, from its results.json (None: no results yet).
    Finished results carry ``kind``, the trainers' running results ``run``; federated results
    (federated.strategy) neither, but ``rounds_completed``."""
    try:
        data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "unreadable"
    if not isinstance(data, dict):
        return "unknown"
    return data.get("kind") or data.get("run") or ("fed-run" if "rounds_completed" in data else "unknown")


def check_run_dir(run_dir: Path, kind: str, resume: bool = False, resume_file: Optional[str] = None) -> None:
    """Refuse a run directory holding another command's run (its results.json would be overwritten),
    and ``--resume`` where there is nothing to resume from (when ``resume_file`` is given)."""
    found = run_kind(run_dir) if run_dir.is_dir() else None
    if found not in (None, kind):
        raise ValueError(f"{run_dir} holds a {found!r} run, not a {kind!r} run; choose another --out")
    if resume and resume_file is not None and not (run_dir / resume_file).is_file():
        raise ValueError(f"nothing to resume: {run_dir / resume_file} does not exist; run without --resume to start")


def check_dataset_fits(checkpoint: Path, trained: dict, dataset: dict) -> None:
    """A SkipswitchError unless ``dataset`` (``Dataset.to_dict()``) has the input shape and classes
    of the data set the checkpoint was trained on (its metadata's ``dataset``)."""
    def shape(d: dict) -> tuple:
        return (*(d.get("input_size") or ()), d.get("in_channels"), d.get("num_classes"))

    def text(d: dict) -> str:
        *dims, classes = shape(d)
        return f"{d.get('name')} ({'×'.join(map(str, dims))}, {classes} classes)"

    if trained and shape(trained) != shape(dataset):
        raise SkipswitchError(f"checkpoint {checkpoint} was trained on {text(trained)}; data set is {text(dataset)}")


class JobResult(VersionedFile):
    """A job's result, which is also its JSON file (``save``/``load`` from ``VersionedFile``).
    Subclasses set ``kind: Literal[...]``; results ignore unknown fields, so a newer writer's
    additions do not break an older reader."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    version: Literal[1] = 1

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)
