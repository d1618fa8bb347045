"""`dsc study` draws the report's pictures ([report] results_figure, samples, confusion, embedding_map,
embedding_run, or the options of the same names) with dsc report's function, lists them in the JSON report and
embeds them in --html; a wrong picture setting is refused before any run trains (--dry-run too)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from .report.test_figures import MAGIC, write_embeddings
from .test_study import _fake_training, inputs, write_study

__all__ = ["inputs"]   # the fixture, used by name


def _study(tmp_path: Path, inputs: dict[str, Path], report: str, study_extra: str = "") -> Path:
    return write_study(tmp_path, inputs, "[baseline]\ncorruptions = false\n\n[report]\ncurves = false\n" + report,
                       study_extra)


def test_study_draws_the_report_figures_lists_them_and_embeds_them_in_html(run_dsc, tmp_path, inputs,
                                                                           monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    results, cm = tmp_path / "results.png", tmp_path / "cm.svg"
    path = _study(tmp_path, inputs, f'results_figure = "{results}"\nconfusion = "{cm}"\n')
    html = tmp_path / "r.html"
    res = run_dsc("study", path, "--json", "--html", html)
    assert res.code == 0, res
    assert len(calls) == 24                                          # 16 runs + 8 probes really ran
    assert results.read_bytes().startswith(MAGIC[".png"]) and cm.read_bytes().startswith(MAGIC[".svg"])
    report = json.loads(res.out)
    assert [(f["kind"], f["path"]) for f in report["figures"]] == [("results", str(results)), ("confusion", str(cm))]
    assert report["written"] == [str(results), str(cm), str(html)]
    doc = html.read_text()
    assert base64.b64encode(results.read_bytes()).decode("ascii") in doc      # the PNG as a data URI
    assert "Results per configuration" in doc and "Confusion matrices" in doc
    # the second time nothing trains; the option replaces the file's value, in the format of its suffix
    calls.clear()
    pdf = tmp_path / "results.pdf"
    res = run_dsc("study", path, "--results-figure", pdf)
    assert res.code == 0, res
    assert calls == [] and pdf.read_bytes().startswith(MAGIC[".pdf"])
    assert f"wrote {pdf}" in res.out and f"wrote {cm}" in res.out and f"wrote {results}" not in res.out


def test_study_draws_the_embedding_map_of_the_chosen_run(run_dsc, tmp_path, inputs, monkeypatch):
    import dsc.probe

    _fake_training(monkeypatch, [])
    fake_probe = dsc.probe.probe

    def probe(run, settings, **kwargs):                              # the probe writes embeddings.h5
        fake_probe(run, settings, **kwargs)
        write_embeddings(Path(run), ["gear", "bolt", "nut"], seed=settings.seed)

    monkeypatch.setattr("dsc.probe.probe", probe)
    out = tmp_path / "map.svg"
    path = _study(tmp_path, inputs, f'embedding_map = "{out}"\nembedding_run = "supcon-normal-s1"\n')
    res = run_dsc("study", path, "--json")
    assert res.code == 0, res
    assert "supcon-normal-s1" in out.read_text() and "supcon-none-s0" not in out.read_text()
    assert [f["kind"] for f in json.loads(res.out)["figures"]] == ["embedding"]


@pytest.mark.parametrize("report, args, match", [
    ('results_figure = "{tmp}/results.jpg"', (), r"\[report\] results_figure: .*unknown file type \.jpg"),
    ('confusion = "{tmp}/cm"', (), r"\[report\] confusion: .*unknown file type \(none\)"),
    ("", ("--embedding-map", "{tmp}/map.gif"), r"--embedding-map: .*unknown file type \.gif"),
    ('samples = "{tmp}/no-such-folder/s.png"', (), "output directory .*no-such-folder does not exist"),
    ('embedding = "{tmp}/map.png"', (), "unknown key.* embedding; did you mean embedding_map"),
    ('embedding_run = "supcon-none-s0"', (), "embedding_run chooses the run of the embedding map"),
    ('embedding_map = "{tmp}/m.png"\nembedding_run = "ce-none-s0"', (), "is a CE run.*supcon-none-s0"),
    ('embedding_map = "{tmp}/m.png"\nembedding_run = "nope"', (), "'nope' is none of the study's runs"),
    ('results_figure = 3', (), r"\[report\] results_figure: .*got 3"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_wrong_picture_is_refused_before_anything_runs(run_dsc, tmp_path, inputs, monkeypatch, report, args,
                                                         match, dry_run):
    calls: list = []
    _fake_training(monkeypatch, calls)
    path = _study(tmp_path, inputs, report.format(tmp=tmp_path) + "\n")
    res = run_dsc("study", path, *(a.format(tmp=tmp_path) for a in args), *(["--dry-run"] if dry_run else []))
    assert res.code == 1, res
    assert re.search(match, " ".join(res.err.split())), res.err
    assert calls == [] and not (tmp_path / "out").exists()


def test_embedding_map_needs_a_supcon_run(run_dsc, tmp_path, inputs, monkeypatch):
    calls: list = []
    _fake_training(monkeypatch, calls)
    path = _study(tmp_path, inputs, f'embedding_map = "{tmp_path}/m.png"\n', 'methods = ["ce"]')
    res = run_dsc("study", path, "--dry-run")
    assert res.code == 1 and "needs a SupCon run" in res.err and calls == []


def test_no_report_draws_no_picture_and_says_how_to_get_them(run_dsc, tmp_path, inputs, monkeypatch):
    _fake_training(monkeypatch, [])
    results = tmp_path / "results.png"
    path = _study(tmp_path, inputs, f'results_figure = "{results}"\n')
    res = run_dsc("study", path, "--no-report")
    assert res.code == 0, res
    assert not results.exists()
    assert f"no pictures drawn ({results}): `dsc study {path}` without --no-report" in " ".join(res.out.split())
