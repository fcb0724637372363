"""How closely an int8 encoder follows its float32 source, on the CPU this runs on.

Embeds passages and queries of a BEIR collection with both bundles through onnxruntime (the
service's settings) and prints, as one JSON object: the processor, the mean and minimum cosine
between the two encoders' embeddings, and fidelity@10 (the share of the float32 encoder's top-10
passages, exact float32 search over the passages embedded here, that the int8 encoder's own top-10
finds). Run it on two processors, or under an emulated one, to see that the int8 graph agrees with
float32 the same everywhere:

    $(scripts/worker-env) bench/int8_agreement.py --bundle models/default-int8 \\
        --reference models/default --dataset ../shared/datasets/msmarco-5k --passages 1000
    qemu-x86_64 -cpu Haswell $(scripts/worker-env) bench/int8_agreement.py ...   # AVX2 only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))
from qembed_worker.bundle.manifest import read_manifest  # noqa: E402
from qembed_worker.inference.encoder import OnnxEncoder  # noqa: E402


def cpu_description() -> dict[str, object]:
    """The processor's name and the extensions its CPUID reports, as numpy detected them.

    CPUID, not /proc/cpuinfo: under qemu-user /proc/cpuinfo describes the host, while CPUID (what
    numpy, PyTorch and onnxruntime dispatch on) describes the emulated CPU.
    """
    from numpy._core._multiarray_umath import __cpu_features__

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
                break
    except OSError:
        pass
    wanted = ["AVX2", "FMA3", "AVX512F", "AVX512BW", "AVX512VNNI"]
    return {"model (host)": model, "cpuid": [f for f in wanted if __cpu_features__.get(f)]}


def embed(bundle: Path, texts: list[str], input_type: str) -> np.ndarray:
    manifest = read_manifest(bundle)
    encoder = OnnxEncoder(bundle, manifest["prompts"], manifest["onnx"]["inputs"])
    return encoder.encode(texts, input_type=input_type, batch_size=32, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="the int8 bundle")
    parser.add_argument("--reference", type=Path, required=True, help="its float32 source bundle")
    parser.add_argument("--dataset", type=Path, required=True, help="a BEIR collection folder")
    parser.add_argument("--passages", type=int, default=1000, help="first N passages (default 1000)")
    args = parser.parse_args()
    corpus = [json.loads(line) for line in (args.dataset / "corpus.jsonl").open(encoding="utf-8")]
    passages = [(c.get("title") + " " + c["text"]).strip() if c.get("title") else c["text"] for c in corpus]
    passages = passages[: args.passages]
    queries = [json.loads(line)["text"] for line in (args.dataset / "queries.jsonl").open(encoding="utf-8")]
    a_docs, b_docs = embed(args.bundle, passages, "document"), embed(args.reference, passages, "document")
    a_queries, b_queries = embed(args.bundle, queries, "query"), embed(args.reference, queries, "query")
    cos = np.concatenate([(a_docs * b_docs).sum(1), (a_queries * b_queries).sum(1)])
    top_a = np.argsort(-(a_queries @ a_docs.T), axis=1)[:, :10]
    top_b = np.argsort(-(b_queries @ b_docs.T), axis=1)[:, :10]
    fidelity = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top_a, top_b, strict=True)]))
    print(
        json.dumps(
            {
                "cpu": cpu_description(),
                "passages": len(passages),
                "queries": len(queries),
                "mean_cosine": round(float(cos.mean()), 6),
                "min_cosine": round(float(cos.min()), 6),
                "fidelity@10": round(fidelity, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
