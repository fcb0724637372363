"""Running a bundle's graph on texts.

The onnxruntime encoder, the float64 evaluator, cached corpus embeddings.
"""
