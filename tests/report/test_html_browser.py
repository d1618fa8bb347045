"""The HTML report in a real browser: headless Chromium lays out a demo-like report at 1280 and 400 px (two
iframes of a test page whose script measures the DOM and writes the facts as JSON) and in light and dark
mode. Skips only where no Chromium is installed (`.ci/run` installs Debian's `chromium` when it can)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dsc.testing import report_stores
from tests.report.demo_like import demo_like_study

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WIDTHS = (1280, 400)

#: Runs in the test page once both iframes have loaded; writes <pre id="facts">JSON</pre>.
MEASURE = r"""
function measure(doc) {
  const root = doc.documentElement, vw = root.clientWidth, words = /\S+/g;
  const out = {viewport: vw, page: root.scrollWidth, tables: [], overflowing: [], images: [], broken: [],
               outside: [], colours: {}};
  for (const box of doc.querySelectorAll(".table-box")) {
    const t = box.querySelector("table");
    out.tables.push({label: box.getAttribute("aria-label"), table: t.getBoundingClientRect().width,
                     box: box.clientWidth, scrolls: box.scrollWidth > box.clientWidth + 1});
  }
  for (const c of doc.querySelectorAll("th, td"))
    if (c.scrollWidth > c.clientWidth + 1) out.overflowing.push(c.textContent);
  for (const im of doc.images)
    out.images.push({alt: im.alt, natural: im.naturalWidth, shown: im.getBoundingClientRect().width});
  for (const el of doc.querySelectorAll("th, td")) {     // a word split over two lines has two boxes
    const walker = doc.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode())
      for (const m of n.data.matchAll(words)) {
        const r = doc.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
        const lines = new Set(Array.from(r.getClientRects(), b => Math.round(b.top)));
        if (lines.size > 1) out.broken.push(m[0]);
      }
  }
  for (const el of doc.body.querySelectorAll("*")) {   // outside the table boxes nothing passes the edge
    if (el.closest(".table-box")) continue;
    if (el.getBoundingClientRect().right > vw + 1) out.outside.push(el.tagName + ": " + el.textContent.slice(0, 60));
  }
  const style = (sel) => { const s = doc.defaultView.getComputedStyle(doc.querySelector(sel)); return s.color; };
  out.colours = {background: doc.defaultView.getComputedStyle(doc.body).backgroundColor, text: style("body"),
                 note: style(".note"), header: style("thead th"), link: style("nav a")};
  return out;
}
window.addEventListener("load", () => {
  const facts = {};
  for (const f of document.querySelectorAll("iframe")) facts[f.dataset.width] = measure(f.contentDocument);
  const pre = document.createElement("pre"); pre.id = "facts"; pre.textContent = JSON.stringify(facts);
  document.body.appendChild(pre);
});
"""


def find_browser() -> str | None:
    """A Chromium-like browser on PATH (or $DSC_CHROMIUM), else None."""
    if os.environ.get("DSC_CHROMIUM"):
        return os.environ["DSC_CHROMIUM"]
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def measure_page(browser: str, report: Path, tmp: Path, dark: bool = False) -> dict[str, dict]:
    """Lay the report out at each of WIDTHS (srcdoc iframes share the test page's origin, so its script
    can read their DOM) and return the measured facts per width."""
    doc = html.escape(report.read_text(), quote=True)
    frames = "".join(f'<iframe data-width="{w}" style="display:block;width:{w}px;height:900px;border:0" '
                     f'srcdoc="{doc}"></iframe>' for w in WIDTHS)
    page = tmp / ("measure-dark.html" if dark else "measure.html")
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{frames}<script>{MEASURE}</script></body></html>")
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--mute-audio",
           "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--window-size=1300,1900",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()] + (["--force-dark-mode"] if dark else [])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="facts">(.*?)</pre>', res.stdout, re.S)
    assert found, f"no measurements from {browser} (exit {res.returncode}): {res.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def _luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        pytest.skip("no Chromium found (install Debian's chromium; .ci/run does when apt is available)")
    return path


@pytest.mark.slow
def test_demo_report_lays_out_in_chromium(run_dsc, tmp_path, browser):
    """The demo-like report with its pictures: at 1280 px no table is wider than its box, at 400 px the page
    does not scroll sideways (only the table boxes do); no cell overflows, no word of a table breaks over two
    lines, every figure loads; text is readable on the light and the dark background."""
    runs = demo_like_study(tmp_path / "runs")
    data, aug = report_stores(tmp_path)
    out = tmp_path / "report.html"
    res = run_dsc("report", runs, "--per-class", "--baseline", "ce/none[timm:resnet18]", "--confusion",
                  tmp_path / "cm.png", "--samples", tmp_path / "samples.png", "--data", data, "--synthetic", aug,
                  "--no-quality", "--html", out)
    assert res.code == 0, res
    for dark in (False, True):
        facts = measure_page(browser, out, tmp_path, dark=dark)
        wide, narrow = facts["1280"], facts["400"]
        assert wide["viewport"] == 1280 and narrow["viewport"] == 400
        for width, f in facts.items():
            assert f["overflowing"] == [], (width, f["overflowing"])
            assert f["broken"] == [], (width, f["broken"])
            assert f["outside"] == [], (width, f["outside"])
            assert f["page"] <= f["viewport"], width          # the body never scrolls sideways
            assert len(f["images"]) == 2 and all(im["natural"] > 0 for im in f["images"]), f["images"]
            assert all(im["shown"] <= f["viewport"] for im in f["images"])
            c = f["colours"]
            for key in ("text", "header", "note", "link"):
                assert contrast(c[key], c["background"]) >= 4.5, (width, dark, key, c)
        assert len(wide["tables"]) >= 6
        for t in wide["tables"]:
            assert t["table"] <= t["box"] + 0.5 and not t["scrolls"], t
        assert any(t["scrolls"] for t in narrow["tables"])    # the wide ones scroll inside their box
        assert _luminance(wide["colours"]["background"]) < 0.05 if dark else \
            _luminance(wide["colours"]["background"]) > 0.9
