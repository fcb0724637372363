"""Python baselines for `npm run bench:encode`: a float32 bundle's graph in onnxruntime, and the
original model in sentence-transformers (PyTorch, CPU). Prints one JSON object on stdout.

onnxruntime runs at each requested graph optimization level (`all` is its default; `basic` is
what qembed uses on the CPU, since `all` adds a slow SkipLayerNormalization kernel), so the
baseline's best batch is its best over batch sizes and levels.

Run with the worker's Python (scripts/worker-env); bench/encode.ts calls it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
}


def onnx_texts_per_second(
    bundle: Path, texts: list[str], batch: int, sort: bool, threads: int, level: str = "all"
) -> float:
    """Encodes all texts in batches padded to their longest member; returns texts/s."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.enable_truncation(manifest["max_tokens"])
    tok.no_padding()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    if threads > 0:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(bundle / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    prompt = manifest["prompts"]["document"]

    def run(chunk: list[str]) -> None:
        encs = tok.encode_batch([prompt + t for t in chunk])
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        session.run([manifest["onnx"]["output"]], feeds)

    order = sorted(texts, key=lambda t: len(tok.encode(prompt + t).ids)) if sort else texts
    run(order[:8])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        run(order[i : i + batch])
    return len(order) / (time.perf_counter() - start)


def sentence_transformers_texts_per_second(bundle: Path, texts: list[str], batch: int) -> float:
    """The original model's encode in batches (it sorts by length itself); returns texts/s."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))
    from qembed_worker.models.sources import load_sentence_transformer, resolve_source  # type: ignore[import-not-found]

    manifest = json.loads((bundle / "manifest.json").read_text())
    model = load_sentence_transformer(resolve_source(manifest["source"]).path)
    model.encode(texts[:8], batch_size=batch)
    start = time.perf_counter()
    model.encode(texts, batch_size=batch)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder")
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of texts")
    parser.add_argument("--batch-sizes", default="1,8,32,64", help="comma-separated batch sizes")
    parser.add_argument("--levels", default="all,basic", help="onnxruntime optimization levels")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    parser.add_argument("--skip-torch", action="store_true", help="skip the sentence-transformers run")
    args = parser.parse_args()
    texts = json.loads(args.texts.read_text())
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    levels = args.levels.split(",")
    out: dict[str, dict[str, float]] = {}
    for level in levels:
        for b in sizes:
            # Batch 1 needs no sorting; larger batches are sorted by length over the whole corpus
            # (padding-free batches: the baseline at its best).
            key = f"{level}, batch {b}" + (", length-sorted" if b > 1 else "")
            out.setdefault("onnxruntime", {})[key] = onnx_texts_per_second(
                args.bundle, texts, b, sort=b > 1, threads=args.threads, level=level
            )
    if not args.skip_torch:
        out["sentence_transformers"] = {"32": sentence_transformers_texts_per_second(args.bundle, texts, 32)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
