"""What `dsc probe` prints (issue 12): what its rate counts, plurals, and what it is loading."""

from __future__ import annotations

import contextlib
import re

from tests.evaluate.fakes import make_data_store, make_run


def test_probe_summary_counts_images_and_epochs(run_dsc, tmp_path, monkeypatch) -> None:
    import dsc.console

    said: list[str] = []

    @contextlib.contextmanager
    def status(message: str, console=None):
        said.append(message)
        yield

    monkeypatch.setattr(dsc.console, "status", status)
    data = make_data_store(tmp_path / "data.h5")
    run = make_run(tmp_path / "run", data)
    res = run_dsc("probe", run, "--epochs", "1", "--no-corruptions", "--device", "cpu")
    assert res.code == 0, res
    assert re.search(r"features computed for \d+ images, encoding [0-9.,]+ images/s: ", res.out), res
    assert re.search(r"probe trained 1 epoch in [0-9.]+ s; [0-9.]+ s in all; metrics: ", res.out), res
    assert said == ["importing torch…", "building timm:test_resnet from the best checkpoint…"], said
    again = run_dsc("probe", run, "--epochs", "2", "--no-corruptions", "--device", "cpu", "--force")
    assert again.code == 0 and "features reused: " in again.out and "probe trained 2 epochs" in again.out, again
