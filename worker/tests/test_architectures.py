"""export --source DIR: a second architecture (MPNet) exports, others are refused unwritten."""

import json
import shutil
from pathlib import Path

import pytest

from qembed_worker.bundle.manifest import check_bundle, read_manifest
from qembed_worker.cli.main import main
from qembed_worker.export.architectures import check_folder
from qembed_worker.export.exporter import cosine_rows
from qembed_worker.inference.encoder import OnnxEncoder
from qembed_worker.models.sources import ModelError, load_sentence_transformer

MIN_COSINE = 0.9999
# The tiny MPNet's bundle, calibrated on the parity texts: the same on every x86-64 CPU
# (written on an AMD EPYC with AVX-512; scripts/test-other-cpu "tests/test_architectures.py -m
# cpu" checks it under an emulated AVX2-only CPU), as MiniLM's are (docs/model-bundle.md).
TINY_MPNET_FINGERPRINT = "0cb39cf6fed628ad"


@pytest.fixture(scope="module")
def tiny_mpnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qembed_worker.models.sources import MINILM_ALIAS, resolve_model
    from qembed_worker.models.tiny import build_tiny_model

    folder = tmp_path_factory.mktemp("tiny-mpnet")
    return build_tiny_model(folder, resolve_model(MINILM_ALIAS).path, architecture="mpnet")


def _copy_with(folder: Path, tmp_path: Path, edit: str, change: object) -> Path:
    """A copy of ``folder`` with one JSON file's content replaced by ``change(content)``."""
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    path = copy / edit
    path.write_text(json.dumps(change(json.loads(path.read_text()))), encoding="utf-8")  # type: ignore[operator]
    return copy


@pytest.mark.slow
@pytest.mark.cpu
def test_mpnet_exports_from_a_folder_with_parity(
    tiny_mpnet_dir: Path, tmp_path: Path, parity_texts: list[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(parity_texts), encoding="utf-8")
    out = tmp_path / "bundle"
    code = main(
        ["export", "--source", str(tiny_mpnet_dir), "--out", str(out), "--corpus", str(corpus)]
    )
    assert code == 0
    manifest = check_bundle(out)
    assert manifest["fingerprint"] == TINY_MPNET_FINGERPRINT
    # MPNet has no token types, so the graph takes none.
    assert manifest["onnx"]["inputs"] == ["input_ids", "attention_mask"]
    model = load_sentence_transformer(tiny_mpnet_dir)
    encoder = OnnxEncoder(out, manifest["prompts"], manifest["onnx"]["inputs"])
    for input_type in ("query", "document"):
        ours = encoder.encode(parity_texts, input_type=input_type, batch_size=16, progress=False)
        theirs = model.encode(parity_texts, prompt_name=input_type, batch_size=16)
        assert cosine_rows(ours, theirs).min() >= MIN_COSINE, input_type
    assert read_manifest(out)["source"]["model"] == str(tiny_mpnet_dir)


def test_supported_folders_pass_the_file_check(tiny_model_dir: Path, tiny_mpnet_dir: Path) -> None:
    assert check_folder(tiny_model_dir) == "bert"
    assert check_folder(tiny_mpnet_dir) == "mpnet"


@pytest.mark.parametrize(
    ("edit", "change", "named"),
    [
        (
            "modules.json",
            lambda modules: [
                *modules,
                {
                    "idx": 3,
                    "name": "3",
                    "path": "3_LSTM",
                    "type": ("sentence_transformers.models.LSTM"),
                },
            ],
            "module 'sentence_transformers.models.LSTM'",
        ),
        (
            "modules.json",
            lambda modules: [modules[0], {**modules[1], "type": "my_package.MyPooling"}],
            "module 'my_package.MyPooling'",
        ),
        (
            "config.json",
            lambda config: {**config, "model_type": "t5", "architectures": ["T5EncoderModel"]},
            "architecture 't5' (T5EncoderModel)",
        ),
    ],
)
def test_unsupported_folders_fail_before_writing_anything(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: str,
    change: object,
    named: str,
) -> None:
    folder = _copy_with(tiny_model_dir, tmp_path, edit, change)
    out = tmp_path / "nested" / "bundle"
    assert main(["export", "--source", str(folder), "--out", str(out)]) == 1
    assert named in capsys.readouterr().err
    assert not (tmp_path / "nested").exists()
    with pytest.raises(ModelError, match=named.replace("(", r"\(").replace(")", r"\)")):
        check_folder(folder)


def test_an_unsupported_pooling_leaves_no_output_folder(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_with(
        tiny_model_dir,
        tmp_path,
        "1_Pooling/config.json",
        lambda config: {**config, "pooling_mode": "max"},
    )
    out = tmp_path / "bundle"
    assert main(["export", "--source", str(folder), "--out", str(out)]) == 1
    assert "pooling 'max'" in capsys.readouterr().err
    assert not out.exists()


def test_model_and_source_together_are_a_usage_error(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--model", "all-minilm-l6-v2", "--source", str(tiny_model_dir)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "b")])
    assert exit_info.value.code == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
