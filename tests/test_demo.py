"""``make demo`` (tools/demo.py) runs again over an earlier demo's folder, and never deletes what
it did not write."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _demo():
    spec = importlib.util.spec_from_file_location("demo_tool", REPO / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_earlier_demo_is_replaced_and_other_files_are_kept(tmp_path):
    demo = _demo()
    earlier = tmp_path / "demo_out"
    (earlier / "dense").mkdir(parents=True)
    (earlier / "dense" / "ckpt.pt").write_bytes(b"an earlier demo's run")
    (earlier / "run.json").write_text("{}")
    demo.fresh_out(earlier)
    assert not earlier.exists()

    mine = tmp_path / "mine"
    (mine / "dense").mkdir(parents=True)
    (mine / "notes.txt").write_text("not the demo's")
    with pytest.raises(SystemExit, match="holds files an edgerl demo does not write"):
        demo.fresh_out(mine)
    assert (mine / "notes.txt").read_text() == "not the demo's"
    demo.fresh_out(tmp_path / "absent")  # nothing there: nothing to do
