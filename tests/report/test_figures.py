"""The figures as a paper needs them (dsc/report/figures): format by suffix, resolution, fonts, the
results figure's marks, the confusion grid's layout, the embedding map's markers, labelled tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.report.conftest import BASE, write_run

LONG = "brake_caliper_front_left_assembly"


def _fig_texts_ok(fig) -> None:
    from dsc.report.figures.style import small_texts

    assert small_texts(fig) == []


def _overlaps(fig, texts) -> list[tuple[str, str]]:
    """Pairs of the given texts whose drawn boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def _report(root: Path, *, secondary: bool = True, seeds=BASE, configs=("none", "normal")) -> dict:
    from dsc.report import make_report
    from dsc.settings import ReportSettings

    for s, v in seeds.items():
        for i, label in enumerate(configs):
            top1 = v + 0.03 * i + 0.005 * s * i
            extra = {"robustness": {"mean_corruption_top1": top1 - 0.1},
                     "ood": {"holdout": {"msp": {"auroc": top1 + 0.1, "fpr95": 0.4}}}} if secondary else None
            write_run(root, f"ce-{label}-s{s}", method="ce", seed=s, top1=top1, label=label, extra=extra)
    return make_report([root], ReportSettings(curves=False)).report


def _panel(fig, title_start: str):
    return next(ax for ax in fig.axes if ax.get_title().startswith(title_start))


# ---------------------------------------------------------------------------------------- results figure
def test_results_figure_has_one_dot_per_seed_and_an_interval_per_configuration(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from dsc.report.figures.results import interval_of_mean, results_figure
    from dsc.report.stats import t_interval

    report = _report(tmp_path / "runs")
    fig = results_figure(report)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["top-1 (primary metric)", "corrupt. (secondary)",
                                                       "OOD AUROC (secondary)"]
    for ax in fig.axes[:3]:
        dots = [c for c in ax.collections if (c.get_gid() or "").startswith("seeds:")]
        assert sorted(c.get_gid() for c in dots) == ["seeds:ce/none", "seeds:ce/normal"]
        assert all(len(c.get_offsets()) == len(BASE) for c in dots)
        assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 2
    # the interval drawn is the Student t-interval of the mean at the report's level
    top = _panel(fig, "top-1")
    bar = next(c for c in top.containers if isinstance(c, ErrorbarContainer))
    seg = bar.lines[2][0].get_segments()[0]
    values = report["configurations"][0]["metrics"]["top1"]["values"]
    lo, hi = t_interval(values, 0.95)
    assert seg[0][0] == pytest.approx(100 * lo) and seg[1][0] == pytest.approx(100 * hi)
    assert interval_of_mean(values[:1], 0.95) is None
    # baseline: bold, named, a dashed line at its mean; the other configuration shows the report's Δ interval
    labels = {t.get_text(): t for t in top.get_yticklabels()}
    base = next(t for k, t in labels.items() if k.startswith("ce/none"))
    assert "(baseline)" in base.get_text() and base.get_fontweight() == "bold"
    d = report["configurations"][1]["deltas"]["top1"]
    other = next(k for k in labels if k.startswith("ce/normal"))
    assert f"[{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]" in other and "exploratory (n=4)" in other
    assert any(line.get_linestyle() == "--" for line in top.lines)
    _fig_texts_ok(fig)


def test_results_figure_without_secondary_metrics_has_one_panel_and_single_seeds_no_bars(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from dsc.report.figures.results import results_figure

    fig = results_figure(_report(tmp_path / "runs", secondary=False, seeds={0: 0.6}))
    assert len([ax for ax in fig.axes if ax.get_title()]) == 1
    ax = fig.axes[0]
    assert not any(isinstance(c, ErrorbarContainer) for c in ax.containers)   # one seed: no interval
    assert sum(len(c.get_offsets()) for c in ax.collections if (c.get_gid() or "").startswith("seeds:")) == 2


def test_results_figure_keeps_equal_seeds_apart_and_its_view_inside_0_to_100(tmp_path):
    from dsc.report.figures.results import results_figure

    fig = results_figure(_report(tmp_path / "runs", seeds={0: 0.02, 1: 0.02, 2: 0.10}))
    ax = fig.axes[0]
    dots = next(c for c in ax.collections if c.get_gid() == "seeds:ce/none").get_offsets()
    equal = sorted(float(y) for x, y in dots if abs(x - 2.0) < 1e-9)
    assert len(equal) == 2 and equal[1] - equal[0] >= 0.08      # two equal values: two dots, apart
    assert ax.get_xlim()[0] >= -2.0                               # the 3-seed interval reaches below 0


# ---------------------------------------------------------------------------------------- confusion grid
def _groups(root: Path, n: int, classes: list[str]):
    from dsc.report import make_report
    from dsc.settings import ReportSettings

    labels = ["none", "normal", "ood", "normal+ood"]
    for i in range(n):
        method = "ce" if i < 4 else "supcon+probe"
        for s in (0, 1):
            write_run(root, f"r{i}-s{s}", method=method, seed=s, top1=0.5 + 0.01 * i, label=labels[i % 4],
                      extra={"classes": classes}, confusion=(10 * np.eye(len(classes), dtype=int)).tolist())
    return make_report([root], ReportSettings(curves=False)).groups


def test_confusion_grid_wraps_after_three_panels_with_one_colour_bar_and_readable_text(tmp_path):
    from dsc.report.figures.confusion import confusion_figure

    classes = [LONG, "gear", "nut"]
    fig = confusion_figure(_groups(tmp_path / "runs", 5, classes))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5
    rows = sorted({round(ax.get_position().y0, 3) for ax in panels})
    cols = sorted({round(ax.get_position().x0, 3) for ax in panels})
    assert len(rows) == 2 and len(cols) == 3
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1
    for ax in panels:   # percent of the true class in every cell, n under the title
        cells = [t.get_text() for t in ax.texts]
        assert len(cells) == 9 and cells.count("100") == 3 and cells.count("0") == 6
        assert "n = 2 seeds × 30 test images" in ax.get_title()
    ticks = [t.get_text() for ax in panels for t in ax.get_yticklabels() + ax.get_xticklabels()]
    long = [t for t in ticks if t.replace("\n", "") == LONG]
    assert long and all(t.count("\n") == 1 and max(map(len, t.split("\n"))) <= 22 for t in long)
    assert _overlaps(fig, [ax.title for ax in panels]) == []
    _fig_texts_ok(fig)


def test_many_long_class_names_are_cut_to_two_lines_and_never_overlap(tmp_path):
    from dsc.report.figures.confusion import confusion_figure

    classes = [f"part number {i} with a fairly long descriptive name" for i in range(12)]
    fig = confusion_figure(_groups(tmp_path / "runs", 1, classes))
    ax = next(ax for ax in fig.axes if ax.images)
    ticks = ax.get_yticklabels()
    assert all(t.get_text().count("\n") == 1 and t.get_text().endswith("…") for t in ticks)
    assert _overlaps(fig, ticks) == [] and _overlaps(fig, ax.get_xticklabels()) == []


def test_confusion_titles_of_long_configuration_names_do_not_overlap(tmp_path):
    from dsc.report.figures.confusion import Panel, confusion_figure

    class G:
        def __init__(self, name):
            self.name, self.runs = name, []

    groups = [G("supcon+probe/normal+ood[extra,negatives,timm:resnet18] (incomplete)") for _ in range(3)]
    for g in groups:
        g.runs = [type("R", (), {"metrics": {"test": {"confusion": [[3, 1], [0, 4]]}, "classes": ["a", "b"]}})]
    fig = confusion_figure(groups)
    titles = [ax.title for ax in fig.axes if ax.images]
    assert all("\n" in t.get_text() for t in titles)
    assert _overlaps(fig, titles) == []
    assert Panel("x", np.ones((2, 2)), ["a", "b"], [4, 5]).n_text == "n = 9 test images over 2 seeds"


# ----------------------------------------------------------------------------------------- embedding map
def write_embeddings(run: Path, classes: list[str], seed: int = 0) -> None:
    from dsc.store import StoreWriter

    rng = np.random.default_rng(seed)
    n = 60
    labels = np.r_[np.arange(40) % len(classes), np.full(20, -1)]
    split = np.array(["test"] * 30 + ["train"] * 10 + ["holdout"] * 10 + ["ood"] * 10, dtype=object)
    feats = rng.normal(size=(n, 8)).astype(np.float32)
    feats[:, 0] *= 5    # one direction dominates: PC 1 explains most of the variance
    with StoreWriter(run / "embeddings.h5", kind="embeddings", force=True) as w:
        w.set_classes(classes)
        w.create_column("features", (8,), np.float32)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(features=feats, labels=labels, split=split,
                 digest=np.array([i.to_bytes(16, "little") for i in range(n)], dtype="S16"))
        w.finalize()


def test_embedding_map_marks_heldout_and_synthetic_ood_apart_and_shows_explained_variance(study):
    from dsc.report.figures.embedding import embedding_figure, pca
    from dsc.report.runs import load_run

    classes = [f"class {i}" for i in range(9)]   # more classes than colours: colour-marker pairs stay unique
    run = study / "ce-none-s0"
    write_embeddings(run, classes)
    fig = embedding_figure(load_run(run))
    ax = fig.axes[0]
    by_gid = {c.get_gid(): c for c in ax.collections}
    assert len(by_gid["holdout"].get_offsets()) == 10 and len(by_gid["ood"].get_offsets()) == 10
    assert sum(len(c.get_offsets()) for g, c in by_gid.items() if g.startswith("class:")) == 30

    def look(c):
        return (c.get_paths()[0].vertices.round(3).tobytes(), tuple(np.round(c.get_facecolor()[0], 3)))

    shapes = {g: c.get_paths()[0].vertices.round(3).tobytes() for g, c in by_gid.items()}
    assert shapes["holdout"] != shapes["ood"]
    assert all(shapes[g] not in (shapes["holdout"], shapes["ood"]) for g in shapes if g.startswith("class:"))
    assert len({look(c) for c in by_gid.values()}) == len(by_gid)
    ratio = pca(np.random.default_rng(0).normal(size=(50, 3)) * [5, 1, 0.1])[1]
    assert ratio[0] > ratio[1] and ratio.sum() <= 1
    assert "% of variance" in ax.get_xlabel() and "% of variance" in ax.get_ylabel()
    pc1 = float(ax.get_xlabel().split("(")[1].split()[0])
    assert pc1 > 50
    _fig_texts_ok(fig)


def test_embedding_run_chooses_the_run_and_names_the_choices_when_wrong(run_dsc, study, tmp_path):
    write_embeddings(study / "ce-none-s0", ["gear", "bolt", "nut"])
    write_embeddings(study / "ce-none-s1", ["gear", "bolt", "nut"], seed=1)
    out = tmp_path / "map.svg"
    res = run_dsc("report", study, "--embedding-map", out, "--embedding-run", "ce-none-s1", "--no-curves",
                  "--json")
    assert res.code == 0, res
    assert "ce-none-s1" in out.read_text() and "ce-none-s0" not in out.read_text()
    res = run_dsc("report", study, "--embedding-map", tmp_path / "m.png", "--embedding-run", "nope")
    assert res.code == 1 and "nope" in res.err and "ce-none-s0, ce-none-s1" in res.err
    res = run_dsc("report", study, "--embedding-run", "ce-none-s1")
    assert res.code == 1 and "--embedding-map" in res.err


# ------------------------------------------------------------------------------ formats, dpi, CLI, list
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF", ".svg": b"<?xml"}


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_every_report_figure_is_written_in_the_format_of_its_suffix(run_dsc, study, stores, tmp_path, suffix):
    data, aug = stores
    write_embeddings(study / "ce-none-s0", ["gear", "bolt", "nut"])
    paths = {k: tmp_path / f"{k}{suffix}" for k in ("results", "samples", "confusion", "embedding")}
    res = run_dsc("report", study, "--results-figure", paths["results"], "--samples", paths["samples"],
                  "--confusion", paths["confusion"], "--embedding-map", paths["embedding"], "--data", data,
                  "--synthetic", aug, "--no-quality", "--no-curves", "--json")
    assert res.code == 0, res
    for p in paths.values():
        assert p.read_bytes().startswith(MAGIC[suffix]), p
    report = json.loads(res.out)
    from dsc.report.pictures import figure_list

    listed = figure_list(report)
    assert [f.path for f in listed] == list(paths.values())
    assert [f.title for f in listed] == ["Results", "Real and synthetic samples", "Confusion matrices",
                                         "Embedding map"]
    if suffix == ".png":
        from PIL import Image

        for p in paths.values():
            assert min(Image.open(p).info["dpi"]) >= 150 - 0.5, p


def test_an_unknown_figure_suffix_is_refused_before_any_work(run_dsc, study, tmp_path):
    res = run_dsc("report", study, "--results-figure", tmp_path / "r.jpg")
    assert res.code == 1 and "r.jpg" in res.err and ".png" in res.err and ".svg" in res.err
    assert not (tmp_path / "r.jpg").exists()


def test_png_pixels_match_the_printed_size_at_the_resolution(tmp_path):
    from PIL import Image

    from dsc.report.figures.style import DPI, save_figure
    from dsc.report.figures.tiles import Tile, tile_figure, tile_label

    fig = tile_figure([[Tile(np.zeros((64, 64, 3), np.uint8), tile_label("gear", "strength 0.50", 7))]])
    w_in = fig.get_size_inches()[0]
    save_figure(fig, tmp_path / "t.png")
    w_px = Image.open(tmp_path / "t.png").size[0]
    assert DPI >= 150 and w_px / w_in == pytest.approx(DPI, rel=0.1)   # bbox tight trims only margins


def test_tiles_are_labelled_at_a_legible_size_and_wrap_long_class_names():
    from dsc.report.figures.tiles import Tile, tile_figure, tile_label

    im = np.zeros((32, 32, 3), np.uint8)
    rows = [[Tile(im, tile_label(LONG * 2, "real image, row 3")),
             Tile(im, tile_label("gear", "strength 0.50", 4821937462910384756))]]
    fig = tile_figure(rows)
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    assert titles[1].get_text() == "gear\nstrength 0.50\nseed 4821937462910384756"
    assert "\n" in titles[0].get_text().split("\nreal image")[0]   # the 66-character class name is wrapped
    assert _overlaps(fig, titles) == []
    _fig_texts_ok(fig)


def test_wrap_keeps_lines_short_and_words_whole():
    from dsc.report.figures.style import wrap

    assert wrap("gear", 10) == "gear"
    assert wrap("alternator with pulley", 12) == "alternator\nwith pulley"
    lines = wrap(LONG, 12).split("\n")
    assert "".join(lines) == LONG and max(map(len, lines)) <= 12 and lines[0] == "brake_"
    assert all(len(x) <= 8 for x in wrap("a" * 20, 8).split("\n"))
    assert wrap("", 5) == "" and wrap("a b\nc", 10) == "a b\nc"
