"""Int8 weights for a faster CPU encoder.

The graph rewrite, post-training quantization, weight QAT and their report.
"""
