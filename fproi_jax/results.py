"""Results as data: a table, a figure, what a producer returns, and the one writer of pages.

Every producer (one run's evaluation, a multi-seed comparison, a downstream task) returns
`Table`s and `Figure`s and a JSON-able summary; `write_page` lays them out once, in reading
order, as Markdown, as one self-contained HTML page and as JSON, each file written
atomically. No producer renders Markdown of its own and nothing parses it back.

One NaN policy for JSON: a NaN (an undefined value, e.g. an AUC on a test set of one grade)
is written as null, and +/-inf as the strings "inf"/"-inf", so the files are strict JSON
(`allow_nan=False`) and a NaN never stops a report.
"""
import dataclasses
import html as html_lib
import json
import math
import pathlib

from fproi_jax import atomic


@dataclasses.dataclass(frozen=True)
class Table:
    """A titled table of text cells, with notes (paragraphs) printed under it."""

    title: str
    header: tuple
    rows: tuple
    notes: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "header", tuple(self.header))
        object.__setattr__(self, "rows", tuple(tuple(row) for row in self.rows))
        object.__setattr__(self, "notes", tuple(self.notes))
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"table {self.title!r}: row {row} has {len(row)} cells, "
                                 f"the header {len(self.header)}")

    def markdown(self, level: int = 2) -> str:
        lines = [self.header, ["---"] * len(self.header), *self.rows]
        table = "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines)
        notes = "".join(f"\n\n{note}" for note in self.notes)
        return f"{'#' * level} {self.title}\n\n{table}{notes}\n"

    def html(self) -> str:
        esc = html_lib.escape
        parts = [f"<h2>{esc(self.title)}</h2>\n<table>",
                 "<tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in self.header) + "</tr>"]
        parts += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                  for row in self.rows]
        parts.append("</table>")
        parts += [f"<p>{esc(note)}</p>" for note in self.notes]
        return "\n".join(parts)


@dataclasses.dataclass(frozen=True)
class Figure:
    """A picture on a page: its title and its path relative to the page's folder."""

    title: str
    path: str

    def markdown(self, level: int = 2) -> str:
        return f"{'#' * level} {self.title}\n\n![{self.title}]({self.path})\n"

    def html(self) -> str:
        esc = html_lib.escape
        return (f"<h2>{esc(self.title)}</h2>\n<p><img src=\"{esc(self.path)}\" "
                f"alt=\"{esc(self.title)}\"></p>")


@dataclasses.dataclass
class Result:
    """What a producer returns: its tables, figures and summary (JSON-able), or the reason
    it could not run (`skipped`), so that the rest of a report is still written."""

    tables: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)
    summary: dict = dataclasses.field(default_factory=dict)
    skipped: str | None = None


def strict_json(value):
    """`value` with NaN as None and +/-inf as "inf"/"-inf" (the module's NaN policy)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def json_text(value) -> str:
    return json.dumps(strict_json(value), indent=2, allow_nan=False) + "\n"


def markdown(title: str, intro: str, items) -> str:
    """The page in Markdown: `items` (Tables and Figures) in reading order."""
    return "\n".join([f"# {title}\n", *(f"{intro}\n",) * bool(intro),
                      *(item.markdown() for item in items)])


def html(title: str, intro: str, items) -> str:
    """One self-contained page: `items` in reading order, tables as HTML tables, figures by
    relative path."""
    esc = html_lib.escape
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #999;padding:3px 8px;text-align:left}"
        "th{background:#eee}img{max-width:100%}</style></head><body>",
        f"<h1>{esc(title)}</h1>", *(f"<p>{esc(intro)}</p>",) * bool(intro)]
    parts += [item.html() for item in items]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_page(out_dir, title: str, intro: str, items, summary: dict,
               stem: str = "report", json_name: str = "summary.json") -> None:
    """Writes <stem>.md, index.html (<stem>.html for another stem) and `json_name` into
    out_dir, each atomically: `items`, Tables and Figures in reading order (a figure beside
    the table it illustrates). The summary is checked to be strict JSON before any file is
    written."""
    out_dir = pathlib.Path(out_dir)
    text = json_text(summary)
    page = "index.html" if stem == "report" else f"{stem}.html"
    atomic.write_text(out_dir / json_name, text)
    atomic.write_text(out_dir / f"{stem}.md", markdown(title, intro, items))
    atomic.write_text(out_dir / page, html(title, intro, items))
