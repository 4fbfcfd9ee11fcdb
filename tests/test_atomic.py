"""Atomic writes leave either the old file or the new one, never a partial file."""

import pytest

from pmt_core.infra.atomic import atomic_path, write_text_atomic


def test_write_replaces_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_written_files_follow_the_umask_not_mkstemp_0600(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        target = write_text_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_folder_is_never_replaced(tmp_path):
    folder = tmp_path / "out.json"
    folder.mkdir()
    (folder / "inside.txt").write_text("kept")
    with pytest.raises(IsADirectoryError):
        write_text_atomic(folder, "{}")
    assert (folder / "inside.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left


@pytest.mark.parametrize("fsync", [True, False])
def test_data_reach_the_disk_before_the_rename(tmp_path, monkeypatch, fsync):
    import os

    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    write_text_atomic(tmp_path / "a.txt", "x", fsync=fsync)
    assert len(calls) == (1 if fsync else 0)
    assert (tmp_path / "a.txt").read_text() == "x"


def test_publishing_moves_every_file_removes_stale_outputs_and_keeps_the_rest(tmp_path):
    from pmt_core.infra.atomic import fresh_staging, publish_staging

    target = tmp_path / "reports"
    (target / "models").mkdir(parents=True)
    (target / "models" / "s1-r7.pt").write_text("stale")
    (target / "models" / "s1.pt").write_text("old")
    (target / "baseline.json").write_text("kept")
    staging = fresh_staging(target)
    (staging / "models").mkdir()
    (staging / "models" / "s1.pt").write_text("new")
    (staging / "validation.json").write_text("report")
    (staging / "split.csv").write_text("split")
    published = publish_staging(staging, target, ("models/s1*.pt", "split.csv"),
                                last=("validation.json",))
    assert published[-1] == target / "validation.json"  # the report last
    assert (target / "models" / "s1.pt").read_text() == "new"
    assert not (target / "models" / "s1-r7.pt").exists()
    assert (target / "baseline.json").read_text() == "kept"
    assert not staging.exists()
