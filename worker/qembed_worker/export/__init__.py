"""From a sentence-transformers model to a bundle.

The ONNX graph, its fused kernels, the tokenizer.
"""
