"""Code transforms fitted on a collection's own documents (issue 24, the worker's side).

A transform turns a document vector ``x`` into a ``b``-bit first-stage code
``bit j = W_b[j] . (x - mean) > 0``. :mod:`.itq` fits the post-training baseline (PCA + ITQ),
:mod:`.qat` trains the quantization-aware transform from it, :mod:`.evaluate` measures both
against today's code (the signs of the first ``b`` dimensions), :mod:`.artifact` writes and reads
the ``qembed.transform/v1`` folder the service loads, :mod:`.fit` runs the whole fit and
:mod:`.job` runs it for a fit job of the API's queue.
"""


class TransformError(Exception):
    """Inputs a fit cannot use, or a transform folder that breaks the artifact contract."""
