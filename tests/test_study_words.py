"""The study's budget notes count with plurals (issue 12): 1 epoch, 1 round, never '1 epochs'."""

from __future__ import annotations

from dsc.study import load_study
from tests.test_study import inputs, write_study  # noqa: F401 - the inputs fixture


def test_budget_notes_say_1_epoch_and_1_round(tmp_path, inputs) -> None:  # noqa: F811
    epochs = load_study(write_study(tmp_path, inputs, study_extra='budget = "epochs"'))
    assert "every arm trains 1 epoch (batch 16)" in epochs.budget_notes[0], epochs.budget_notes
    steps = load_study(write_study(tmp_path, inputs))
    notes = " ".join(steps.budget_notes)
    assert "'none' arm's 1 epoch x 3 steps on 36 train images; evaluated in 1 round" in notes, notes
    assert "1 epochs" not in notes and "1 rounds" not in notes
