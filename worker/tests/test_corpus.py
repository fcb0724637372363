import hashlib
import json
from pathlib import Path

import pytest

from qembed_worker.data.corpus import (
    LEE_SHA256,
    CorpusError,
    file_corpus,
    lee_passages,
    load_corpus,
    split_passages,
    split_sentences,
)


def test_sentences_split_on_end_marks_but_not_abbreviations() -> None:
    text = 'Mr. Howard met Dr. J. Smith in the U.S. today. "It went well," he said. Then? Rain!'
    assert split_sentences(text) == [
        "Mr. Howard met Dr. J. Smith in the U.S. today.",
        '"It went well," he said.',
        "Then?",
        "Rain!",
    ]


def test_passages_hold_one_to_three_sentences_of_bounded_length() -> None:
    article = " ".join(f"Sentence number {i} has exactly seven words." for i in range(20))
    passages = split_passages(article)
    assert all(len(p.split()) <= 100 for p in passages)
    # At most three sentences, except that the last passage absorbs a short remainder.
    assert all(1 <= len(split_sentences(p)) <= 3 for p in passages[:-1])
    assert " ".join(passages) == article


def test_lee_corpus_is_verified_and_split_deterministically() -> None:
    corpus = lee_passages()
    assert corpus.name == "lee"
    assert corpus.sha256 == LEE_SHA256
    assert len(corpus.texts) == 1179
    digest = hashlib.sha256("\n".join(corpus.texts).encode("utf-8")).hexdigest()
    assert digest == "44f4c01d984ddf08931b187f23fb2995b4fb0ff577654d30898359546c1ffa3e"
    words = [len(t.split()) for t in corpus.texts]
    assert min(words) >= 20
    assert max(words) <= 100
    assert 40 <= sum(words) / len(words) <= 70


def test_beir_corpus_joins_title_and_text(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": "1", "title": "Canberra", "text": "Capital of Australia."},
        {"_id": "2", "title": "", "text": "No title here."},
        {"_id": "3", "text": "Title missing."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    corpus = file_corpus(path)
    assert corpus.texts == ["Canberra Capital of Australia.", "No title here.", "Title missing."]
    assert corpus.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_corpus(str(path), limit=2).texts == corpus.texts[:2]


def test_text_corpus_has_one_text_per_non_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("first\n\n  \nsecond line\n", encoding="utf-8")
    assert file_corpus(path).texts == ["first", "second line"]


def test_bad_corpora_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "x"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="'text'"):
        load_corpus(str(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no texts"):
        load_corpus(str(empty))
