"""Quantization-aware training of the embeddings.

Losses, the trained head, the training run and its report.
"""
