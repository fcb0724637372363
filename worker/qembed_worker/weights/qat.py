"""``weight-qat``: weight QAT of a float32 bundle, written as an int8 bundle.

torchao's recipe in three steps, one module each:

1. prepare: :func:`qembed_worker.weights.fake_quant.fake_quantize_linears` swaps every
   ``nn.Linear`` of the encoder for a fake-quantized int8 layer (optionally with Quant-Noise);
2. fine-tune: :func:`qembed_worker.weights.distill.distill` trains it to reproduce the frozen
   float32 teacher's embeddings (self-distillation, no labels) on a corpus and query-like spans
   of it, with the training kit of :mod:`qembed_worker.training`;
3. convert: :func:`qembed_worker.weights.convert.write_int8_bundle` writes the int8 graph that
   computes what the fake-quantized model computed, and checks that it does.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from qembed_worker.bundle.manifest import MODEL_FILE, BundleError, check_bundle, sha256_file
from qembed_worker.bundle.publish import announce, prepare_out_dir
from qembed_worker.calibration.ranges import CalibrationOptions
from qembed_worker.data.corpus import load_corpus
from qembed_worker.export.exporter import inspect_model
from qembed_worker.models.sources import load_sentence_transformer, resolve_source
from qembed_worker.training.teacher import model_teacher_embeddings
from qembed_worker.weights.convert import write_int8_bundle
from qembed_worker.weights.distill import DistillConfig, distill, distill_spans
from qembed_worker.weights.fake_quant import fake_quantize_linears, float_linears, smoothing_for
from qembed_worker.weights.int8_graph import linear_sites
from qembed_worker.weights.ptq import bundle_smoothing


def weight_qat_bundle(
    *,
    bundle: Path,
    data: str,
    out: Path,
    config: DistillConfig,
    per_channel: bool = True,
    quant_noise: float = 0.0,
    gelu_floor: bool = True,
    smooth: bool = True,
    limit: int | None = None,
    name: str | None = None,
    parity_texts: list[str] | None = None,
    save_model: Path | None = None,
    force: bool = False,
    calibration: CalibrationOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Weight QAT of a float32 bundle's model by self-distillation, written as an int8 bundle.

    The teacher and starting point is the original sentence-transformers model named by the
    bundle's ``source`` (weights verified), with the bundle's ``max_tokens`` and prompts.

    Args:
        bundle: The float32 bundle.
        data: Training texts: a BEIR folder (its ``corpus.jsonl``; queries and judgments are
            not read) or a corpus file (see :func:`qembed_worker.data.corpus.load_corpus`).
        out: The int8 bundle folder to write.
        config: Distillation settings.
        per_channel: Per output channel weight scales.
        quant_noise: Quant-Noise fraction ``p`` (``0``: quantize every weight row every step).
        gelu_floor: Quantize GELU outputs as uint8 with zero point 8 (see
            :func:`~qembed_worker.weights.fake_quant.fake_quantize_linears`).
        smooth: SmoothQuant the attention and widening FFN layers, with factors computed from
            the float32 bundle's activations on the Lee corpus
            (:func:`qembed_worker.weights.ptq.bundle_smoothing`), fixed during training.
        limit: Use the first ``limit`` training texts.
        name: Manifest ``name`` (default: the bundle's, with ``-int8-qat``).
        parity_texts: Texts for the PyTorch-vs-ONNX parity check (default: a few built in).
        save_model: Also save the fine-tuned float weights as a sentence-transformers folder.
        force: Overwrite a non-empty ``out``.
        calibration: How the int8 graph's ranges are computed (default: the Lee corpus, with
            the source bundle's method, quantile and input type).
        progress: Show tqdm bars.

    Returns:
        A summary: fingerprint, training, parity.

    Raises:
        BundleError: The source is not a float32 bundle.
        ModelError: Parity below 0.999 or a graph that does not match.
    """
    source_manifest = check_bundle(bundle, probe=False)
    precision = (source_manifest.get("weights") or {}).get("precision")
    if precision != "float32":
        raise BundleError(f"{bundle} has {precision} weights; weight QAT starts from float32")
    resolved = resolve_source(source_manifest["source"])
    prepare_out_dir(out, force=force)
    data_path = Path(data)
    corpus = load_corpus(
        str(data_path / "corpus.jsonl") if data_path.is_dir() else data, limit=limit
    )
    teacher = load_sentence_transformer(resolved.path)
    max_tokens = int(source_manifest["max_tokens"])
    teacher.max_seq_length = max_tokens
    spec = inspect_model(teacher, max_tokens)
    if spec.prompts != source_manifest["prompts"]:
        raise BundleError(f"{bundle}'s prompts are not its source model's")
    prompt = spec.prompts.get("document", "")
    # Training may truncate harder than the bundle (speed); teacher and student alike.
    teacher.max_seq_length = min(config.max_tokens or max_tokens, max_tokens)
    spans = distill_spans(corpus.texts, config)
    texts = [prompt + t for t in [*corpus.texts, *spans]]
    announce(
        f"teacher embeddings of {len(corpus.texts)} texts + {len(spans)} spans from {corpus.name}"
    )
    started = time.perf_counter()
    teacher.eval()
    teacher_embeddings = model_teacher_embeddings(
        teacher,
        texts,
        key=f"{source_manifest['fingerprint']}-{teacher.max_seq_length}",
        progress=progress,
    )
    teacher_minutes = (time.perf_counter() - started) / 60
    student = copy.deepcopy(teacher)
    del teacher
    smoothing, smoothing_info = None, None
    if smooth:
        import onnx

        announce("SmoothQuant factors from the float32 bundle's activations")
        factors, smoothing_info = bundle_smoothing(bundle, source_manifest)
        sites = linear_sites(onnx.load(str(bundle / MODEL_FILE)))
        smoothing = smoothing_for(student, sites, factors)
    layers = fake_quantize_linears(
        student,
        per_channel=per_channel,
        quant_noise=quant_noise,
        gelu_floor=gelu_floor,
        smoothing=smoothing,
    )
    announce(
        f"weight QAT: {len(layers)} linear layers fake-quantized (int8 per-channel weights, "
        f"per-token activations{f', Quant-Noise p={quant_noise}' if quant_noise else ''})"
    )
    run = distill(student, teacher_embeddings, texts, config, progress=progress)
    student.max_seq_length = max_tokens
    if save_model is not None:
        with float_linears(student):
            student.save(str(save_model))
    training = {
        "kind": "weight-qat",
        "teacher": {"bundle": source_manifest["fingerprint"], **resolved.source},
        "data": {
            "name": corpus.name,
            "sha256": corpus.sha256,
            "texts": len(corpus.texts),
            "spans": len(spans),
            "input_type": "document",
        },
        "config": {
            **asdict(config),
            "per_channel": per_channel,
            "quant_noise": quant_noise,
            "gelu_floor": gelu_floor,
            "smoothing": smoothing_info,
        },
        "teacher_minutes": round(teacher_minutes, 2),
        **run,
        "torch_threads": torch.get_num_threads(),
    }
    source_ranges = source_manifest["calibration"]
    calibration = calibration or CalibrationOptions(
        method=source_ranges["method"],
        quantile=source_ranges.get("quantile"),
        input_type=source_ranges["corpus"]["input_type"],
    )
    manifest, cosines = write_int8_bundle(
        student,
        resolved.path,
        out,
        name=name or f"{source_manifest['name']}-int8-qat",
        source=source_manifest["source"],
        spec=spec,
        calibration=calibration,
        per_channel=per_channel,
        training=training,
        qat="weight QAT, self-distillation"
        + (f", Quant-Noise p={quant_noise}" if quant_noise else ""),
        source_fingerprint=source_manifest["fingerprint"],
        parity_texts=parity_texts,
        smoothing=smoothing_info,
    )
    return {
        "bundle": str(out),
        "from": source_manifest["fingerprint"],
        "fingerprint": manifest["fingerprint"],
        "weights": manifest["weights"],
        "training": {k: training[k] for k in ("steps", "minutes", "first_steps", "last_steps")},
        "parity_min_cosine": cosines,
        "model_onnx_bytes": (out / MODEL_FILE).stat().st_size,
        "model_onnx_sha256": sha256_file(out / MODEL_FILE),
    }
