"""dsc/jobs.py: the one resume rule and the job shell (work folder, lock, commit, Ctrl-C message).

Every command's behaviour from the command line is checked by tests/test_job_contract.py; these tests pin the
runner's own rules so a command built on it cannot drift."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsc.errors import InputError, Interrupted, MismatchError, OutputExistsError
from dsc.jobs import Job, Record, check_resume, comparable, fingerprints
from dsc.locks import OutputLockedError
from dsc.settings import AugmentSettings, InvertSettings, PretrainSettings


def test_comparable_drops_exactly_the_results_neutral_settings() -> None:
    train = PretrainSettings(workers=3).model_dump(mode="json")
    assert "workers" not in comparable(PretrainSettings, train) and "lr" in comparable(PretrainSettings, train)
    assert "batch_size" not in comparable(AugmentSettings, AugmentSettings().model_dump(mode="json"))
    inv = comparable(InvertSettings, InvertSettings(batch_size=2, gradient_accumulation=4).model_dump(mode="json"))
    assert inv["effective_batch"] == 8 and "batch_size" not in inv and "device" not in inv


def test_a_results_neutral_change_resumes_and_a_results_changing_one_is_named() -> None:
    old = InvertSettings(batch_size=8, gradient_accumulation=1, steps=10).model_dump(mode="json")
    split = InvertSettings(batch_size=2, gradient_accumulation=4, steps=10).model_dump(mode="json")
    check_resume(Path("T"), Record(comparable(InvertSettings, old)), Record(comparable(InvertSettings, split)))
    more = InvertSettings(batch_size=8, steps=20).model_dump(mode="json")
    with pytest.raises(MismatchError, match=r"cannot resume T: .*steps: 10 -> 20") as exc:
        check_resume(Path("T"), Record(comparable(InvertSettings, old)), Record(comparable(InvertSettings, more)))
    assert "--force" in (exc.value.hint or "")


def test_inputs_are_named_and_pinned_values_compared_when_the_rest_agrees() -> None:
    a = Record({"lr": 0.1}, fingerprints({"data": {"fingerprint": "aaa"}, "synthetic": [{"fingerprint": "s1"}]}),
               {"model": "m1"})
    b = Record({"lr": 0.1}, fingerprints({"data": {"fingerprint": "bbb"}, "synthetic": [{"fingerprint": "s1"}]}),
               {"model": "m2"})
    assert a.differences(b) == ["inputs.data: aaa -> bbb"]  # the cause first; the model follows from a fix
    assert Record({"lr": 0.1}, a.inputs, {"model": "m1"}).differences(Record({"lr": 0.1}, a.inputs,
                                                                             {"model": "m2"})) == ["model: m1 -> m2"]


def _job(out: Path, **kw) -> Job:
    return Job("test", out, **kw)


def test_fresh_job_works_in_the_partial_folder_and_commit_renames_it(tmp_path) -> None:
    out = tmp_path / "OUT"
    with _job(out) as job:
        job.check()
        assert job.begin(marker="m.json") is False
        assert job.work == tmp_path / "OUT.partial" and job.work.is_dir()
        assert (tmp_path / "OUT.lock").exists()  # held while the job runs
        (job.work / "m.json").write_text("{}")
        job.commit()
    assert (out / "m.json").is_file() and not job.work.exists() and not (tmp_path / "OUT.lock").exists()


def test_an_interrupted_job_is_refused_without_resume_and_continued_with_it(tmp_path) -> None:
    out = tmp_path / "OUT"
    (tmp_path / "OUT.partial").mkdir()
    (tmp_path / "OUT.partial" / "m.json").write_text("{}")
    (tmp_path / "OUT.partial" / "done.bin").write_text("kept")
    with pytest.raises(OutputExistsError, match="an interrupted run left .*OUT.partial"), _job(out) as job:
        job.begin(marker="m.json")
    with _job(out, resume=True) as job:
        assert job.begin(marker="m.json") is True
    assert (tmp_path / "OUT.partial" / "done.bin").read_text() == "kept"
    with _job(out, force=True) as job:
        assert job.begin(marker="m.json") is False
    assert not (tmp_path / "OUT.partial" / "done.bin").exists()  # --force starts over


def test_resume_reopens_a_finished_folder_to_add_to_it(tmp_path) -> None:
    out = tmp_path / "OUT"
    out.mkdir()
    (out / "m.json").write_text("{}")
    (out / "a.bin").write_text("a")
    with _job(out, resume=True) as job:
        job.check()
        assert job.begin(marker="m.json") is True
        assert (job.work / "a.bin").read_text() == "a"
        (job.work / "b.bin").write_text("b")
        job.commit()
    assert sorted(p.name for p in out.iterdir()) == ["a.bin", "b.bin", "m.json"]


def test_in_place_work_refuses_resuming_a_folder_without_its_record(tmp_path) -> None:
    out = tmp_path / "RUN"
    out.mkdir()
    (out / "stray.txt").write_text("x")
    with pytest.raises(InputError, match="has no run.json, there is nothing to resume"), \
            _job(out, work=out, resume=True) as job:
        job.begin(marker="run.json")
    assert (out / "stray.txt").exists()  # nothing deleted
    with _job(out, work=out, force=True) as job:
        assert job.begin(marker="run.json") is False and not any(out.iterdir())
        job.commit()  # in place: nothing to rename
    assert out.is_dir()


def test_a_second_writer_is_refused_by_the_lock(tmp_path) -> None:
    out = tmp_path / "OUT"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from dsc.locks import OutputLock; "
                               "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"), _job(out) as job:
            job.check()
        with pytest.raises(OutputLockedError), _job(out, force=True) as job:
            job.begin(marker="m.json")  # --force does not override a live writer
        assert not (tmp_path / "OUT.partial").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(("done", "resuming", "message"), [
    (0, False, "no image was finished (0 of 5)"),
    (2, False, "2 of 5 images kept in"),
    (0, True, "0 of 5 images kept in"),
])
def test_ctrl_c_gives_one_message_with_what_was_kept(tmp_path, done, resuming, message) -> None:
    with _job(tmp_path / "OUT") as job:
        job.resuming = resuming
        with pytest.raises(Interrupted) as exc, job.interrupted(lambda: (done, 5, "image")):
            time.sleep(0)
            raise KeyboardInterrupt
    assert message in str(exc.value)
    assert ("--resume" in (exc.value.hint or "")) == (done > 0 or resuming)


def test_commit_after_a_swallowed_ctrl_c_leaves_no_final_output(tmp_path) -> None:
    from dsc import interrupts

    out = tmp_path / "OUT"
    with interrupts.sigint_remembered(), _job(out) as job:
        job.begin(marker="m.json")
        interrupts._INTERRUPTED.set()  # a Ctrl-C whose exception a finaliser swallowed
        with pytest.raises(KeyboardInterrupt):
            job.commit()
    assert not out.exists() and (tmp_path / "OUT.partial").is_dir()
