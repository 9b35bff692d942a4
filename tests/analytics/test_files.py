"""A plot or report is written whole or not at all."""

from __future__ import annotations

import pytest

from lmes.analytics.files import replacing


def test_a_finished_write_replaces_the_file(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with replacing(target) as out:
        out.write("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_failed_write_leaves_the_old_file_and_no_leftovers(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target, "wb") as out:
        out.write(b"half a pl")
        raise RuntimeError("the renderer died")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
