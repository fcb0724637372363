"""Calibration corpora: the built-in Lee news corpus and user-supplied text files."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from qembed_worker.cache import cache_dir
from qembed_worker.data.datasets import json_lines, lines_of

LEE = "lee"
LEE_GENSIM_VERSION = "4.4.0"
LEE_MEMBER = "gensim/test/test_data/lee_background.cor"
LEE_SHA256 = "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb"
LEE_ARTICLES = 300

PASSAGE_MIN_WORDS = 40
PASSAGE_MAX_WORDS = 100
PASSAGE_MAX_SENTENCES = 3
LEFTOVER_MIN_WORDS = 20

# Words that end in a period without ending a sentence ("Mr. Howard", "Mt. Kosciuszko").
_ABBREVIATION_WORDS = (
    "mr mrs ms dr st mt gen lt col sgt capt cpl gov sen rep prof jr sr no vs etc inc co corp ltd "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by white space and an
# upper-case letter, a digit, or an opening quote/bracket.
_BOUNDARY = re.compile(r"[.!?][\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")


class CorpusError(Exception):
    """A calibration corpus cannot be read or does not match its pinned hash."""


@dataclass(frozen=True)
class Corpus:
    """Texts to calibrate on, with what the manifest records about them.

    Attributes:
        name: ``lee`` or the corpus file's name.
        sha256: SHA-256 hex of the source file's bytes (the ``.cor`` file for ``lee``).
        texts: The texts, in corpus order.
    """

    name: str
    sha256: str
    texts: list[str]


def default_cache_dir() -> Path:
    """Return where downloaded corpora are kept (``QEMBED_CORPUS_CACHE`` overrides)."""
    return cache_dir("corpora", "QEMBED_CORPUS_CACHE")


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences with a fixed, dependency-free rule.

    Args:
        text: One article.

    Returns:
        The sentences, stripped, in order.
    """
    sentences = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        words = text[start:end].split()
        last = words[-1].rstrip("\"')]").rstrip(".!?").lower() if words else ""
        # "Mr." or a single initial ("J. Smith") does not end a sentence.
        if text[match.start()] == "." and (last in _ABBREVIATIONS or len(last) == 1):
            continue
        sentences.append(text[start:end].strip())
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)


def split_passages(article: str) -> list[str]:
    """Cut an article into passages of one to three sentences, about 40 to 100 words.

    Sentences are added to a passage until it holds ``PASSAGE_MIN_WORDS`` words or
    ``PASSAGE_MAX_SENTENCES`` sentences; a sentence that would push it past
    ``PASSAGE_MAX_WORDS`` starts a new passage instead. A short remainder (under
    ``LEFTOVER_MIN_WORDS`` words) is appended to the article's previous passage.

    Args:
        article: The text of one article.

    Returns:
        The passages, in order.
    """
    passages: list[str] = []
    current: list[str] = []
    for sentence in split_sentences(article):
        if current and _words(current) + len(sentence.split()) > PASSAGE_MAX_WORDS:
            passages.append(" ".join(current))
            current = []
        current.append(sentence)
        if _words(current) >= PASSAGE_MIN_WORDS or len(current) >= PASSAGE_MAX_SENTENCES:
            passages.append(" ".join(current))
            current = []
    if current:
        if passages and _words(current) < LEFTOVER_MIN_WORDS:
            passages[-1] = passages[-1] + " " + " ".join(current)
        else:
            passages.append(" ".join(current))
    return passages


def _gensim_wheel(cache_dir: Path) -> Path:
    wheels = sorted(cache_dir.glob(f"gensim-{LEE_GENSIM_VERSION}-*.whl"))
    if wheels:
        return wheels[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"gensim=={LEE_GENSIM_VERSION}",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--quiet",
        "-d",
        str(cache_dir),
    ]
    print(
        f"corpus: downloading gensim {LEE_GENSIM_VERSION} wheel into {cache_dir}", file=sys.stderr
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(cache_dir.glob(f"gensim-{LEE_GENSIM_VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise CorpusError(
            f"could not download the gensim {LEE_GENSIM_VERSION} wheel that carries the Lee "
            f"corpus (pip exit {result.returncode}): {result.stderr.strip()[-500:]}\n"
            f"Put the wheel in {cache_dir} by hand, or pass --corpus PATH."
        )
    return wheels[0]


def lee_bytes(cache_dir: Path | None = None) -> bytes:
    """Return the bytes of ``lee_background.cor``, verified against its pinned SHA-256.

    Args:
        cache_dir: Where the gensim wheel is cached (see :func:`default_cache_dir`).

    Raises:
        CorpusError: The wheel cannot be obtained or the file's hash differs.
    """
    wheel = _gensim_wheel(cache_dir or default_cache_dir())
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(LEE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise CorpusError(f"{wheel} does not hold {LEE_MEMBER}: {error}") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != LEE_SHA256:
        raise CorpusError(
            f"{LEE_MEMBER} in {wheel.name} has sha256 {digest}, expected {LEE_SHA256}"
        )
    return data


def lee_passages(cache_dir: Path | None = None) -> Corpus:
    """Return the Lee background corpus (300 ABC news articles) split into passages."""
    data = lee_bytes(cache_dir)
    articles = [line for line in data.decode("utf-8").splitlines() if line.strip()]
    if len(articles) != LEE_ARTICLES:
        raise CorpusError(f"expected {LEE_ARTICLES} articles, found {len(articles)}")
    passages = [p for article in articles for p in split_passages(article)]
    return Corpus(name=LEE, sha256=LEE_SHA256, texts=passages)


def _jsonl_text(record: object, path: Path, line_number: int) -> str:
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise CorpusError(f"{path}:{line_number}: expected an object with a string 'text'")
    title = record.get("title")
    if isinstance(title, str) and title.strip():
        return f"{title} {record['text']}"
    return record["text"]


def file_corpus(path: Path) -> Corpus:
    """Read a corpus file: BEIR ``corpus.jsonl``, any JSON-lines file with ``text``, or ``.txt``.

    JSON lines use ``title + " " + text`` when ``title`` is a non-empty string, else ``text``.
    A ``.txt`` file holds one text per line; blank lines are skipped.

    Args:
        path: The corpus file.

    Raises:
        CorpusError: The file is missing or malformed.
    """
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist")
    data = path.read_bytes()
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        records = json_lines(path, data, CorpusError)
        texts = [_jsonl_text(record, path, number) for number, record in records]
    else:
        texts = [line for line in lines_of(data, path, CorpusError) if line.strip()]
    return Corpus(name=path.name, sha256=hashlib.sha256(data).hexdigest(), texts=texts)


def load_corpus(spec: str, *, limit: int | None = None, cache_dir: Path | None = None) -> Corpus:
    """Load a calibration corpus by name (``lee``) or path, keeping the first ``limit`` texts.

    Args:
        spec: ``lee`` or a path to a ``.jsonl`` / ``.txt`` file.
        limit: Keep only the first ``limit`` texts (all when ``None``).
        cache_dir: Download cache for ``lee``.

    Returns:
        The corpus; its ``sha256`` names the whole source file even when ``limit`` cuts it.

    Raises:
        CorpusError: The corpus is empty or unreadable.
    """
    corpus = lee_passages(cache_dir) if spec == LEE else file_corpus(Path(spec))
    texts = corpus.texts if limit is None else corpus.texts[:limit]
    if not texts:
        raise CorpusError(f"corpus {spec!r} holds no texts")
    return Corpus(name=corpus.name, sha256=corpus.sha256, texts=texts)
