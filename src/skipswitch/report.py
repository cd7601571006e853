"""One report (Markdown and self-contained HTML) from sections of tables, notes and plots."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import atomic_write_text
from .io import markdown_table


@dataclass
class Section:
    title: str
    notes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)  # PNG files
    status: str = "ok"  # ok | failed: ... | skipped: ...


def to_markdown(title: str, intro: list[str], sections: list[Section], out_dir: Path) -> str:
    lines = [f"# {title}", "", *intro, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.status != "ok":
            lines += [f"**{s.status}**", ""]
        lines += [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
        lines += [markdown_table(s.header, s.rows), ""] if s.header else []
        for img in s.images:
            rel = Path(img).resolve().relative_to(out_dir.resolve()) if Path(img).resolve().is_relative_to(out_dir.resolve()) else img
            lines += [f"![{s.title}]({rel})", ""]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
.failed{color:#b00;font-weight:bold}.note{color:#444}"""


def to_html(title: str, intro: list[str], sections: list[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in intro]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.status != "ok":
            parts.append(f"<p class='failed'>{html.escape(s.status)}</p>")
        if s.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in s.notes) + "</ul>")
        if s.header:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in s.header) + "</tr>")
            for row in s.rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        for img in s.images:
            # Embedded, so the HTML file opens anywhere on its own.
            data = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(s.title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: Path, title: str, intro: list[str], sections: list[Section]) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, to_markdown(title, intro, sections, out_dir))
    atomic_write_text(html_path, to_html(title, intro, sections))
    return md_path, html_path
