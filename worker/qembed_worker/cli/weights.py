"""Command line of the int8-weight commands (quantize-weights, weight-qat, encoder-report).

Registered by :mod:`qembed_worker.cli.main`; kept here so that the encoder-quantization work does
not crowd the main parser.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qembed_worker.weights.int8_graph import METHODS, ROLES

COMMANDS = ("quantize-weights", "weight-qat", "encoder-report")
REPO = Path(__file__).resolve().parents[2]
PARITY_TEXTS = REPO / "test" / "fixtures" / "parity-texts.json"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def add_parsers(
    commands: argparse._SubParsersAction,
    formatter: type[argparse.HelpFormatter],
    add_calibration_options: Callable[..., None],
) -> None:
    """Add the int8-weight subcommands to the main parser.

    Args:
        commands: The main parser's subparsers.
        formatter: The help formatter of the other commands.
        add_calibration_options: The shared ``--corpus/--limit/--method/...`` options.
    """
    ptq = commands.add_parser(
        "quantize-weights",
        help="post-training int8 weights for a float32 bundle (PTQ)",
        description="Write an int8-weight copy of a float32 bundle: every linear MatMul of "
        "model.onnx (constant 2-D weight; attention's own MatMuls stay float32) gets int8 "
        "weights, symmetric, per output channel unless --no-per-channel. --scheme per-token "
        "(default) quantizes activations per token to symmetric 7-bit codes (GELU outputs as "
        "uint8 with zero point 8), whose products with int8 weights cannot saturate on any CPU, "
        "into MatMulInteger: the numerics weight-qat trains for, and a text "
        "embeds the same alone and in any batch. --scheme dynamic is onnxruntime's "
        "quantize_dynamic: one uint8 scale for the whole activation tensor of a batch, so a "
        "text's embedding depends slightly on its batch. Then computes fresh calibration "
        "ranges with the int8 graph and records weights {precision: int8, method, per_channel, "
        "source_fingerprint} in the manifest. See docs/encoder-quantization.md.",
        formatter_class=formatter,
    )
    ptq.add_argument("--bundle", type=Path, required=True, help="the float32 bundle")
    ptq.add_argument("--out", type=Path, required=True, help="the int8 bundle folder to write")
    ptq.add_argument(
        "--scheme",
        choices=METHODS,
        default="per-token",
        help="activation quantization (manifest weights.method): per-token (MatMulInteger, "
        "batch-independent) or dynamic (onnxruntime quantize_dynamic, per tensor)",
    )
    ptq.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one weight scale per output channel (--no-per-channel: one per tensor)",
    )
    ptq.add_argument(
        "--exclude",
        action="append",
        choices=ROLES,
        default=[],
        help="leave these linear layers in float32 (repeatable): attention (query, key, value, "
        "output projections), ffn_in (widening), ffn_out (narrowing)",
    )
    ptq.add_argument(
        "--gelu-floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-token: GELU outputs as uint8 codes in [0, 127] with zero point 8 (about twice "
        "the resolution of symmetric codes for these one-sided values)",
    )
    ptq.add_argument(
        "--smooth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-token: SmoothQuant the attention and widening FFN layers (x / alpha, "
        "alpha * W per input channel, alpha from the bundle's activations on 256 Lee passages, "
        "beta 0.75): moves the hidden states' outlier channels into the weights",
    )
    ptq.add_argument("--force", action="store_true", help="overwrite --out if it holds files")
    ptq.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when --out already holds a bundle (a manifest.json): for start-up "
        "scripts (scripts/serve, docker/compose.yaml's bundle-init)",
    )
    add_calibration_options(ptq, default_limit=None)

    qat = commands.add_parser(
        "weight-qat",
        help="weight QAT: fine-tune for int8 weights by self-distillation -> int8 bundle",
        description="torchao-style weight QAT. Prepare: the linear layers of the bundle's "
        "source model (resolved from its manifest, weights verified) compute with fake-quantized "
        "int8 per-channel symmetric weights and per-token int8 activations, rounding with a "
        "straight-through estimator. Fine-tune: self-distillation from the frozen float32 model "
        "(no labels): 1 - cos(student, teacher) + KL between in-batch similarity softmaxes, on "
        "the training texts plus short spans cut from them. Convert: export the trained float "
        "weights to ONNX and quantize them exactly as the fake quantization did (per-token "
        "MatMulInteger graph), check that onnxruntime agrees with the fake-quantized model "
        "(cosine >= 0.999 on the parity texts), calibrate with the int8 graph and write the "
        "bundle. --quant-noise P fake-quantizes a random fraction P of the weight rows (output "
        "channels) at each step instead of all of them (Quant-Noise).",
        formatter_class=formatter,
    )
    qat.add_argument(
        "--bundle", type=Path, required=True, help="the float32 bundle (teacher and start)"
    )
    qat.add_argument(
        "--dataset",
        required=True,
        help="training texts: a BEIR folder (only its corpus.jsonl is read: title + ' ' + text) "
        "or a .jsonl/.txt corpus file",
    )
    qat.add_argument("--out", type=Path, required=True, help="the int8 bundle folder to write")
    qat.add_argument("--force", action="store_true", help="overwrite --out if it holds files")
    qat.add_argument("--limit", type=int, default=None, help="use the first N training texts")
    qat.add_argument("--epochs", type=float, default=1.0, help="passes over texts and spans")
    qat.add_argument("--batch-size", type=int, default=32, help="texts per training step")
    qat.add_argument("--lr", type=float, default=2e-5, help="peak AdamW learning rate")
    qat.add_argument(
        "--warmup", type=float, default=0.1, help="fraction of steps of linear warm-up"
    )
    qat.add_argument(
        "--kl-weight", type=float, default=1.0, help="weight of the in-batch similarity KL"
    )
    qat.add_argument(
        "--temperature", type=float, default=0.05, help="similarity softmax temperature"
    )
    qat.add_argument(
        "--spans-per-text",
        type=int,
        default=1,
        help="short spans (3-12 words) cut from each text as query-like inputs",
    )
    qat.add_argument(
        "--quant-noise",
        type=_fraction,
        default=0.0,
        help="Quant-Noise: fake-quantize only this random fraction of weight rows (output "
        "channels) per step; 0 quantizes all of them every step",
    )
    qat.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one weight scale per output channel (--no-per-channel: one per tensor)",
    )
    qat.add_argument(
        "--gelu-floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="GELU outputs as uint8 codes in [0, 127] with zero point 8",
    )
    qat.add_argument(
        "--smooth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SmoothQuant the attention and widening FFN layers (factors from the float32 "
        "bundle, fixed during training)",
    )
    qat.add_argument(
        "--train-max-tokens",
        type=int,
        default=None,
        help="truncate training texts (teacher and student) at N tokens for speed "
        "(default: the bundle's max_tokens)",
    )
    qat.add_argument(
        "--max-steps", type=int, default=None, help="stop after N steps (a CPU smoke test)"
    )
    qat.add_argument("--seed", type=int, default=0, help="seed of order, spans and noise")
    qat.add_argument(
        "--parity-texts",
        type=Path,
        default=PARITY_TEXTS if PARITY_TEXTS.is_file() else None,
        help="JSON list of texts for the PyTorch-vs-ONNX parity check",
    )
    qat.add_argument(
        "--save-model",
        type=Path,
        default=None,
        help="also save the fine-tuned float weights as a sentence-transformers folder",
    )
    qat.add_argument("--quiet", action="store_true", help="no progress bars")

    report = commands.add_parser(
        "encoder-report",
        help="docs/encoder-quantization.md: quality, speed and size of int8 encoders",
        description="Evaluate bundles (eval-bundle: NDCG@10 for float32 embeddings and "
        "binary+int8 search, fidelity@10 and document cosine against the first bundle) on BEIR "
        "datasets, time them with the service's in-process encoder (bench/encode-compare.ts: "
        "rounds rotating the bundles, ratios within a round) and with single-thread "
        "onnxruntime CPU time, and write the table into the Markdown report (between its "
        "'<!-- encoder-report:table -->' markers) with a JSON next to it. The first --bundle "
        "is the float32 baseline.",
        formatter_class=formatter,
    )
    report.add_argument(
        "--bundle",
        action="append",
        required=True,
        metavar="LABEL=DIR",
        help="a row of the table (repeatable; the first is the float32 baseline)",
    )
    report.add_argument(
        "--dataset", type=Path, action="append", required=True, help="BEIR folder (repeatable)"
    )
    report.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "encoder-quantization.md",
        help="the Markdown report (its JSON goes next to it)",
    )
    report.add_argument(
        "--rounds", type=int, default=7, help="speed rounds (every bundle once per round)"
    )
    report.add_argument("--texts", type=int, default=300, help="msmarco-5k passages timed")
    report.add_argument(
        "--timings",
        type=Path,
        default=None,
        help="reuse the timings of this earlier JSON report instead of measuring again",
    )


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, check_calibration: Any) -> Any:
    """Run one of :data:`COMMANDS`.

    Args:
        parser: The main parser (for usage errors).
        args: The parsed arguments.
        check_calibration: The shared validation of the calibration options.

    Returns:
        The summary printed as JSON.
    """
    if (
        args.command == "quantize-weights"
        and args.if_missing
        and (args.out / "manifest.json").is_file()
    ):
        return {"bundle": str(args.out), "skipped": "a bundle is already there (--if-missing)"}
    if args.command == "quantize-weights":
        check_calibration(parser, args)
        from qembed_worker.calibration.ranges import calibrate
        from qembed_worker.cli.calibration_options import calibration_kwargs
        from qembed_worker.weights.ptq import quantize_weights_bundle

        def calibrate_fn(staging: Path, manifest: dict[str, Any]) -> Any:
            return calibrate(staging, manifest, **calibration_kwargs(args))

        return quantize_weights_bundle(
            bundle=args.bundle,
            out=args.out,
            method=args.scheme,
            per_channel=args.per_channel,
            exclude=args.exclude,
            gelu_floor=args.gelu_floor,
            smooth=args.smooth,
            force=args.force,
            calibrate_fn=calibrate_fn,
        )
    if args.command == "weight-qat":
        for option in ("limit", "max_steps", "train_max_tokens"):
            value = getattr(args, option)
            if value is not None and value <= 0:
                parser.error(f"--{option.replace('_', '-')} must be positive")
        if args.batch_size < 2:
            parser.error("--batch-size must be at least 2 (the KL term compares texts)")
        from qembed_worker.weights.qat import DistillConfig, weight_qat_bundle

        config = DistillConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup=args.warmup,
            kl_weight=args.kl_weight,
            temperature=args.temperature,
            spans_per_text=args.spans_per_text,
            seed=args.seed,
            max_steps=args.max_steps,
            max_tokens=args.train_max_tokens,
        )
        texts = None
        if args.parity_texts is not None:
            texts = json.loads(args.parity_texts.read_text(encoding="utf-8"))
        return weight_qat_bundle(
            bundle=args.bundle,
            data=args.dataset,
            out=args.out,
            config=config,
            per_channel=args.per_channel,
            quant_noise=args.quant_noise,
            gelu_floor=args.gelu_floor,
            smooth=args.smooth,
            limit=args.limit,
            parity_texts=texts,
            save_model=args.save_model,
            force=args.force,
            progress=not args.quiet,
        )
    if args.command == "encoder-report":
        from qembed_worker.weights.report import write_report

        bundles = []
        for item in args.bundle:
            label, sep, folder = item.partition("=")
            if not sep or not label or not folder:
                parser.error(f"--bundle {item!r}: expected LABEL=DIR")
            bundles.append((label, Path(folder)))
        return write_report(
            bundles=bundles,
            datasets=args.dataset,
            out=args.out,
            rounds=args.rounds,
            texts=args.texts,
            timings_from=args.timings,
        )
    parser.error(f"unknown command {args.command}")
    return None
