"""Checkpoints: safetensors weights with JSON metadata in the same file, written atomically.

The safetensors header carries a ``skipswitch`` entry holding a JSON document
(architecture, skip modes, dataset, metrics, package version). A write goes to a
temporary file in the target directory and is renamed over the target, so a crash
never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Self

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import __version__
from .errors import SkipswitchError
# The atomic writers and the versioned-file base live in the torch-free io module; re-exported here
# because most writers of checkpoints also write JSON beside them.
from .io import (VersionedFile, _json_default, atomic_commit, atomic_temporary, atomic_write_bytes, atomic_write_json,  # noqa: F401
                 atomic_write_text)

METADATA_KEY = "skipswitch"


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``tensors`` and ``metadata`` (JSON-serialisable) atomically to ``path``."""
    path = Path(path)
    meta = {**metadata, "package_version": __version__}
    header = {METADATA_KEY: json.dumps(meta, default=_json_default)}
    # safetensors refuses shared or non-contiguous storage: give it owned contiguous copies.
    owned = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    fd, tmp = atomic_temporary(path)
    os.close(fd)
    try:
        save_file(owned, tmp, metadata=header)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        atomic_commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SkipswitchError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SkipswitchError(f"checkpoint {path} is corrupted or not a safetensors file ({exc})") from None
    if raw is None:
        raise SkipswitchError(f"checkpoint {path} has no skipswitch metadata; was it written by skipswitch?")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise SkipswitchError(f"checkpoint {path} has malformed metadata") from None


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SkipswitchError(f"checkpoint {path} is corrupted ({exc})") from None
    return tensors, meta


def save_model(path: str | Path, model: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """A model checkpoint: its state dict plus ``{'model': model.config, **metadata}``."""
    meta = {"kind": "model", "model": model.config, **metadata}
    save_tensors(path, model.state_dict(), meta)


def load_model(path: str | Path, expect: dict[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model described in the checkpoint and load its weights.

    ``expect`` may name config fields that must match (e.g. ``{"name": "resnet20"}``).
    """
    from .models import create_model_from_config

    tensors, meta = load_tensors(path)
    config = meta.get("model")
    if not isinstance(config, dict):
        raise SkipswitchError(f"checkpoint {path} has no model description in its metadata")
    for key, value in (expect or {}).items():
        if config.get(key) != value:
            raise SkipswitchError(
                f"checkpoint {path} holds {key}={config.get(key)!r} but {value!r} was expected"
            )
    model = create_model_from_config(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "state dict mismatch"
        raise SkipswitchError(f"checkpoint {path} does not match its declared architecture: {first}") from None
    return model, meta
