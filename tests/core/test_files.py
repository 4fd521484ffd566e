"""Files written whole or not at all."""

from __future__ import annotations

import pytest

from core.files import atomic_file, write_atomically


def test_a_file_is_replaced_whole(tmp_path):
    path = tmp_path / "deep" / "poster.png"
    write_atomically(path, b"first")
    with atomic_file(path) as file:
        file.write(b"sec")
        assert path.read_bytes() == b"first"  # nothing shows before the block ends
        file.write(b"ond")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["poster.png"]


def test_a_failed_write_keeps_what_was_there_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "batch.zip"
    write_atomically(path, b"whole", durable=False)
    with pytest.raises(OSError), atomic_file(path) as file:
        file.write(b"a part")
        raise OSError("disk full")
    assert path.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["batch.zip"]
