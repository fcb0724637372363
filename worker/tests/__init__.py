"""Tests of the qembed worker."""
