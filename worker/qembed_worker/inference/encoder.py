"""Running a bundle's graph on texts, as the service does: tokenizer, padding, onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from qembed_worker.bundle.manifest import MODEL_FILE, TOKENIZER_FILE


def session_for(model_path: Path) -> Any:
    """An onnxruntime CPU session with the settings the service uses on the CPU.

    Graph optimizations stay at ``basic``: bundles are fused when written
    (:mod:`qembed_worker.export.fusion`), and onnxruntime's extended level would only add its
    ``SkipLayerNormalization`` fusion, whose CPU kernel runs about 6 times slower than the
    ``Add`` + ``LayerNormalization`` it replaces (a serial sum per row;
    docs/encoder-quantization.md).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Embeds texts with a bundle's ``model.onnx`` and ``tokenizer.json``, as the service does.

    Args:
        bundle_dir: Folder holding ``model.onnx`` and ``tokenizer.json``.
        prompts: The manifest's ``prompts`` (``query`` and ``document``).
        inputs: The manifest's ``onnx.inputs``.
        float64: Evaluate the graph in float64 with numpy
            (:class:`qembed_worker.inference.float64_graph.Float64Graph`) instead of onnxruntime in
            float32: slower, and the same on every CPU (what calibration needs).
    """

    def __init__(
        self,
        bundle_dir: Path,
        prompts: dict[str, str],
        inputs: Sequence[str],
        *,
        float64: bool = False,
    ) -> None:
        """Open the tokenizer and an onnxruntime CPU session (or the float64 evaluator)."""
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(bundle_dir / TOKENIZER_FILE))
        self.dtype = np.float64 if float64 else np.float32
        if float64:
            import onnx

            from qembed_worker.inference.float64_graph import Float64Graph

            self.session: Any = Float64Graph(onnx.load(str(bundle_dir / MODEL_FILE)))
        else:
            self.session = session_for(bundle_dir / MODEL_FILE)
        self.prompts = dict(prompts)
        self.inputs = list(inputs)

    def tokenize(self, texts: Sequence[str], input_type: str) -> list[list[int]]:
        """Return the token ids of each text after its prompt (truncated by the tokenizer)."""
        prompt = self.prompts[input_type]
        encodings = self.tokenizer.encode_batch([prompt + text for text in texts])
        return [encoding.ids for encoding in encodings]

    def feed(self, batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """The graph inputs for one right-padded batch of token ids."""
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        feed = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        return {name: feed[name] for name in self.inputs}

    def run(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Run one right-padded batch of token ids through the graph.

        Returns:
            Embeddings of shape ``(len(batch), dimension)`` (float64 for a float64 encoder).
        """
        (embeddings,) = self.session.run(["sentence_embedding"], self.feed(batch))
        return np.asarray(embeddings, dtype=self.dtype)

    def encode(
        self,
        texts: Sequence[str],
        input_type: str = "document",
        batch_size: int = 32,
        progress: bool = True,
    ) -> np.ndarray:
        """Embed texts, batching texts of similar length together.

        Args:
            texts: The texts (without prompt).
            input_type: ``document`` or ``query``: which prompt to prepend.
            batch_size: Texts per onnxruntime call.
            progress: Show a tqdm bar.

        Returns:
            Embeddings of shape ``(len(texts), dimension)``, in input order (float32, or
            float64 for a float64 encoder).
        """
        token_ids = self.tokenize(texts, input_type)
        # Longest first: the slowest batches run while the bar's estimate is still honest, and
        # similar lengths waste little work on padding.
        order = sorted(range(len(texts)), key=lambda i: -len(token_ids[i]))
        result: np.ndarray | None = None
        with tqdm(total=len(texts), desc="embedding", unit="text", disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                embeddings = self.run([token_ids[i] for i in chunk])
                if result is None:
                    result = np.zeros((len(texts), embeddings.shape[1]), dtype=self.dtype)
                result[chunk] = embeddings
                bar.update(len(chunk))
        if result is None:
            raise ValueError("no texts to embed")
        return result
