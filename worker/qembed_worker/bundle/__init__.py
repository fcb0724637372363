"""Model bundles on disk.

The manifest, its fingerprint and checks, and the one step that publishes a bundle folder.
"""
