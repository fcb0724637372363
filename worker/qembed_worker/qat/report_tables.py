"""The tables of docs/qat.md, from the report's summary: figures only, the page holds the prose.

Each function renders one block of the page (:func:`blocks` names them); the prose that says
what the columns mean, how the variants were chosen and what the figures show is written by hand
in docs/qat.md around the blocks (:mod:`qembed_worker.markdown`).
"""

from __future__ import annotations

from typing import Any

from qembed_worker.markdown import table
from qembed_worker.qat.experiment import target_checks

TOOL = "qat-report"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _points(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return "-"
    return f"{100 * (new - old):+.1f}"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def held_out_names(summary: dict[str, Any]) -> list[str]:
    """The evaluation collections other than the training one."""
    return [n for n in summary["eval"] if n != summary["train_dataset_name"]]


def bundle_block(summary: dict[str, Any]) -> str:
    """How the QAT bundle was made: the command, its fingerprint, durations, head, ranges."""
    qat = summary["qat_bundle"]
    facts = table(
        [
            "generated",
            "machine",
            "fingerprint",
            "from",
            "steps",
            "training min",
            "whole command min",
            "embedding min",
            "calibration min",
            "head",
            "calibration ranges",
        ],
        [
            [
                summary["generated"],
                summary["machine"],
                f"`{qat['fingerprint']}`",
                f"`{summary['ptq_bundle']['fingerprint']}`",
                str(qat["steps"]),
                f"{qat['training_s'] / 60:.1f}",
                f"{qat['total_s'] / 60:.1f}",
                f"{qat['embedding_s'] / 60:.1f}",
                f"{qat['calibration_s'] / 60:.1f}",
                qat["head"].replace("|", "\\|"),  # a table cell
                qat["calibration"],
            ]
        ],
    )
    return f"```sh\n{summary['train_command']}\n```\n\n{facts}"


def ptq_qat_table(summary: dict[str, Any]) -> str:
    """PTQ against QAT on every evaluation collection, end to end."""
    rows = []
    for name, both in summary["eval"].items():
        for label in ("ptq", "qat"):
            d = both[label]
            rows.append(
                [
                    name,
                    label.upper(),
                    f"{d['float32']['ndcg@10']:.4f}",
                    f"{d['int8']['ndcg@10']:.4f}",
                    f"{d['binary']['ndcg@10']:.4f}",
                    f"{d['binary+int8@4']['ndcg@10']:.4f}",
                    f"{_pct(d['binary']['retention'])}%",
                    f"{_pct(d['binary+int8@4']['retention'])}%",
                    f"{_pct(d['binary']['fidelity@10_vs_original'])}%",
                    f"{_pct(d['float32']['fidelity@10_vs_original'])}%",
                ]
            )
    header = [
        "collection",
        "bundle",
        "NDCG@10 float32",
        "int8",
        "binary",
        "binary+int8",
        "binary retention",
        "binary+int8 retention",
        "binary fidelity vs original",
        "float32 fidelity vs original",
    ]
    return table(header, rows)


def targets_table(summary: dict[str, Any]) -> str:
    """Each target on each held-out collection, then whether all are met and QAT beats PTQ."""
    rows = []
    for name in held_out_names(summary):
        ptq, qat = summary["eval"][name]["ptq"], summary["eval"][name]["qat"]
        for what, old, new, met in target_checks(ptq, qat):
            if what.startswith("float32"):
                cells = [f"{old:.4f}", f"{new:.4f}"]
            else:
                cells = [f"{_pct(old)}%", f"{_pct(new)}%"]
            rows.append([f"{name}: {what}", *cells, _points(new, old), _yes(met)])
    rows.append(["all targets met", "", "", "", _yes(summary["targets_met"])])
    rows.append(
        ["QAT beats PTQ (the README's rule)", "", "", "", _yes(summary["beats_ptq_on_held_out"])]
    )
    return table(["target", "PTQ", "QAT", "change (points)", "met"], rows)


def sweep_table(summary: dict[str, Any]) -> str:
    """Every variant: the label-free split figures and the evaluation on each collection."""
    train = summary["train_dataset_name"]
    held_out = held_out_names(summary)
    header = [
        "variant",
        "train s",
        "split: binary fid, docs",
        "split: binary fid, crops",
        "split: float32 fid",
        f"{train}: float32 NDCG@10",
        f"{train}: binary fid vs orig",
        f"{train}: binary ret",
    ]
    for name in held_out:
        header += [
            f"{name}: float32 NDCG@10",
            f"{name}: binary fid vs orig",
            f"{name}: binary ret",
        ]
    rows = []
    for row in summary["sweep"]:
        val = row["validation"] or {}
        docs = val.get("fidelity@10", {})
        crops = val.get("crop_queries_fidelity@10", {})
        e = row["eval"][train]
        marker = " **(chosen)**" if row["name"] == summary["chosen"] else ""
        cells = [
            f"{row['description']}{marker}",
            f"{row['train_s']:.0f}",
            _pct(docs.get("binary")),
            _pct(crops.get("binary")),
            _pct(docs.get("float32")),
            f"{e['float32']['ndcg@10']:.4f}",
            _pct(e["binary"]["fidelity@10_vs_original"]),
            _pct(e["binary"]["retention"]),
        ]
        for name in held_out:
            h = row["eval"][name]
            cells += [
                f"{h['float32']['ndcg@10']:.4f}",
                _pct(h["binary"]["fidelity@10_vs_original"]),
                _pct(h["binary"]["retention"]),
            ]
        rows.append(cells)
    return table(header, rows)


def in_domain_table(summary: dict[str, Any]) -> str:
    """The chosen configuration trained on each held-out collection's own corpus."""
    header = [
        "collection",
        "training texts",
        "train s",
        "float32 NDCG@10",
        "binary NDCG@10",
        "binary retention",
        "binary fidelity vs original",
        "PTQ binary fidelity vs original",
    ]
    rows = []
    for name, result in summary["in_domain"].items():
        e = result["eval"]
        ptq = summary["eval"][name]["ptq"]
        rows.append(
            [
                name,
                str(result["texts"]),
                f"{result['train_s']:.0f}",
                f"{e['float32']['ndcg@10']:.4f}",
                f"{e['binary']['ndcg@10']:.4f}",
                f"{_pct(e['binary']['retention'])}%",
                f"{_pct(e['binary']['fidelity@10_vs_original'])}%",
                f"{_pct(ptq['binary']['fidelity@10_vs_original'])}%",
            ]
        )
    return table(header, rows)


def blocks(summary: dict[str, Any]) -> dict[str, str]:
    """Every block of docs/qat.md, by name, in page order."""
    return {
        "bundle": bundle_block(summary),
        "ptq-qat": ptq_qat_table(summary),
        "targets": targets_table(summary),
        "sweep": sweep_table(summary),
        "in-domain": in_domain_table(summary),
    }
