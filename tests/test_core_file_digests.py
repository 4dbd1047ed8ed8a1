"""The model files' sha256 remembered by stat (memrl/file_digests.py): an unchanged file is
not read again, and every change to a file is hashed anew, even one that keeps its size
and mtime; a damaged record only costs a new hash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from memrl import file_digests
from memrl.file_digests import RECORD, remembered_sha256, sha256_file


@pytest.fixture
def not_racy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as old enough to be recorded."""
    monkeypatch.setattr(file_digests, "RACY_SECONDS", -1.0)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths read in full."""
    seen: list[Path] = []

    def counting(path: Path) -> str:
        seen.append(Path(path))
        return sha256_file(path)

    monkeypatch.setattr(file_digests, "sha256_file", counting)
    return seen


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.usefixtures("not_racy")
def test_an_unchanged_file_is_read_once(tmp_path: Path, reads: list[Path]) -> None:
    model = write(tmp_path / "model.onnx", b"weights" * 1000)
    first = remembered_sha256(model, tmp_path / "cache")
    second = remembered_sha256(model, tmp_path / "cache")
    assert first == second == sha256_file(model)
    assert reads == [model]
    recorded = json.loads((tmp_path / "cache" / RECORD).read_text())
    assert recorded[str(model)]["sha256"] == first


@pytest.mark.usefixtures("not_racy")
def test_a_change_that_keeps_size_and_mtime_is_hashed_again(tmp_path: Path, reads: list[Path]) -> None:
    """The ctime moves with every write and no call sets it back."""
    model = write(tmp_path / "model.onnx", b"A" * 4096)
    before = remembered_sha256(model, tmp_path)
    stat = model.stat()
    with model.open("r+b") as f:
        f.seek(100)
        f.write(b"B")
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model.stat().st_size == stat.st_size and model.stat().st_mtime_ns == stat.st_mtime_ns
    after = remembered_sha256(model, tmp_path)
    assert after != before and after == sha256_file(model)
    assert len(reads) == 2


@pytest.mark.usefixtures("not_racy")
def test_a_file_renamed_onto_the_path_is_hashed_again(tmp_path: Path, reads: list[Path]) -> None:
    model = write(tmp_path / "model.onnx", b"old" * 100)
    remembered_sha256(model, tmp_path)
    os.replace(write(tmp_path / "new", b"new" * 100), model)
    assert remembered_sha256(model, tmp_path) == sha256_file(model)
    assert len(reads) == 2


def test_a_file_changed_just_now_is_not_recorded(tmp_path: Path, reads: list[Path]) -> None:
    """Within the clock tick of the hashing a write could keep the stat (git's racy case)."""
    model = write(tmp_path / "model.onnx", b"fresh")
    remembered_sha256(model, tmp_path)
    remembered_sha256(model, tmp_path)
    assert len(reads) == 2 and not (tmp_path / RECORD).exists()


@pytest.mark.usefixtures("not_racy")
@pytest.mark.parametrize("damage", [
    "{not json", "[]", json.dumps({"x": 1}), "",
])
def test_a_damaged_record_costs_a_hash_and_is_rewritten(
    tmp_path: Path, reads: list[Path], damage: str
) -> None:
    model = write(tmp_path / "model.onnx", b"weights")
    (tmp_path / RECORD).write_text(damage)
    assert remembered_sha256(model, tmp_path) == sha256_file(model)
    assert remembered_sha256(model, tmp_path) == sha256_file(model)
    assert len(reads) == 1


@pytest.mark.usefixtures("not_racy")
def test_a_forged_digest_of_another_stat_is_ignored(tmp_path: Path, reads: list[Path]) -> None:
    model = write(tmp_path / "model.onnx", b"weights")
    (tmp_path / RECORD).write_text(json.dumps({str(model): {"stat": [0, 0, 7, 0, 0], "sha256": "0" * 64}}))
    assert remembered_sha256(model, tmp_path) == sha256_file(model)


@pytest.mark.usefixtures("not_racy")
def test_an_unwritable_record_still_answers(tmp_path: Path) -> None:
    model = write(tmp_path / "model.onnx", b"weights")
    blocked = write(tmp_path / "a-file", b"")  # the record's folder would be under a file
    assert remembered_sha256(model, blocked / "cache") == sha256_file(model)


@pytest.mark.usefixtures("not_racy")
def test_without_posix_ctimes_every_call_hashes(
    tmp_path: Path, reads: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_digests, "RECORDING", False)
    model = write(tmp_path / "model.onnx", b"weights")
    assert remembered_sha256(model, tmp_path) == remembered_sha256(model, tmp_path)
    assert len(reads) == 2 and not (tmp_path / RECORD).exists()


@pytest.mark.usefixtures("not_racy")
def test_the_record_keeps_the_newest_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_digests, "MAX_ENTRIES", 3)
    files = [write(tmp_path / f"f{i}", bytes([i])) for i in range(5)]
    for path in files:
        remembered_sha256(path, tmp_path / "cache")
    kept = json.loads((tmp_path / "cache" / RECORD).read_text())
    assert sorted(kept) == sorted(str(p) for p in files[2:])
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [RECORD]  # no temporary left
