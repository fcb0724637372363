"""Does a transform fitted on one corpus serve collections it never saw? (issue 24, part 4)

A model-level default would be one transform for every collection of a model: fitted once on a
large real-text corpus and shipped with the bundle. This measures that against what a collection
gets from its own fit, label-free, on collections the model-level fit never saw:

- the model-level fit: the recall corpus (``npm run bench:recall-corpus``) without the passages of
  the collections measured (WordNet, GCIDE and Lee: ~240k passages; at most ``--max-documents``
  of them fitted, seeded);
- each measured collection (msmarco-5k and business-reports, whose passages are in the corpus):
  ``--holdout`` of its passages are taken out and searched as queries together with its real
  queries; its own fit sees only the rest (as the service's fit would);
- recall@40 of the exact top-10 (cosine over the float32 vectors) for the Hamming and the
  asymmetric first stage, per code length: first dims, the model-level ITQ and QAT, the
  collection's own ITQ and QAT; and a seeded random rotation (the RaBitQ baseline) with and
  without RaBitQ's per-document correction of the asymmetric estimate.

Run from the repository root (a few minutes; the model-level QAT fit is most of it)::

    PYTHONPATH=worker $(scripts/worker-env) bench/transform_transfer.py --out /tmp/transfer
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from qembed_worker.transform.artifact import read_transform
from qembed_worker.transform.evaluate import (
    Transform,
    exact_neighbours,
    first_stage_recall,
)
from qembed_worker.transform.fit import Collection, fit_transform

MEASURED = ("msmarco-5k", "business-reports")


def fitted(
    vectors: np.ndarray,
    bits: tuple[int, ...],
    method: str,
    out: Path,
    args: argparse.Namespace,
) -> dict[int, Transform]:
    """Fits ``method`` on ``vectors`` (the fit's own holdout kept small: it is not the measure here)."""
    if args.reuse and (out / "transform.json").is_file():
        artifact = read_transform(out)
        print(f"  reused {out}", flush=True)
        return {
            b: Transform(mean=artifact.mean, weights=artifact.weights[b]) for b in bits
        }
    started = time.perf_counter()
    fit_transform(
        Collection(vectors=vectors, model=None, sha256=""),
        bits=bits,
        method=method,
        seed=args.seed,
        max_documents=args.max_documents,
        holdout=min(1000, len(vectors) // 10),
        out=out,
        force=True,
    )
    artifact = read_transform(out)
    print(
        f"  fitted {method} on {min(len(vectors), args.max_documents):,} documents in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return {b: Transform(mean=artifact.mean, weights=artifact.weights[b]) for b in bits}


def first_dims(d: int, bits: int) -> Transform:
    return Transform(
        mean=np.zeros(d, np.float32), weights=np.eye(d, dtype=np.float32)[:bits]
    )


def rotation(d: int, bits: int, seed: int) -> Transform:
    """The first ``bits`` rows of a seeded random orthogonal matrix (QR of a Gaussian one)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    q *= np.sign(np.diag(r))
    return Transform(
        mean=np.zeros(d, np.float32), weights=q.T[:bits].astype(np.float32)
    )


def corrected_asymmetric_recall(
    queries: np.ndarray,
    documents: np.ndarray,
    truth: np.ndarray,
    t: Transform,
    k: int = 40,
) -> float:
    """The asymmetric first stage with RaBitQ's per-document factor: each document's score
    <W q, s> (s = sign(W x)) scaled by |W x| / <s, W x>, which makes it an unbiased estimate of
    <W q, W x> (RaBitQ divides by <s/sqrt(b), Wx/|Wx|>; the norm puts the length back)."""
    y = (documents - t.mean) @ t.weights.T
    s = np.where(y > 0, 1.0, -1.0)
    factor = np.linalg.norm(y, axis=1) ** 2 / np.maximum((s * y).sum(axis=1), 1e-12)
    kept = 0
    for i in range(0, len(queries), 256):
        scores = (queries[i : i + 256] @ t.weights.T) @ s.T * factor[None, :]
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        kept += sum(len(set(top[j]) & set(truth[i + j])) for j in range(len(top)))
    return round(kept / truth.size, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(".cache/recall-corpus/59d41f7a7bb54827")
    )
    parser.add_argument("--bits", default="128,64")
    parser.add_argument("--max-documents", type=int, default=100_000)
    parser.add_argument(
        "--holdout",
        type=int,
        default=500,
        help="passages of each measured collection searched as queries",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for the fitted transforms and results.json",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read transforms already fitted into --out instead of fitting them again",
    )
    args = parser.parse_args()
    bits = tuple(int(b) for b in args.bits.split(","))
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    passages = np.load(args.corpus / "passages.npy")
    queries = np.load(args.corpus / "queries.npy")
    sources = np.array(manifest["passages"]["sources"])
    query_sources = np.array(manifest["queries"]["sources"])
    d = passages.shape[1]
    args.out.mkdir(parents=True, exist_ok=True)

    print(
        f"model-level fit: {int(np.isin(sources, MEASURED, invert=True).sum()):,} passages of {sorted(set(sources) - set(MEASURED))}",
        flush=True,
    )
    general = passages[np.isin(sources, MEASURED, invert=True)]
    model_level = {
        m: fitted(general, bits, m, args.out / f"model-{m}", args)
        for m in ("itq", "qat")
    }

    rows = []
    rabitq = []
    for name in MEASURED:
        docs = passages[sources == name]
        order = np.random.default_rng(args.seed).permutation(len(docs))
        holdout = min(args.holdout, len(docs) // 5)
        held, kept = np.sort(order[:holdout]), np.sort(order[holdout:])
        real = queries[query_sources == name]
        q = np.concatenate([real, docs[held]])
        documents = docs[kept]
        truth = exact_neighbours(q, documents)
        print(
            f"{name}: {len(documents):,} documents, {len(q):,} queries ({len(real)} real + {len(held)} held-out passages)",
            flush=True,
        )
        own = {
            m: fitted(documents, bits, m, args.out / f"{name}-{m}", args)
            for m in ("itq", "qat")
        }
        for b in bits:
            candidates = {
                "first dims": first_dims(d, b),
                "model-level ITQ": model_level["itq"][b],
                "model-level QAT": model_level["qat"][b],
                "own ITQ": own["itq"][b],
                "own QAT": own["qat"][b],
            }
            for label, t in candidates.items():
                r = first_stage_recall(q, documents, truth, t)
                rows.append(
                    {
                        "collection": name,
                        "bits": b,
                        "transform": label,
                        "queries": len(q),
                        **r,
                    }
                )
                print(
                    f"  {b} bits {label}: hamming {r['hamming']:.3f}, asymmetric {r['asymmetric']:.3f}",
                    flush=True,
                )
            # The RaBitQ baseline: a random rotation, asymmetric with and without its per-document factor.
            rot = rotation(d, b, args.seed)
            plain = first_stage_recall(q, documents, truth, rot)
            corrected = corrected_asymmetric_recall(q, documents, truth, rot)
            rabitq.append(
                {
                    "collection": name,
                    "bits": b,
                    "queries": len(q),
                    "hamming": plain["hamming"],
                    "asymmetric": plain["asymmetric"],
                    "asymmetric_corrected": corrected,
                }
            )
            print(
                f"  {b} bits random rotation: hamming {plain['hamming']:.3f}, asymmetric {plain['asymmetric']:.3f}, with RaBitQ's factor {corrected:.3f}",
                flush=True,
            )
    (args.out / "results.json").write_text(
        json.dumps({"rows": rows, "rotation": rabitq}, indent=2) + "\n"
    )
    print(
        "\n| collection (queries) | bits | first dims | model-level ITQ | model-level QAT | own ITQ | own QAT |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in MEASURED:
        for b in bits:
            cells = [r for r in rows if r["collection"] == name and r["bits"] == b]
            print(
                f"| {name} ({cells[0]['queries']:,}) | {b} | "
                + " | ".join(
                    f"{r['hamming']:.3f} / {r['asymmetric']:.3f}" for r in cells
                )
                + " |"
            )
    print(
        "\n| collection | bits | random rotation: Hamming / asymmetric | asymmetric with RaBitQ's per-document factor |"
    )
    print("| --- | --- | --- | --- |")
    for r in rabitq:
        print(
            f"| {r['collection']} | {r['bits']} | {r['hamming']:.3f} / {r['asymmetric']:.3f} | {r['asymmetric_corrected']:.3f} |"
        )


if __name__ == "__main__":
    main()
