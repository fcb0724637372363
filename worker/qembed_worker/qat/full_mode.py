"""``train --mode full``: the whole sentence-transformers encoder behind the bundle fine-tuned.

The teacher is the source bundle's cached float32 embeddings; the student is the original
sentence-transformers model (from the manifest's ``source``), trained with the same loss and
loop as a head and exported with :mod:`qembed_worker.export.exporter`. Meant for a GPU; on a
CPU, ``--max-steps`` makes a smoke test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qembed_worker.bundle.manifest import MODEL_FILE, BundleError
from qembed_worker.calibration.ranges import compute_ranges
from qembed_worker.data.corpus import load_corpus
from qembed_worker.qat.config import TrainConfig
from qembed_worker.qat.data import embed_training_data
from qembed_worker.qat.loop import remove_checkpoints, run_loop
from qembed_worker.qat.losses import QatLoss
from qembed_worker.qat.publishing import cli_summary, start_run, training_summary, write_new_bundle
from qembed_worker.quant.codes import Int8Ranges


def train_full(config: TrainConfig) -> dict[str, Any]:
    """Run ``--mode full``: fine-tune the encoder behind the bundle and export a new bundle.

    The teacher is the source bundle's cached float32 embeddings; the student is the original
    sentence-transformers model (from the manifest's ``source``), trained with the same loss.
    Meant for a GPU (``cuda`` is used when available); on a CPU, use ``--max-steps`` for a
    smoke test.

    Returns:
        A summary for the command line.
    """
    from qembed_worker.export.exporter import (
        MIN_COSINE,
        SMOKE_TEXTS,
        export_onnx,
        inspect_model,
        parity,
    )
    from qembed_worker.models.sources import load_sentence_transformer, resolve_source

    timings: dict[str, float] = {}
    started = time.perf_counter()
    manifest, plan, data = start_run(config)
    resolved = resolve_source(manifest["source"])
    torch.manual_seed(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    t0 = time.perf_counter()
    prepared = embed_training_data(data, config.bundle, manifest, config)
    calibration_corpus = load_corpus(plan.corpus, limit=plan.limit, cache_dir=plan.cache_dir)
    timings["embedding_s"] = round(time.perf_counter() - t0, 1)

    model = load_sentence_transformer(resolved.path)
    model.max_seq_length = int(manifest["max_tokens"])
    model.to(device)
    if model.get_embedding_dimension() != manifest["dimension"]:
        raise BundleError("the source model's dimension differs from the bundle's")
    prompts = manifest["prompts"]

    def encode(texts: list[str], input_type: str) -> torch.Tensor:
        features = model.preprocess([prompts[input_type] + t for t in texts])
        features = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()
        }
        return model(features)["sentence_embedding"]

    bundle_lo = np.asarray(manifest["calibration"]["min"], dtype=np.float32)
    bundle_hi = np.asarray(manifest["calibration"]["max"], dtype=np.float32)
    ranges = Int8Ranges(bundle_lo, bundle_hi).to(device)

    def refresh_ranges() -> None:
        if config.range_source() != "calibration":
            return
        with torch.no_grad():
            was_training = model.training
            model.eval()
            chunks = [
                encode(calibration_corpus.texts[i : i + 64], plan.input_type).float().cpu()
                for i in range(0, len(calibration_corpus.texts), 64)
            ]
            model.train(was_training)
        ranges.set_ranges(*compute_ranges(torch.cat(chunks).numpy(), plan.method, plan.quantile))

    refresh_ranges()
    loss_fn = QatLoss(config.settings(data.kind), ranges)
    teacher_docs = torch.from_numpy(prepared.documents).to(device)
    teacher_crops = (
        torch.from_numpy(prepared.crops).to(device) if prepared.crops is not None else None
    )

    def student(batch: np.ndarray):
        if prepared.kind == "texts":
            texts = [prepared.doc_texts[i] for i in batch]
            index = torch.from_numpy(batch).to(device)
            if teacher_crops is None:
                return encode(texts, "document"), teacher_docs[index], None, None
            crops = [prepared.crop_texts[i] for i in batch]
            return (
                encode(texts, "document"),
                teacher_docs[index],
                encode(crops, "query"),
                (teacher_crops[index]),
            )
        assert prepared.pairs is not None
        rows = prepared.pairs[batch]
        negatives = rows[:, 2][rows[:, 2] >= 0]
        docs = [prepared.doc_texts[i] for i in np.concatenate([rows[:, 1], negatives])]
        return encode([prepared.query_texts[i] for i in rows[:, 0]], "query"), encode(
            docs, "document"
        )

    result = run_loop(config, prepared, model, student, loss_fn, refresh_ranges)
    timings["training_s"] = result.seconds
    model.to("cpu").eval()
    summary = training_summary(config, manifest, data, prepared, result, None, None, timings)
    summary["validation"] = {
        "what": "not computed in full mode; run eval-bundle",
        "before": None,
        "after": None,
    }

    t0 = time.perf_counter()
    spec = inspect_model(model, int(manifest["max_tokens"]))
    if spec.prompts != prompts:
        spec.prompts = dict(prompts)

    def write_graph(staging: Path) -> None:
        export_onnx(model, spec, staging / MODEL_FILE, opset=18)

    new_manifest = write_new_bundle(
        config, manifest, plan, write_graph, summary, started, timings, t0
    )
    cosines = parity(model, config.out, new_manifest, list(SMOKE_TEXTS))
    if min(cosines.values()) < MIN_COSINE:
        raise BundleError(f"the exported graph disagrees with the trained model: {cosines}")
    remove_checkpoints(config)
    return cli_summary(config, manifest, new_manifest, result, None, None)
