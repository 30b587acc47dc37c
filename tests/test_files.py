"""Run files (summary.json, config.yaml, the pictures, predictions) are written whole: a write cut
short leaves the file as it was and nothing beside it."""

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
