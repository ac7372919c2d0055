"""Atomic writes: the old file or the new one, never half, never a temp file left behind."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from anamnesis.atomic import atomic_write
from anamnesis.config import read_config_file, write_config_file


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_that_cannot_be_encoded_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state" / "cursor.json"
    atomic_write(target, "old\n")

    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "new text, then a lone surrogate \udc00 that UTF-8 cannot hold")

    assert target.read_text() == "old\n"
    assert entries(target.parent) == ["cursor.json"]


def test_a_rename_that_fails_removes_the_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    target = folder / "taken"
    target.mkdir(parents=True)
    (target / "keep").write_text("old")

    with pytest.raises(IsADirectoryError):
        atomic_write(target, b"new")

    assert entries(folder) == ["taken"]
    assert entries(target) == ["keep"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_the_new_file_has_the_mode_asked_for_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "a" / "b.txt"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o666)

    atomic_write(target, "new", mode=mode)

    assert target.read_text() == "new"
    assert mode_of(target) == mode


def test_mode_none_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    private = tmp_path / "settings.json"
    private.write_text("{}")
    private.chmod(0o600)
    fresh = tmp_path / "fresh.json"

    atomic_write(private, '{"a": 1}', mode=None)
    atomic_write(fresh, "{}", mode=None)

    assert (mode_of(private), private.read_text()) == (0o600, '{"a": 1}')
    assert mode_of(fresh) == 0o644


def test_a_cache_written_without_fsync_is_still_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "shown.json"
    atomic_write(target, "old", durable=False)

    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "new \udc00", durable=False)
    atomic_write(target, '{"shown": []}', durable=False)

    assert target.read_text() == '{"shown": []}'
    assert entries(target.parent) == ["shown.json"]


def test_bytes_are_written_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    atomic_write(target, b"\x00\xff\r\n")
    assert target.read_bytes() == b"\x00\xff\r\n"


def test_config_that_cannot_be_serialised_leaves_config_json_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "config.json"
    write_config_file(path, {"machine_id": "desk"})

    with pytest.raises(TypeError):
        write_config_file(path, {"machine_id": "desk", "bad": object()})

    assert read_config_file(path) == {"machine_id": "desk"}
    assert entries(path.parent) == ["config.json"]
    assert mode_of(path) == 0o600
    assert json.loads(path.read_text()) == {"machine_id": "desk"}
