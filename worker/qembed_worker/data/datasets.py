"""Training and evaluation inputs: BEIR folders, JSON-lines pairs and plain text corpora.

Every loader validates the whole input before returning and raises :class:`DatasetError` with
the file and line number of the first problem, so that a bad input stops a command before any
model is loaded or any training starts.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"


class DatasetError(Exception):
    """A dataset file is missing or malformed."""


def document_text(title: str | None, text: str) -> str:
    """Return the text embedded for a document: ``text``, or ``title.strip() + " " + text``.

    The title is used only when it is a non-empty string after stripping white space, and is
    used stripped: exactly the service's ``documentText`` (src/datasets/beir.ts), so that the
    worker trains and evaluates on the strings the service ingests.
    """
    if isinstance(title, str) and title.strip():
        return f"{title.strip()} {text}"
    return text


def sha256_bytes(data: bytes) -> str:
    """Return the lowercase SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise DatasetError(f"{what} {path} does not exist")
    return path.read_bytes()


def lines_of(data: bytes, path: Path, error: type[Exception] = DatasetError) -> list[str]:
    """Decode UTF-8 and split on line feeds only (dropping a carriage return before one).

    ``str.splitlines`` would also split on U+0085, U+2028 and friends, which occur inside the
    JSON strings of real corpora (msmarco-5k has U+0085) and would cut records in half.

    Raises:
        error: The data is not UTF-8 (a DatasetError unless the caller names its own).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{path} is not UTF-8: {problem}") from problem
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def json_lines(
    path: Path, data: bytes, error: type[Exception] = DatasetError
) -> list[tuple[int, dict[str, Any]]]:
    """Parse JSON lines into ``(line number, object)``, skipping blank lines.

    Raises:
        error: A line is not JSON, or not an object (a DatasetError unless the caller names
            its own).
    """
    records = []
    for number, line in enumerate(lines_of(data, path, error), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as problem:
            raise error(f"{path}:{number}: not valid JSON: {problem.msg}") from problem
        if not isinstance(record, dict):
            raise error(f"{path}:{number}: expected a JSON object")
        records.append((number, record))
    return records


def _string_field(record: dict[str, Any], key: str, path: Path, number: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise DatasetError(f"{path}:{number}: '{key}' must be a string")
    return value


def _id_field(record: dict[str, Any], path: Path, number: int) -> str:
    value = record.get("_id")
    # BEIR ids are strings, but some collections write numbers; both name the same document.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{path}:{number}: '_id' must be a non-empty string")
    return value


@dataclass
class Texts:
    """Ids and texts read from a BEIR ``corpus.jsonl`` or ``queries.jsonl``.

    Attributes:
        ids: Ids in file order.
        texts: Texts in file order (documents: ``title + " " + text`` when titled).
        sha256: SHA-256 hex of the file.
    """

    ids: list[str]
    texts: list[str]
    sha256: str


def read_beir_texts(path: Path, *, documents: bool) -> Texts:
    """Read a BEIR corpus or queries file.

    Args:
        path: ``corpus.jsonl`` or ``queries.jsonl``.
        documents: Whether records are documents (``title`` is joined to ``text``).

    Raises:
        DatasetError: Missing file, malformed line, duplicate id or no records.
    """
    data = _read(path, "corpus file" if documents else "queries file")
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, record in json_lines(path, data):
        identifier = _id_field(record, path, number)
        text = _string_field(record, "text", path, number)
        title = record.get("title")
        if documents and title is not None and not isinstance(title, str):
            raise DatasetError(f"{path}:{number}: 'title' must be a string when present")
        if identifier in seen:
            raise DatasetError(
                f"{path}:{number}: duplicate _id {identifier!r} (first on line {seen[identifier]})"
            )
        seen[identifier] = number
        ids.append(identifier)
        texts.append(document_text(title, text) if documents else text)
    if not ids:
        raise DatasetError(f"{path} holds no records")
    return Texts(ids=ids, texts=texts, sha256=sha256_bytes(data))


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], str]:
    """Read a BEIR qrels file, with or without the ``query-id corpus-id score`` header.

    Lines are ``query-id<TAB>corpus-id<TAB>score`` with an integer score; a first line whose
    score is not an integer is taken as the header. A repeated (query, document) pair keeps the
    last score.

    Returns:
        ``({query id: {document id: score}}, sha256 of the file)``.

    Raises:
        DatasetError: Missing file, malformed line, or no judgments.
    """
    data = _read(path, "qrels file")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(lines_of(data, path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) != 3 or not all(fields):
            raise DatasetError(
                f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}"
            )
        try:
            score = int(fields[2])
        except ValueError:
            if number == 1 and not qrels:
                continue  # the header line
            raise DatasetError(f"{path}:{number}: score {fields[2]!r} is not an integer") from None
        qrels.setdefault(fields[0], {})[fields[1]] = score
    if not qrels:
        raise DatasetError(f"{path} holds no judgments")
    return qrels, sha256_bytes(data)


@dataclass
class BeirDataset:
    """A BEIR folder: corpus, and (when present and asked for) queries and judgments.

    Attributes:
        name: The folder's name.
        path: The folder.
        corpus: The documents.
        queries: The queries (``None`` when not loaded).
        qrels: Judgments restricted to known queries (``None`` when not loaded); documents
            absent from the corpus are kept: they count as unretrievable relevant documents.
        hashes: SHA-256 of every file read, by path relative to the folder.
        warnings: What was tolerated (judgments naming unknown documents or queries).
    """

    name: str
    path: Path
    corpus: Texts
    queries: Texts | None = None
    qrels: dict[str, dict[str, int]] | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def load_beir(folder: Path, *, queries: bool = True, split: str = "test") -> BeirDataset:
    """Load and validate a BEIR-format folder.

    Args:
        folder: Holds ``corpus.jsonl`` and, when ``queries`` is set, ``queries.jsonl`` and
            ``qrels/<split>.tsv``.
        queries: Also load queries and judgments (both must then exist).
        split: The qrels split file name without ``.tsv``.

    Returns:
        The dataset.

    Raises:
        DatasetError: A file is missing or malformed.
    """
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    corpus = read_beir_texts(folder / CORPUS_FILE, documents=True)
    dataset = BeirDataset(
        name=folder.resolve().name,
        path=folder,
        corpus=corpus,
        hashes={CORPUS_FILE: corpus.sha256},
    )
    if not queries:
        return dataset
    query_texts = read_beir_texts(folder / QUERIES_FILE, documents=False)
    qrels_path = folder / QRELS_DIR / f"{split}.tsv"
    qrels, qrels_sha = read_qrels(qrels_path)
    dataset.queries = query_texts
    dataset.hashes[QUERIES_FILE] = query_texts.sha256
    dataset.hashes[f"{QRELS_DIR}/{split}.tsv"] = qrels_sha
    known_queries = set(query_texts.ids)
    known_docs = set(corpus.ids)
    unknown_queries = sorted(set(qrels) - known_queries)
    if unknown_queries:
        dataset.warnings.append(
            f"{qrels_path}: {len(unknown_queries)} judged query id(s) not in {QUERIES_FILE} "
            f"are ignored (first: {unknown_queries[0]!r})"
        )
    dataset.qrels = {q: docs for q, docs in qrels.items() if q in known_queries}
    if not dataset.qrels:
        raise DatasetError(f"{qrels_path}: no judgment names a query of {QUERIES_FILE}")
    missing = sorted({d for docs in dataset.qrels.values() for d in docs if d not in known_docs})
    if missing:
        dataset.warnings.append(
            f"{qrels_path}: {len(missing)} judged document id(s) are not in {CORPUS_FILE}; "
            f"they count as relevant documents that cannot be retrieved (first: {missing[0]!r})"
        )
    return dataset


def has_judgments(folder: Path, split: str = "test") -> bool:
    """Whether a BEIR folder has both ``queries.jsonl`` and ``qrels/<split>.tsv``."""
    return (folder / QUERIES_FILE).is_file() and (folder / QRELS_DIR / f"{split}.tsv").is_file()


@dataclass
class Pair:
    """One training example: a query, a relevant text and an optional hard negative."""

    query: str
    positive: str
    negative: str | None = None


@dataclass
class TrainingData:
    """What a training run reads, validated.

    Attributes:
        kind: ``pairs`` (queries with positives) or ``texts`` (a corpus, for self-distillation).
        source: The path given on the command line.
        pairs: The pairs, for ``pairs``.
        texts: The corpus texts, for ``texts``.
        hashes: SHA-256 of every file read.
        warnings: What was tolerated.
    """

    kind: str
    source: Path
    pairs: list[Pair] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def digest(self) -> str:
        """One SHA-256 over the kind and the file hashes: names the data in caches."""
        text = json.dumps({"kind": self.kind, "hashes": self.hashes}, sort_keys=True)
        return sha256_bytes(text.encode("utf-8"))


def read_pairs_jsonl(path: Path) -> tuple[list[Pair], str]:
    """Read JSON lines ``{"query": str, "positive": str, "negative": str?}``.

    Raises:
        DatasetError: Missing file, malformed line, empty strings or no pairs.
    """
    data = _read(path, "pairs file")
    pairs = []
    for number, record in json_lines(path, data):
        query = _string_field(record, "query", path, number)
        positive = _string_field(record, "positive", path, number)
        negative = record.get("negative")
        if negative is not None and not isinstance(negative, str):
            raise DatasetError(f"{path}:{number}: 'negative' must be a string when present")
        if not query.strip() or not positive.strip():
            raise DatasetError(f"{path}:{number}: 'query' and 'positive' must not be empty")
        pairs.append(Pair(query, positive, negative))
    if not pairs:
        raise DatasetError(f"{path} holds no pairs")
    return pairs, sha256_bytes(data)


def read_text_lines(path: Path) -> tuple[list[str], str]:
    """Read a corpus file for self-distillation: JSON lines with ``text`` or a ``.txt`` file.

    Raises:
        DatasetError: Missing file, malformed line or no texts.
    """
    data = _read(path, "corpus file")
    if path.suffix == ".txt":
        texts = [line for line in lines_of(data, path) if line.strip()]
    else:
        texts = []
        for number, record in json_lines(path, data):
            text = _string_field(record, "text", path, number)
            title = record.get("title")
            if title is not None and not isinstance(title, str):
                raise DatasetError(f"{path}:{number}: 'title' must be a string when present")
            texts.append(document_text(title, text))
    if not texts:
        raise DatasetError(f"{path} holds no texts")
    return texts, sha256_bytes(data)


def _first_record_keys(path: Path) -> set[str]:
    data = _read(path, "data file")
    for _, record in json_lines(path, data):
        return set(record)
    raise DatasetError(f"{path} holds no records")


def beir_pairs(dataset: BeirDataset) -> tuple[list[Pair], list[str]]:
    """Turn judged queries into (query, relevant document) pairs.

    Every judgment with a positive score whose document is in the corpus gives one pair, in
    qrels order; judgments of documents absent from the corpus are skipped.

    Returns:
        The pairs and warnings about what was skipped.
    """
    assert dataset.queries is not None and dataset.qrels is not None
    query_text = dict(zip(dataset.queries.ids, dataset.queries.texts, strict=True))
    doc_text = dict(zip(dataset.corpus.ids, dataset.corpus.texts, strict=True))
    pairs = []
    skipped = 0
    for query_id, docs in dataset.qrels.items():
        for doc_id, score in docs.items():
            if score <= 0:
                continue
            if doc_id not in doc_text:
                skipped += 1
                continue
            pairs.append(Pair(query_text[query_id], doc_text[doc_id]))
    warnings = [f"{skipped} judgment(s) name documents absent from the corpus"] if skipped else []
    return pairs, warnings


def load_training_data(source: Path, *, loss: str, split: str = "test") -> TrainingData:
    """Load what ``train`` reads, choosing pairs or texts from the input and the loss.

    Args:
        source: A BEIR folder, a ``.jsonl`` of pairs (``query``/``positive``/``negative``) or
            of texts (``text``, optional ``title``), or a ``.txt`` with one text per line.
        loss: ``mnrl`` (needs pairs), ``distill`` (needs texts; a BEIR folder's corpus alone is
            read) or ``auto`` (pairs when the input has them, else distillation).
        split: The qrels split of a BEIR folder.

    Returns:
        The validated data; ``kind`` says which loss it feeds.

    Raises:
        DatasetError: Missing files, malformed lines, or an input that cannot feed the loss.
    """
    if source.is_dir():
        if loss == "distill" or (loss == "auto" and not has_judgments(source, split)):
            dataset = load_beir(source, queries=False)
            return TrainingData(
                kind="texts",
                source=source,
                texts=dataset.corpus.texts,
                hashes=dict(dataset.hashes),
            )
        if not has_judgments(source, split):
            missing = [
                str(p)
                for p in (source / QUERIES_FILE, source / QRELS_DIR / f"{split}.tsv")
                if not p.is_file()
            ]
            raise DatasetError(
                f"--loss mnrl needs queries and judgments, but {', '.join(missing)} "
                "does not exist (use --loss distill to train on the corpus alone)"
            )
        dataset = load_beir(source, queries=True, split=split)
        pairs, warnings = beir_pairs(dataset)
        if not pairs:
            raise DatasetError(f"{source}: no judgment with a positive score names a document")
        return TrainingData(
            kind="pairs",
            source=source,
            pairs=pairs,
            hashes=dict(dataset.hashes),
            warnings=dataset.warnings + warnings,
        )
    if not source.exists():
        raise DatasetError(f"training data {source} does not exist")
    if source.suffix == ".txt":
        if loss == "mnrl":
            raise DatasetError(f"--loss mnrl needs pairs; {source} is a plain text corpus")
        texts, digest = read_text_lines(source)
        return TrainingData(kind="texts", source=source, texts=texts, hashes={source.name: digest})
    keys = _first_record_keys(source)
    is_pairs = {"query", "positive"} <= keys
    if loss == "mnrl" or (loss == "auto" and is_pairs):
        if not is_pairs:
            raise DatasetError(f"{source}:1: --loss mnrl needs objects with 'query' and 'positive'")
        pairs, digest = read_pairs_jsonl(source)
        return TrainingData(kind="pairs", source=source, pairs=pairs, hashes={source.name: digest})
    if is_pairs:
        # Self-distillation on a pairs file: every distinct text is a training text.
        pairs, digest = read_pairs_jsonl(source)
        texts = list(
            dict.fromkeys(t for p in pairs for t in (p.query, p.positive, p.negative) if t)
        )
        return TrainingData(kind="texts", source=source, texts=texts, hashes={source.name: digest})
    texts, digest = read_text_lines(source)
    return TrainingData(kind="texts", source=source, texts=texts, hashes={source.name: digest})


def warn(messages: list[str]) -> None:
    """Print tolerated problems on stderr."""
    for message in messages:
        print(f"qembed-worker: warning: {message}", file=sys.stderr)
