"""`dsc subset`'s last line says what its rate counts, with plurals (issue 12)."""

from __future__ import annotations

import re


def test_summary_says_what_the_rate_counts(run_dsc, tmp_path) -> None:
    out = tmp_path / "data.h5"
    res = run_dsc("subset", "--dataset", "toyparts", "--option", "objects_per_class=2", "--option", "num_classes=2",
                  "--option", "image_size=32", "--resolution", "32", "--workers", "1", "--output", out)
    assert res.code == 0, res
    line = res.out.strip().splitlines()[-1]
    assert re.search(r"wrote \S+data\.h5: \d+ images at 32 px, 2 classes, .*; decoding and writing [0-9,]+ "
                     r"images/s with 1 worker, [0-9.]+ s in all$", line), line
    assert "img/s" not in res.out
