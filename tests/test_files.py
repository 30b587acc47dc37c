"""Run files (summary.json, config.yaml, the pictures, predictions, last.ckpt) are written whole: a write
cut short leaves the file as it was and nothing beside it, and a finished one is on disk before and
after its rename."""

import os
from pathlib import Path

import pytest

from gd_torch.files import write_atomically, written_whole


def test_a_write_cut_short_leaves_the_old_file_and_nothing_else(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), written_whole(path) as temporary:
        temporary.write_text("half of the ne")
        raise KeyboardInterrupt  # a second Ctrl-C mid-write
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_whole_write_replaces_the_file_with_the_usual_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    write_atomically(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode == plain.stat().st_mode  # not the owner-only mode of a temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "plain.txt"]


def test_every_run_file_reaches_the_disk_before_its_rename_and_the_rename_after(train, monkeypatch):
    """A lost machine must not leave an empty summary.json or last.ckpt: each file's data are fsynced
    before it is renamed into place, and its directory after (before, neither was)."""
    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(descriptor: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{descriptor}"))))
        fsync(descriptor)

    def recorded_replace(source, target) -> None:
        events.append(("replace", Path(source), Path(target)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    run = train("--trainer.max_steps=3")
    assert run.exit_code == 0, run.stderr
    renamed = {target.name: i for i, (kind, *paths) in enumerate(events) if kind == "replace" for target in paths[1:]}
    assert {"summary.json", "config.yaml", "last.ckpt"} <= set(renamed)
    for name, at in renamed.items():
        _, source, target = events[at]
        assert events[at - 1] == ("fsync", source), name  # the data, then the rename
        assert events[at + 1] == ("fsync", target.parent), name  # the rename, then the directory
