from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from dsc.errors import InputError, MismatchError, OutputExistsError
from dsc.evaluate.linear import fit_linear
from dsc.probe import probe
from dsc.settings import ProbeSettings
from dsc.store import open_store
from dsc.threads import one_torch_thread
from tests.evaluate.fakes import CLASSES, make_data_store, make_run, make_synthetic_store


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def world(tmp_path):
    data = make_data_store(tmp_path / "data.h5", holdout=4)
    syn = make_synthetic_store(tmp_path / "syn.h5", data)
    ood = make_synthetic_store(tmp_path / "ood.h5", data, ood=True, evaluation_only=True)
    run = make_run(tmp_path / "run", data, synthetic=[syn])
    return {"data": data, "syn": syn, "ood": ood, "run": run}


FAST = ProbeSettings(epochs=8, severities=[1], corruptions=False, device="cpu")  # exact fp32 features


def test_cli_writes_metrics_with_every_field(world, run_dsc):
    res = run_dsc("probe", world["run"], "--ood", world["ood"].path, "--epochs", "6", "--severities", "1,5", "--json")
    assert res.code == 0, res
    m = json.loads((world["run"] / "probe" / "metrics.json").read_text())
    assert json.loads(res.out)["test"] == m["test"]
    for key in ("schema", "method", "run", "seed", "backbone", "data", "synthetic", "classes", "val", "test",
                "robustness", "ood", "timings", "selected_epoch", "created"):
        assert key in m, key
    assert m["schema"] == "dsc-metrics/1" and m["method"] == "supcon+probe" and m["run"] == "run"
    assert m["backbone"] == "timm:test_resnet" and m["classes"] == CLASSES
    assert m["data"]["fingerprint"] == world["data"].fingerprint
    assert m["synthetic"]["normal"] == [world["syn"].fingerprint] and m["synthetic"]["label"] == "normal"
    assert set(m["test"]) == {"top1", "top5", "macro_f1", "ece", "n", "per_class", "confusion"}
    assert m["test"]["n"] == 12 and m["val"]["n"] == 12
    assert len(m["robustness"]["per_corruption"]) == 8
    assert all(set(v) == {"1", "5"} for v in m["robustness"]["per_corruption"].values())
    assert set(m["ood"]) == {"holdout", "synthetic"}
    assert set(m["ood"]["synthetic"]) == {"msp", "energy", "knn"}
    assert {"probe", "features", "evaluate", "pretrain"} <= set(m["timings"])
    assert 1 <= m["selected_epoch"] <= 6
    assert (world["run"] / "probe" / "classifier.safetensors").is_file()
    assert len((world["run"] / "probe" / "metrics.jsonl").read_text().splitlines()) == 6
    # the rendered (non-JSON) output and the refusal to overwrite
    res = run_dsc("probe", world["run"], "--epochs", "2", "--no-corruptions")
    assert res.code == 1 and "already exists" in res.err and "--force" in res.err
    res = run_dsc("probe", world["run"], "--epochs", "2", "--no-corruptions", "--force")
    assert res.code == 0 and "test top1" in res.out and "features reused" in res.out


def test_embeddings_store_and_reuse(world):
    run = world["run"]
    first = probe(run, FAST)
    assert not first.embeddings_reused
    emb = open_store(run / "embeddings.h5", kind="embeddings")
    extra = emb.attrs["extra"]
    assert extra["backbone"] == "timm:test_resnet" and extra["feature_dim"] == 96 and extra["image_size"] == 32
    assert extra["data_config"]["mean"] == [0.5, 0.5, 0.5]
    assert emb.attrs["inputs"]["data"]["fingerprint"] == world["data"].fingerprint
    sets = emb.column("set")
    assert {"train", "val", "test", "holdout"} == set(sets.tolist())
    feats = emb.h5["samples"]["features"][()]
    # not normalised: the encoder output before the head
    assert not np.allclose(np.linalg.norm(feats, axis=1), 1.0)
    # features equal the encoder's output on the stored images
    from dsc.train.checkpoint import load_encoder

    bb, _ = load_encoder(run, "best")
    rows = emb.column("row")[sets == "test"][:3]
    x = torch.from_numpy(world["data"].images(rows)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        direct = bb.module((x - 0.5) / 0.5)
    np.testing.assert_allclose(feats[sets == "test"][:3], direct.numpy(), atol=1e-4)
    emb.close()

    mtime = os.stat(run / "embeddings.h5").st_mtime_ns
    again = probe(run, FAST, force=True)
    assert again.embeddings_reused and os.stat(run / "embeddings.h5").st_mtime_ns == mtime
    assert again.metrics["test"] == first.metrics["test"]
    with_syn = probe(run, FAST.model_copy(update={"with_synthetic": True}), force=True)
    assert not with_syn.embeddings_reused  # the synthetic set was added ...
    emb = open_store(run / "embeddings.h5", kind="embeddings")
    assert f"synthetic:{world['syn'].fingerprint}" in set(emb.column("set").tolist())
    np.testing.assert_array_equal(emb.h5["samples"]["features"][()][emb.column("set") == "test"],
                                  feats[sets == "test"])  # ... and the cached sets were kept as they were
    emb.close()
    assert probe(run, FAST, force=True).embeddings_reused  # the file is a superset now
    assert not probe(run, FAST, force=True, recompute_features=True).embeddings_reused
    # another checkpoint invalidates the cache
    best = run / "checkpoints" / "best.safetensors"
    best.write_bytes((run / "checkpoints" / "last.safetensors").read_bytes() + b"")
    from safetensors.torch import load_file, save_file

    t = load_file(str(best))
    t = {k: v + 0.01 if v.is_floating_point() else v for k, v in t.items()}
    save_file(t, str(best))
    assert not probe(run, FAST, force=True).embeddings_reused


def test_same_seed_same_metrics_and_seed_matters(world):
    a = probe(world["run"], FAST).metrics
    b = probe(world["run"], FAST, force=True).metrics
    assert a["test"] == b["test"] and a["val"] == b["val"] and a["selected_epoch"] == b["selected_epoch"]


def test_negatives_only_run_is_the_ood_arm(tmp_path):
    """A run trained with OOD negatives and no synthetic positives is labelled "ood", not "normal+ood"."""
    data = make_data_store(tmp_path / "data.h5")
    neg = make_synthetic_store(tmp_path / "neg.h5", data, ood=True)
    run = make_run(tmp_path / "run", data)
    info = json.loads((run / "run.json").read_text())
    info["inputs"]["negatives"] = [{"path": str(neg.path), "fingerprint": neg.fingerprint}]
    (run / "run.json").write_text(json.dumps(info))
    m = probe(run, ProbeSettings(epochs=2, corruptions=False, device="cpu")).metrics
    assert m["synthetic"]["label"] == "ood"
    assert m["synthetic"]["normal"] == [] and m["synthetic"]["ood"] == [neg.fingerprint]


def test_selection_uses_val_never_test(tmp_path):
    """Two stores that differ only in their test images: identical selection and classifier."""
    heads = []
    for i, test_seed in enumerate((None, 123)):
        data = make_data_store(tmp_path / f"d{i}.h5", test_seed=test_seed)
        run = make_run(tmp_path / f"run{i}", data)
        res = probe(run, ProbeSettings(epochs=15, corruptions=False))
        history = [json.loads(x) for x in (run / "probe" / "metrics.jsonl").read_text().splitlines()]
        vals = [h["val_top1"] for h in history]
        assert res.metrics["selected_epoch"] == int(np.argmax(vals)) + 1
        assert res.metrics["val"]["top1"] == pytest.approx(max(vals), abs=1e-6)
        from safetensors.torch import load_file

        heads.append((res.metrics["selected_epoch"], load_file(str(run / "probe" / "classifier.safetensors"))))
    assert heads[0][0] == heads[1][0]
    for k in heads[0][1]:
        torch.testing.assert_close(heads[0][1][k], heads[1][1][k])


def test_fit_linear_sgd_picks_first_best_val_epoch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g)
    y = (x[:, 0] > 0).long()
    vx, vy = x[:20], 1 - y[:20]  # val disagrees with train: later epochs get worse on val
    fit = fit_linear(x, y, 2, solver="sgd", val_x=vx, val_y=vy, epochs=10, lr=0.5)
    head, epoch, best, history = fit.head, fit.epoch, fit.val_top1, fit.history
    vals = [h["val_top1"] for h in history]
    assert epoch == vals.index(max(vals)) + 1 and best == pytest.approx(max(vals), abs=1e-6)
    assert float((head(vx).argmax(1) == vy).float().mean()) == pytest.approx(best)
    epoch_nv = fit_linear(x, y, 2, solver="sgd", val_x=x[:0], val_y=y[:0], epochs=3).epoch
    assert epoch_nv == 3  # no val: the last epoch


def test_bad_inputs(world, tmp_path):
    run = world["run"]
    with pytest.raises(InputError, match="not a dsc run"):
        probe(tmp_path, FAST)
    other = make_data_store(tmp_path / "other.h5", seed=5)
    foreign = make_synthetic_store(tmp_path / "foreign.h5", other, ood=True, evaluation_only=True)
    with pytest.raises(MismatchError):
        probe(run, FAST, ood=[foreign.path])
    train_ood = make_synthetic_store(tmp_path / "train_ood.h5", world["data"], ood=True)
    with pytest.raises(InputError, match="training images"):
        probe(run, FAST, ood=[train_ood.path])
    plain = make_run(tmp_path / "plain", world["data"])
    with pytest.raises(InputError, match="without synthetic"):
        probe(plain, FAST.model_copy(update={"with_synthetic": True}))
    probe(plain, FAST)
    with pytest.raises(OutputExistsError):
        probe(plain, FAST)
    info = json.loads((run / "run.json").read_text())
    info["inputs"]["data"]["fingerprint"] = "0" * 16
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(MismatchError, match="changed"):
        probe(run, FAST)


def test_unfinished_training_is_refused_unless_allowed(world, run_dsc):
    """An interrupted run is not probed silently: one-line refusal naming where it stopped and how to resume;
    --allow-incomplete probes it and records the training's state, which `dsc report` marks."""
    run = world["run"]
    info = json.loads((run / "run.json").read_text())
    info.update(status="interrupted", settings={**info["settings"], "epochs": 30},
                command=f"dsc pretrain {world['data'].path} --output {run} --epochs 30")
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="interrupted at epoch 1 of 30") as exc:   # the fake's checkpoint: epoch 1
        probe(run, FAST)
    assert "--epochs 30 --resume`" in exc.value.message and "--allow-incomplete" in exc.value.hint
    res = run_dsc("probe", run, "--epochs", "2", "--no-corruptions")
    assert res.code == 1 and res.err.startswith("Error:") and "--allow-incomplete" in res.err, res
    assert not (run / "probe" / "metrics.json").exists()
    res = run_dsc("probe", run, "--epochs", "2", "--no-corruptions", "--allow-incomplete")
    assert res.code == 0, res
    assert "interrupted at epoch 1 of 30" in res.out
    m = json.loads((run / "probe" / "metrics.json").read_text())
    assert m["training"] == {"status": "interrupted", "epochs_done": 1, "epochs": 30}
    from dsc.report.runs import load_run

    assert "interrupted at epoch 1 of 30" in load_run(run).training_problem


def test_finished_training_is_recorded(world):
    m = probe(world["run"], FAST).metrics
    assert m["training"] == {"status": "complete", "epochs_done": 1, "epochs": None}
    from dsc.report.runs import load_run

    assert load_run(world["run"]).training_problem is None


def test_cli_errors_are_one_line(tmp_path, run_dsc):
    res = run_dsc("probe", tmp_path / "nope")
    assert res.code == 1 and res.err.startswith("Error:") and "Traceback" not in res.err
    res = run_dsc("probe", tmp_path, "--severities", "0,9")
    assert res.code == 1 and "severities" in res.err


@pytest.mark.slow
def test_probe_on_a_real_tiny_pretrain_run(tmp_path, run_dsc):
    """`dsc pretrain` (1 epoch, tiny timm model) then `dsc probe`: the real run format end to end."""
    data = make_data_store(tmp_path / "data.h5", holdout=3)
    ood = make_synthetic_store(tmp_path / "ood.h5", data, ood=True, evaluation_only=True)
    res = run_dsc("pretrain", data.path, "--backbone", "timm:test_resnet", "--image-size", "32", "--epochs", "1",
                  "--batch-size", "8", "--output", tmp_path / "run")
    assert res.code == 0, res
    res = run_dsc("probe", tmp_path / "run", "--ood", ood.path, "--epochs", "5", "--severities", "2", "--json")
    assert res.code == 0, res
    m = json.loads((tmp_path / "run" / "probe" / "metrics.json").read_text())
    assert m["method"] == "supcon+probe" and m["backbone"] == "timm:test_resnet" and m["test"]["n"] == 12
    assert m["synthetic"]["label"] == "none" and "pretrain" in m["timings"]
    assert set(m["ood"]) == {"holdout", "synthetic"} and m["robustness"]["severities"] == [2]
    assert 0.0 <= m["test"]["top1"] <= 1.0


def test_a_failed_forced_probe_keeps_the_earlier_results_whole(world, monkeypatch):
    """--force writes RUN/probe.partial/ and renames it when complete (dsc/jobs.py): a probe that fails on the
    way leaves the earlier RUN/probe/ exactly as it was (before, its classifier was replaced while its
    metrics.json stayed the old one)."""
    import dsc.probe as P

    probe(world["run"], FAST)
    folder = world["run"] / "probe"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(path, obj):
        raise OSError("simulated failure while writing metrics.json")

    monkeypatch.setattr(P, "atomic_write_json", fail)
    with pytest.raises(OSError, match="simulated"):
        probe(world["run"], ProbeSettings(epochs=3, severities=[1], corruptions=False, device="cpu"), force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    probe(world["run"], FAST, force=True)  # the leftover RUN/probe.partial/ does not block the next probe
    assert not (world["run"] / "probe.partial").exists()
