"""docs/encoder-quantization.md: the table and the bench:encode parsing."""

import json
from pathlib import Path

import pytest

from qembed_worker.bundle.manifest import check_bundle
from qembed_worker.calibration.ranges import CalibrationOptions
from qembed_worker.cli.main import main
from qembed_worker.markdown import marker
from qembed_worker.weights import report as encoder_report
from qembed_worker.weights.ptq import quantize_weights_bundle
from qembed_worker.weights.report import _summarize, render

from .conftest import TINY_BUNDLE
from .test_report import _collection


def _report() -> dict:
    def q(ndcg: float) -> dict:
        return {
            "float32": ndcg,
            "binary+int8@4": ndcg - 0.01,
            "fidelity@10_vs_float32_encoder": 0.9,
            "document_cosine_to_float32_encoder": {"mean": 0.9995, "min": 0.99},
            "judged_queries": 12,
        }

    def info(precision: str, method: str | None, qat: str | None, minutes: float | None):
        return {
            "weights": {"precision": precision, "method": method, "qat": qat},
            "model_onnx_bytes": 90_000_000 if precision == "float32" else 23_000_000,
            "training_minutes": minutes,
        }

    def speed(ratio: float) -> dict:
        return {"texts_per_s": 100 * ratio, "ratio": ratio, "ratio_min": ratio, "ratio_max": ratio}

    return {
        "bundles": {
            "float32": info("float32", None, None, None),
            "QAT int8": info("int8", "per-token", "weight QAT", 12.5),
        },
        "quality": {"float32": {"ms": q(0.8)}, "QAT int8": {"ms": q(0.795)}},
        "speed": {
            "summary": {
                "float32": {"1": speed(1.0), "32": speed(1.0)},
                "QAT int8": {"1": speed(1.8), "32": speed(1.7)},
            }
        },
        "cpu_time": {
            "summary": {
                "float32": {"1": speed(1.0), "32": speed(1.0)},
                "QAT int8": {"1": speed(1.9), "32": speed(1.85)},
            }
        },
    }


def test_the_table_shows_degradation_speed_ratios_and_size() -> None:
    table = render(_report())
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].count("|") == lines[1].count("|") == lines[3].count("|")
    assert "0.7950 (-0.50)" in lines[3]
    assert "int8 per-token QAT" in lines[3]
    assert "180.0 (1.80x, 1.80-1.80)" in lines[3]
    assert "1.85x (1.85-1.85)" in lines[3]
    assert "12.5 min" in lines[3] and "23.0 MB" in lines[3]


def test_ratios_are_taken_within_each_round() -> None:
    runs = [
        {"a": {"1": 10.0}, "b": {"1": 20.0}},  # a busy round: both slow
        {"a": {"1": 40.0}, "b": {"1": 72.0}},
        {"a": {"1": 30.0}, "b": {"1": 57.0}},
    ]
    summary = _summarize(runs, ["a", "b"])
    assert summary["b"]["1"] == {
        "texts_per_s": 57.0,
        "ratio": 1.9,
        "ratio_min": 1.8,
        "ratio_max": 2.0,
    }
    assert summary["a"]["1"]["ratio"] == 1.0


def test_the_report_keeps_the_prose_around_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report.md"
    table = marker("encoder-report", "table")
    out.write_text(f"# Title\n\nintro\n\n{table}\nold\n{table}\n\noutro\n", encoding="utf-8")
    report = _report()
    monkeypatch.setattr(encoder_report, "measure_quality", lambda b, d: report["quality"])
    monkeypatch.setattr(encoder_report, "describe", lambda folder: report["bundles"][folder.name])
    timings = tmp_path / "t.json"
    timings.write_text(
        json.dumps({"speed": report["speed"], "cpu_time": report["cpu_time"]}), encoding="utf-8"
    )
    encoder_report.write_report(
        bundles=[("float32", Path("float32")), ("QAT int8", Path("QAT int8"))],
        datasets=[Path("ms")],
        out=out,
        timings_from=timings,
    )
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\noutro\n")
    assert "old" not in text and "1.80x" in text
    assert (tmp_path / "report.json").is_file()


def test_service_timings_are_read_by_bundle_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    raw = {
        "texts": 300,
        "rounds": [{str(a.resolve()): {"1": 10.0}, str(b.resolve()): {"1": 18.0}}],
        "summary": {
            str(a.resolve()): {"1": {"ratio": 1.0}},
            str(b.resolve()): {"1": {"ratio": 1.8}},
        },
    }
    speed = encoder_report.service_speed(raw, [("float32", a), ("int8", b)])
    assert speed["summary"] == {"float32": {"1": {"ratio": 1.0}}, "int8": {"1": {"ratio": 1.8}}}
    assert speed["rounds"] == [{"float32": {"1": 10.0}, "int8": {"1": 18.0}}]
    with pytest.raises(ValueError, match="not of"):
        encoder_report.service_speed(raw, [("float32", a), ("other", tmp_path / "c")])


def test_the_report_command_runs_in_smoke_mode(tmp_path: Path) -> None:
    # The command end to end on the tiny bundle and its int8 copy, one round over 4 passages:
    # it fails when any part of encoder-report breaks, in seconds. The service's timings come
    # from bench/encode-compare.ts in scripts/encoder-report; here a file in its format.
    int8 = tmp_path / "int8"
    quantize_weights_bundle(bundle=TINY_BUNDLE, out=int8, calibration=CalibrationOptions(limit=8))
    check_bundle(int8)
    dataset = _collection(tmp_path / "set", seed=0)
    bundles = {"float32": TINY_BUNDLE, "int8": int8}
    timings = tmp_path / "service.json"
    figures = {"texts_per_s": 10.0, "ratio": 1.0, "ratio_min": 1.0, "ratio_max": 1.0}
    speed = {str(path.resolve()): {"1": figures} for path in bundles.values()}
    rounds = [{str(path.resolve()): {"1": 10.0} for path in bundles.values()}]
    timings.write_text(json.dumps({"texts": 4, "rounds": rounds, "summary": speed}), "utf-8")
    out = tmp_path / "encoder.md"
    args = ["encoder-report", "--dataset", str(dataset), "--out", str(out), "--rounds", "1"]
    args += ["--texts", "4", "--speed-corpus", str(dataset / "corpus.jsonl")]
    args += ["--service-timings", str(timings)]
    for label, path in bundles.items():
        args += ["--bundle", f"{label}={path}"]
    assert main(args) == 0
    page = out.read_text("utf-8")
    assert page.count(marker("encoder-report", "table")) == 2
    assert "| int8 | int8 per-token PTQ |" in page
    report = json.loads(out.with_suffix(".json").read_text("utf-8"))
    assert set(report["quality"]["int8"]) == {"set"}
    assert set(report["cpu_time"]["summary"]["int8"]) == {"1", "32"}
