import json
from pathlib import Path

import pytest

from qembed_worker.bundle.manifest import check_bundle
from qembed_worker.cli.main import build_parser, main
from qembed_worker.markdown import marker
from qembed_worker.qat.experiment import VARIANTS, beats_ptq, choose, options_of, train_command

from .conftest import TINY_BUNDLE
from .test_train import _texts


def _collection(folder: Path, seed: int) -> Path:
    folder.mkdir()
    texts = _texts(70, seed=seed)
    corpus = [json.dumps({"_id": f"d{i}", "title": "", "text": t}) for i, t in enumerate(texts)]
    queries = [json.dumps({"_id": f"q{i}", "text": t[:20]}) for i, t in enumerate(texts[:12])]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n", "utf-8")
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n", "utf-8")
    (folder / "qrels").mkdir()
    qrels = [f"q{i}\td{i}\t1" for i in range(0, 12, 2)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", "utf-8")
    return folder


def _row(name, crops, docs, split_f32, ndcg, changes=True):
    return {
        "name": name,
        "changes": {} if changes else None,
        "validation": {
            "fidelity@10": {"binary": docs, "float32": split_f32},
            "crop_queries_fidelity@10": {"binary": crops},
        },
        "eval": {"t": {"float32": {"ndcg@10": ndcg}}},
    }


def test_the_rule_picks_the_best_crop_fidelity_that_keeps_float32() -> None:
    rows = [
        _row("ptq", 0.5, 0.6, 1.0, 0.80, changes=False),
        _row("a", 0.60, 0.70, 1.0, 0.80),
        _row("b", 0.70, 0.70, 0.98, 0.80),  # float32 agreement below 99%
        _row("c", 0.65, 0.70, 1.0, 0.79),  # float32 NDCG@10 down a full point
        _row("d", 0.60, 0.71, 0.995, 0.797),  # ties a on crops, wins on documents
    ]
    assert choose(rows, "t") == "d"
    with pytest.raises(ValueError):
        choose(rows[:1], "t")


@pytest.mark.parametrize("variant", [name for name, _, c in VARIANTS if c is not None])
def test_every_variant_has_a_train_command_line(variant: str) -> None:
    command = train_command(Path("models/default"), Path("d"), Path("out"), options_of(variant))
    args = build_parser().parse_args(command.split(" -m qembed_worker ")[1].split())
    options = options_of(variant)
    for key, value in options.items():
        expected = list(value) if isinstance(value, tuple) else value
        got = getattr(args, key)
        assert (list(got) if isinstance(got, tuple) else got) == expected, key


def test_the_report_command_runs_in_smoke_mode_and_keeps_the_prose(tmp_path: Path) -> None:
    # The command end to end on the tiny bundle (two variants, one epoch): it fails when any
    # part of qat-report breaks, in seconds.
    train = _collection(tmp_path / "train-set", seed=0)
    held_out = _collection(tmp_path / "held-out", seed=5)
    out = tmp_path / "docs" / "qat.md"
    out.parent.mkdir()
    sweep = marker("qat-report", "sweep")
    out.write_text(f"# QAT\n\nHand-written prose.\n\n{sweep}\nold\n{sweep}\n\nMore prose.\n")
    args = ["qat-report", "--smoke", "--bundle", str(TINY_BUNDLE), "--train-dataset", str(train)]
    args += ["--eval-dataset", str(train), "--eval-dataset", str(held_out)]
    args += ["--qat-bundle", str(tmp_path / "qat"), "--out", str(out)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    manifest = check_bundle(tmp_path / "qat")
    page = out.read_text("utf-8")
    assert page.startswith("# QAT\n\nHand-written prose.\n\n") and "More prose." in page
    assert "\nold\n" not in page
    assert manifest["fingerprint"] in page
    assert "| held-out | QAT |" in page and "| train-set | PTQ |" in page
    assert "held-out: binary fidelity@10 vs original: +5 points" in page
    for block in ("bundle", "ptq-qat", "targets", "sweep", "in-domain"):
        assert page.count(marker("qat-report", block)) == 2, block
    assert {p.name for p in (tmp_path / "docs" / "qat").glob("*.json")} == {
        "ptq-train-set.json",
        "qat-train-set.json",
        "ptq-held-out.json",
        "qat-held-out.json",
        "sweep.json",
        "summary.json",
    }
    rows = json.loads((tmp_path / "docs" / "qat" / "sweep.json").read_text())
    assert [row["name"] for row in rows] == ["ptq", "rotation"]
    assert manifest["training"]["config"]["epochs"] == 1


def _figures(fidelity: float, retention: float, ndcg: float) -> dict:
    return {
        "binary": {"fidelity@10_vs_original": fidelity, "retention": retention},
        "float32": {"ndcg@10": ndcg},
    }


def test_beating_ptq_needs_a_real_gain_and_no_loss() -> None:
    ptq = _figures(0.716, 1.10, 0.0774)
    assert not beats_ptq(ptq, _figures(0.716, 1.075, 0.0774))  # equal fidelity, lower retention
    assert not beats_ptq(ptq, _figures(0.73, 1.10, 0.0774))  # +1.4 points: within noise
    assert not beats_ptq(ptq, _figures(0.77, 1.10, 0.0700))  # float32 NDCG down 0.74 point
    assert not beats_ptq(ptq, _figures(0.77, 1.05, 0.0774))  # retention lower
    assert beats_ptq(ptq, _figures(0.74, 1.10, 0.0772))
