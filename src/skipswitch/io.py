"""Output helpers every report and plot uses: an atomic PNG writer and a Markdown table.

Kept free of torch at import time (the checkpoint module loads on first write), so the
light CLI paths that render tables stay fast.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence


def atomic_write_figure(path: str | Path, fig, dpi: int = 120) -> None:
    """Render a matplotlib figure as PNG in memory, write it atomically and close the figure."""
    import matplotlib.pyplot as plt

    from .checkpoint import atomic_write_bytes

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
