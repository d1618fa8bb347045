"""The HTML report's content (no browser): a document with header, inputs, Findings first, real tables that
hold every cell of the table model, embedded figures, escaped user text. Layout: test_html_browser.py."""

from __future__ import annotations

import base64
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from dsc.report import make_report
from dsc.report.html import column_groups, figure_html, to_html
from dsc.report.inputs import inputs_section
from dsc.report.table import Cell, Section
from dsc.settings import ReportSettings
from tests.report.demo_like import CLASSES, demo_like_study

HOSTILE = '<script>alert("x")</script> & [bold]ce/none[timm:test_resnet][/bold]'


class Doc(HTMLParser):
    """The parts of a document the tests look at: tags in order, tables as rows of cell texts, img srcs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.cell is not None:
            self.cell.append(data)


def demo_report(tmp_path: Path):
    settings = ReportSettings(baseline="ce/none[timm:resnet18]", per_class=True)
    return make_report([demo_like_study(tmp_path / "runs")], settings)


def test_document_from_the_table_model(tmp_path):
    """Header (title, date, version, inputs with fingerprints), then the Findings, then one <table> (or
    several parts) per section holding every cell of the model; no terminal text in a <pre>."""
    result = demo_report(tmp_path)
    text = to_html(result.sections, result.warnings, report=result.report, runs=result.runs,
                   command="dsc report runs --html r.html")
    doc = Doc(text)
    assert text.startswith("<!DOCTYPE html>") and "<pre" not in text
    tags = [t for t, _ in doc.tags]
    assert tags.index("header") < tags.index("main")
    header = text[:text.index("</header>")]
    assert result.report["created"] in header and "dsc 0.1.0" in header and "dsc report runs --html r.html" in header
    assert "fp-data" in header and "demo-out/aug-ood.h5" in header and "fp-ood-test" in header   # inputs
    ids = [a.get("id") for t, a in doc.tags if t == "section"]
    assert ids[:3] == ["inputs", "runs", "findings-the-three-questions"]   # the Findings before every table
    assert ids[3] == "comparison"
    body_tables = doc.tables[2:]                 # after Inputs and Runs
    for section in [s for s in result.sections if not s.title.startswith("Findings")]:
        parts = column_groups(section)
        mine, body_tables = body_tables[:len(parts)], body_tables[len(parts):]
        for cols, table in zip(parts, mine, strict=True):
            assert table[0] == [section.columns[i] for i in cols], section.title
            assert len(table) == len(section.rows) + 1
            for row, cells in zip(section.rows, table[1:], strict=True):
                for i, cell in zip(cols, cells, strict=True):
                    assert cell.removesuffix(" ✓").removesuffix(" ✗") == row[i].text, (section.title, i)
    assert body_tables == []
    findings = next(s for s in result.sections if s.title.startswith("Findings"))
    page = unescape("".join(doc.text))
    for row in findings.rows:
        assert row[0].text in page and row[1].text in page
    assert "<h3>Caveats</h3>" in text      # the label-noise row of the missing OOD store


def test_wide_sections_split_keeping_the_name_column(tmp_path):
    """The demo's comparison is wider than 1280 px in one table: it is split, every part starts with the
    configuration, the primary metric and its Δ stay in the first part, every column is shown once."""
    result = demo_report(tmp_path)
    comparison = result.sections[0]
    parts = column_groups(comparison)
    assert len(parts) > 1 and all(p[0] == 0 for p in parts)
    assert sorted(i for p in parts for i in p[1:]) == list(range(1, len(comparison.columns)))
    first = [comparison.columns[i] for i in parts[0]]
    assert "top-1" in first and any(c.startswith("Δ") for c in first)
    small = Section("s", ["a", "b"], rows=[[Cell("x"), Cell("1.0")]], right={1})
    assert column_groups(small) == [[0, 1]]


def test_user_text_is_escaped_everywhere(tmp_path):
    """Names, cells, notes, warnings, titles and figure titles are text, never markup; the bracket part of a
    name such as ce/none[timm:test_resnet] is shown as written."""
    section = Section(HOSTILE, ["configuration", HOSTILE], rows=[[Cell(HOSTILE), Cell(HOSTILE, "best")]],
                      notes=[HOSTILE], right={1})
    findings = Section("Findings: the three questions", ["question", "answer"],
                       rows=[[Cell("2. " + HOSTILE), Cell(HOSTILE)], [Cell(HOSTILE), Cell(HOSTILE)]])
    text = to_html([findings, section], [HOSTILE], title=HOSTILE, figures=[(HOSTILE, tmp_path / "missing.png")],
                   report={"created": HOSTILE, "baseline": HOSTILE, "configurations": []}, command=HOSTILE)
    assert "<script" not in text and "alert(\"x\")" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    visible = unescape(re.sub(r"<[^>]+>", "", text))
    assert visible.count(HOSTILE) >= 10   # title x2, warning, findings x4, section title x2, header, cell x2...
    assert "[bold]ce/none[timm:test_resnet][/bold]" in visible


def test_class_names_escaped_through_the_cli(run_dsc, tmp_path):
    runs = demo_like_study(tmp_path / "runs")
    out = tmp_path / "r.html"
    assert run_dsc("report", runs, "--per-class", "--html", out).code == 0
    text = out.read_text()
    assert CLASSES[-1] not in text and "bolt &lt;M6&gt; &amp; &quot;long&quot;" in text
    assert "ce/none[timm:test_resnet]" in unescape(re.sub(r"<[^>]+>", "", text))


def _png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (30, 20), (200, 30, 30)).save(path)
    return path


def test_figures_embedded_as_data_uris(tmp_path):
    """PNG and SVG are embedded (their exact bytes); a PDF or a missing file is named, not linked."""
    png = _png(tmp_path / "a.png")
    svg = tmp_path / "b.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>')
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    text = to_html([], figures=[("Results", png), ("Vector", svg), ("Paper", pdf), ("Gone", tmp_path / "x.png")])
    srcs = [a["src"] for t, a in Doc(text).tags if t == "img"]
    assert len(srcs) == 2
    assert base64.b64decode(srcs[0].removeprefix("data:image/png;base64,")) == png.read_bytes()
    assert base64.b64decode(srcs[1].removeprefix("data:image/svg+xml;base64,")) == svg.read_bytes()
    assert "c.pdf (a .pdf file cannot be embedded; write .png or .svg)" in text and "x.png (missing)" in text
    assert 'alt="Results"' in figure_html("Results", png)


def test_cli_embeds_the_pictures_it_drew(run_dsc, study, tmp_path):
    """`dsc report --confusion cm.png --html r.html`: the one file holds the picture; nothing is loaded from
    elsewhere (every src is a data: URI, every href an anchor of the page)."""
    cm, out = tmp_path / "cm.png", tmp_path / "r.html"
    res = run_dsc("report", study, "--confusion", cm, "--html", out)
    assert res.code == 0, res
    doc = Doc(out.read_text())
    srcs = [a["src"] for t, a in doc.tags if t == "img"]
    assert len(srcs) == 1 and base64.b64decode(srcs[0].split(",", 1)[1]) == cm.read_bytes()
    hrefs = [a["href"] for t, a in doc.tags if "href" in a]
    ids = {a["id"] for _, a in doc.tags if "id" in a}
    assert hrefs and all(h.startswith("#") and h[1:] in ids for h in hrefs)
    assert not any(t in ("script", "link", "iframe") for t, _ in doc.tags)


def test_styles_for_narrow_screens_dark_mode_and_print(tmp_path):
    text = to_html([Section("T", ["a"], rows=[[Cell("1")]])])
    assert 'name="viewport"' in text and "prefers-color-scheme: dark" in text and "@media print" in text
    assert "overflow-x: auto" in text


def test_quality_only_report_has_a_date_and_its_stores():
    """`dsc report --synthetic AUG.h5 --data DATA.h5 --html`: no runs, still dated, the assessed stores listed."""
    quality = {"data": "data.h5", "data_fingerprint": "fp-d", "stores": [{"path": "aug.h5", "fingerprint": "fp-a"}]}
    rows = [[c.text for c in r] for r in inputs_section({"quality": quality}).rows]
    assert rows == [["DATA.h5", "data.h5", "fp-d", "quality assessment"],
                    ["assessed synthetic", "aug.h5", "fp-a", "quality assessment"]]
    text = to_html([], report={"quality": quality})
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT', text) and "fp-a" in text
