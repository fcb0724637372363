"""Query-like crops of a corpus: short random runs of words that stand in for queries.

Label-free pseudo-queries in the spirit of Contriever's random cropping: a corpus alone holds no
short queries, so short spans of its texts play their part in self-distillation. Head QAT
(``train --crop-queries``) and weight QAT (``weight-qat --spans-per-text``) both cut them with
:func:`word_crops`; each passes the draw it recorded its bundles with (:func:`numpy_draw`,
:func:`python_draw`), so the same seed gives the same crops, and so the same bundle, as before
the two trainers shared this code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

Draw = Callable[[int, int], int]
"""``draw(low, high)``: a random integer in ``[low, high]`` (both included)."""


def numpy_draw(seed: int) -> Draw:
    """Integers from numpy's generator seeded with ``[seed, 104729]`` (head QAT's crops)."""
    rng = np.random.default_rng([seed, 104729])
    return lambda low, high: int(rng.integers(low, high + 1))


def python_draw(seed: int) -> Draw:
    """Integers from Python's ``random.Random(seed)`` (weight QAT's spans)."""
    return random.Random(seed).randint


def word_crops(
    texts: Sequence[str],
    draw: Draw,
    *,
    min_words: int,
    max_words: int,
    per_text: int = 1,
    fit_to_text: bool = False,
) -> list[str]:
    """``per_text`` crops of each text, in order: runs of ``min_words``..``max_words`` words.

    Args:
        texts: The corpus.
        draw: The random integers (see :func:`numpy_draw`, :func:`python_draw`).
        min_words: Shortest crop.
        max_words: Longest crop.
        per_text: Crops cut from each text.
        fit_to_text: How a text shorter than a crop is treated. ``False``: draw the length
            first and keep a text of at most that many words whole. ``True``: keep a text of at
            most ``min_words`` words whole, and draw the length of the others up to their own
            length.

    Returns:
        ``len(texts) * per_text`` crops, the crops of each text together.
    """
    crops = []
    for text in texts:
        words = text.split()
        for _ in range(per_text):
            if fit_to_text:
                if len(words) <= min_words:
                    crops.append(text)
                    continue
                length = draw(min_words, min(max_words, len(words)))
            else:
                length = draw(min_words, max_words)
                if len(words) <= length:
                    crops.append(text)
                    continue
            start = draw(0, len(words) - length)
            crops.append(" ".join(words[start : start + length]))
    return crops
