"""The shared output helpers: atomic PNG writer, Markdown table, lazy package exports."""

import os

import pytest

from skipswitch._lazy import lazy_exports
from skipswitch.io import atomic_write_figure, markdown_table


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_atomic_write_figure_writes_png_and_closes_the_figure(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "sub" / "plot.png"
    atomic_write_figure(path, _figure())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []
    assert [p.name for p in path.parent.iterdir()] == ["plot.png"]  # no temporary left behind


def test_atomic_write_figure_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    path = tmp_path / "plot.png"
    path.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_figure(path, _figure())
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    assert plt.get_fignums() == []


def test_markdown_table():
    assert markdown_table(["mode", "BRAM18"], [["long", 12], ["none", 3]]) == (
        "| mode | BRAM18 |\n|---|---|\n| long | 12 |\n| none | 3 |")


def test_lazy_exports_resolve_on_first_use():
    getattr_, names = lazy_exports("skipswitch.fpga", {"get_part": "parts", "PARTS": "parts"})
    assert names == ["PARTS", "get_part"]
    assert getattr_("get_part")("u280").name == "xcu280"
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        getattr_("missing")
    import skipswitch.supernet as supernet

    assert "SandwichLoss" in supernet.__all__ and supernet.SandwichLoss.__name__ == "SandwichLoss"


def test_with_hand_written_keeps_the_section_of_the_file_it_replaces(tmp_path):
    from skipswitch.io import with_hand_written

    path = tmp_path / "results.md"
    assert with_hand_written("# New\n\n| a |\n", path, "## Reading") == "# New\n\n| a |\n"  # no file yet
    path.write_text("# Old\n\n| b |\n\n## Reading\n\nwritten by hand\n")
    assert with_hand_written("# New\n\n| a |\n", path, "## Reading") == "# New\n\n| a |\n\n## Reading\n\nwritten by hand\n"
    path.write_text("# Old\nsee ## Reading inline, not a heading\n")  # only a heading at a line start counts
    assert with_hand_written("# New\n", path, "## Reading") == "# New\n"
