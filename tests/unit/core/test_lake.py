from __future__ import annotations

from pathlib import Path

from mlops.core.lake import Lake


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    lake.write_bytes("a/b.bin", b"one")
    lake.write_bytes("a/b.bin", b"two")
    assert lake.read_bytes("a/b.bin") == b"two"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]


def test_children_are_paths_under_the_folder(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    lake.write_json("box/b.json", {})
    lake.write_json("box/a.json", {})
    lake.write_bytes("box/c.txt", b"")
    assert lake.children("box", ".json") == ["box/a.json", "box/b.json"]
    assert lake.children("missing") == []
