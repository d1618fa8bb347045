"""Presenting results: comparing runs across seeds (statistics, tables, exports), synthetic-data quality
tables and pictures. The numbers of the quality assessment are computed in ``dsc.evaluate``.

>>> result = make_report([Path("study-out")], ReportSettings())     # doctest: +SKIP
>>> result.report["configurations"][0]["metrics"]["top1"]["mean"]   # doctest: +SKIP
"""

from __future__ import annotations

from dsc.report.build import Pictures, ReportResult, attach_findings, build_report, make_report
from dsc.report.compare import compare_runs
from dsc.report.group import Group, group_runs
from dsc.report.runs import Run, discover, load_run
from dsc.report.table import Section

__all__ = ["Group", "Pictures", "ReportResult", "Run", "Section", "attach_findings", "build_report",
           "compare_runs", "discover", "group_runs", "load_run", "make_report"]
