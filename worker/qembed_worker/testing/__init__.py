"""What the service's tests load.

The tiny fixture bundle, golden quantization vectors, reference embeddings.
"""
