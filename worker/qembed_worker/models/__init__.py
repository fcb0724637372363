"""The sentence-transformers models that bundles are made from.

Finding, verifying and loading them.
"""
