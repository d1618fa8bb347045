"""The report names how each run's encoder was obtained and trained (its protocol) and tells protocols apart."""

from __future__ import annotations

from pathlib import Path


def test_the_report_names_each_protocol(make_run, tmp_path: Path) -> None:
    from dsc.report import build_report
    from dsc.settings import ReportSettings

    root = tmp_path / "runs"
    for seed in (0, 1):
        make_run(root, f"ft-s{seed}", seed=seed, top1=0.7, settings={"pretrained": True, "protocol": "fine-tune"})
        make_run(root, f"lin-s{seed}", seed=seed, top1=0.6, settings={"pretrained": True, "protocol": "linear"})
        make_run(root, f"sc-s{seed}", seed=seed, top1=0.5, method="supcon+probe", settings={"pretrained": True})
    result = build_report([root], ReportSettings())
    configs = {c["name"]: c for c in result.report["configurations"]}
    assert {c["protocol"] for c in configs.values()} == {"fine-tuned from pretrained", "linear on frozen pretrained",
                                                          "SupCon from pretrained"}
    assert "ce/none[linear on frozen pretrained]" in configs   # the two CE protocols are told apart by name
    table = result.sections[0]
    assert "protocol" in table.columns
