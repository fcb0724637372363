"""The one step by which every command writes a bundle folder.

A bundle is assembled in a staging folder next to its destination, its manifest is written there
(stamped with the time and the worker's version, fingerprinted from the staged files), and only
then are its three files moved into place and checked the way the service checks them at start.
A command that fails half-way leaves the destination as it was (or empty), never half-written.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qembed_worker.bundle.manifest import (
    BUNDLE_FILES,
    BundleError,
    check_bundle,
    created_at_now,
    created_by,
    write_bundle_manifest,
)


def announce(message: str) -> None:
    """Say on stderr which stage a long command has reached."""
    print(f"qembed-worker: {message}", file=sys.stderr, flush=True)


def prepare_out_dir(out: Path, *, force: bool, keep: Path | None = None) -> None:
    """Make ``out`` ready to receive a bundle (calling it twice is harmless).

    Args:
        out: The destination folder (created if missing).
        force: Remove the bundle files an existing non-empty ``out`` holds.
        keep: A source bundle that ``out`` may equal (rewritten in place, never refused).

    Raises:
        BundleError: ``out`` holds files and ``force`` is not set.
    """
    if keep is not None and out.resolve() == keep.resolve():
        return
    if out.exists() and any(out.iterdir()):
        if not force:
            raise BundleError(f"{out} is not empty; pass --force to overwrite it")
        for file in BUNDLE_FILES:
            (out / file).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


class Staging:
    """A bundle being assembled: write ``model.onnx`` and ``tokenizer.json`` into :attr:`dir`."""

    def __init__(self, folder: Path) -> None:
        """Wrap the staging folder."""
        self.dir = folder
        self.manifest: dict[str, Any] | None = None

    def copy_from(self, bundle: Path, *files: str) -> None:
        """Copy files of an existing bundle unchanged (e.g. its tokenizer)."""
        for file in files:
            shutil.copyfile(bundle / file, self.dir / file)

    def write_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Stamp, fingerprint and write the manifest of the staged files; returns what was written.

        ``created_at`` and ``created_by`` are set here, so a bundle derived from another one
        never carries its source's stamps.
        """
        stamped = dict(manifest)
        stamped["created_at"] = created_at_now()
        stamped["created_by"] = created_by()
        self.manifest = write_bundle_manifest(self.dir, stamped)
        return self.manifest


@contextmanager
def publish(out: Path, *, force: bool = False, source: Path | None = None) -> Iterator[Staging]:
    """Stage a bundle next to ``out``; on a clean exit move it into ``out`` and check it there.

    Args:
        out: The bundle folder to write.
        force: Replace the bundle files of a non-empty ``out``.
        source: The bundle this one derives from; ``out`` may equal it (rewritten in place).

    Yields:
        The staging area. The block must call :meth:`Staging.write_manifest` last.

    Raises:
        BundleError: ``out`` is not writable as a bundle, the block wrote no manifest, or the
            published bundle fails the service's start checks.
    """
    prepare_out_dir(out, force=force, keep=source)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as staging_name:
        staging = Staging(Path(staging_name))
        yield staging
        if staging.manifest is None:
            raise BundleError(f"no manifest was written for {out}")
        for file in BUNDLE_FILES:
            shutil.move(staging.dir / file, out / file)
    check_bundle(out)
