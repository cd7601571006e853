"""The package's layers import only downward (import-linter's layers contract in pyproject.toml)."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True)


def test_skipswitch_layers_import_only_downward():
    proc = lint_imports(ROOT, ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """A stand-in package with the same layer names, where models imports cli: the check fails and names it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    package = tmp_path / "skipswitch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for layer in config["layers"]:
        for name in layer.split(":"):
            (package / f"{name.strip()}.py").write_text("")
    (package / "models.py").write_text("from . import cli\n")
    proc = lint_imports(tmp_path, tmp_path)
    assert proc.returncode != 0
    assert "0 kept, 1 broken" in proc.stdout and "skipswitch.models -> skipswitch.cli" in proc.stdout
