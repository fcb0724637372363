import json
from pathlib import Path

import pytest

from qembed_worker.data.datasets import (
    DatasetError,
    document_text,
    load_beir,
    load_training_data,
    read_qrels,
)

from .conftest import TINY_BUNDLE


def write_beir(
    folder: Path,
    *,
    header: bool,
    corpus: list[dict] | None = None,
    queries: list[dict] | None = None,
    qrels: list[tuple[str, str, int]] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    corpus = corpus or [
        {"_id": "d1", "title": "", "text": "alpha"},
        {"_id": "d2", "title": "Beta", "text": "beta text"},
        {"_id": "d3", "title": "", "text": "gamma"},
    ]
    queries = queries or [{"_id": "q1", "text": "alpha?"}, {"_id": "q2", "text": "beta?"}]
    qrels = qrels or [("q1", "d1", 2), ("q2", "d2", 1)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), "utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), "utf-8")
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] if header else []
    lines += [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


@pytest.mark.parametrize("header", [True, False])
def test_both_qrels_styles_load_the_same_judgments(tmp_path: Path, header: bool) -> None:
    dataset = load_beir(write_beir(tmp_path / "d", header=header))
    assert dataset.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1}}
    assert dataset.corpus.ids == ["d1", "d2", "d3"]
    assert set(dataset.hashes) == {"corpus.jsonl", "queries.jsonl", "qrels/test.tsv"}


def test_documents_join_a_non_empty_title_with_a_space(tmp_path: Path) -> None:
    dataset = load_beir(write_beir(tmp_path / "d", header=False))
    assert dataset.corpus.texts == ["alpha", "Beta beta text", "gamma"]
    assert document_text("  ", "x") == "x"
    assert document_text(None, "x") == "x"


def test_document_text_is_the_services_on_the_shared_cases() -> None:
    # test/fixtures/document-text-cases.json is checked by test/unit/beir.test.ts too.
    cases = json.loads((TINY_BUNDLE.parents[0] / "document-text-cases.json").read_text("utf-8"))
    for case in cases:
        assert document_text(case["title"], case["text"]) == case["expected"], case


def test_a_judged_document_missing_from_the_corpus_is_kept_and_reported(tmp_path: Path) -> None:
    folder = write_beir(
        tmp_path / "d", header=True, qrels=[("q1", "d1", 1), ("q1", "gone", 1), ("q2", "d2", 1)]
    )
    dataset = load_beir(folder)
    assert dataset.qrels is not None
    assert dataset.qrels["q1"] == {"d1": 1, "gone": 1}
    assert any("cannot be retrieved" in w for w in dataset.warnings)


def test_line_breaks_inside_json_strings_do_not_split_records(tmp_path: Path) -> None:
    # U+0085 (NEL) and U+2028 are line breaks for str.splitlines but not for JSON lines.
    corpus = [{"_id": "d1", "title": "", "text": "a\u0085b\u2028c"}, {"_id": "d2", "text": "x"}]
    dataset = load_beir(write_beir(tmp_path / "d", header=False, corpus=corpus), queries=False)
    assert dataset.corpus.texts == ["a\u0085b\u2028c", "x"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": "d9", "text": "x"', "corpus.jsonl:3: not valid JSON"),
        ('{"_id": "d9"}', "corpus.jsonl:3: 'text' must be a string"),
        ('{"_id": "", "text": "x"}', "corpus.jsonl:3: '_id' must be a non-empty string"),
        ('{"_id": "d1", "text": "x"}', "corpus.jsonl:3: duplicate _id 'd1' (first on line 1)"),
        ("[1, 2]", "corpus.jsonl:3: expected a JSON object"),
    ],
)
def test_malformed_corpus_lines_are_named_with_their_line(
    tmp_path: Path, line: str, message: str
) -> None:
    folder = write_beir(tmp_path / "d", header=False)
    good = (folder / "corpus.jsonl").read_text("utf-8").splitlines()[:2]
    (folder / "corpus.jsonl").write_text("\n".join([*good, line]) + "\n", "utf-8")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_beir(folder)


def test_malformed_qrels_lines_are_named_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n", "utf-8")
    with pytest.raises(DatasetError, match=r"qrels.tsv:3: expected"):
        read_qrels(path)
    path.write_text("q1\td1\t1\nq1\td2\thigh\n", "utf-8")
    with pytest.raises(DatasetError, match=r"qrels.tsv:2: score 'high' is not an integer"):
        read_qrels(path)


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_files_are_named(tmp_path: Path, missing: str) -> None:
    folder = write_beir(tmp_path / "d", header=False)
    (folder / missing).unlink()
    with pytest.raises(DatasetError, match=missing.split("/")[-1]):
        load_beir(folder)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_beir(tmp_path / "nowhere")


def test_training_data_from_beir_folders(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "d", header=True)
    pairs = load_training_data(folder, loss="auto")
    assert pairs.kind == "pairs"
    assert [(p.query, p.positive) for p in pairs.pairs] == [
        ("alpha?", "alpha"),
        ("beta?", "Beta beta text"),
    ]
    texts = load_training_data(folder, loss="distill")
    assert texts.kind == "texts"
    assert texts.texts == ["alpha", "Beta beta text", "gamma"]
    assert set(texts.hashes) == {"corpus.jsonl"}  # the corpus alone is read
    (folder / "queries.jsonl").unlink()
    assert load_training_data(folder, loss="auto").kind == "texts"
    with pytest.raises(DatasetError, match="--loss mnrl needs queries and judgments"):
        load_training_data(folder, loss="mnrl")


def test_training_data_from_jsonl_files(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"query": "q", "positive": "p"}\n{"query": "q2", "positive": "p2", "negative": "n"}\n',
        "utf-8",
    )
    data = load_training_data(pairs, loss="auto")
    assert data.kind == "pairs"
    assert data.pairs[1].negative == "n"
    assert load_training_data(pairs, loss="distill").texts == ["q", "p", "q2", "p2", "n"]
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "one"}\n{"title": "T", "text": "two"}\n', "utf-8")
    assert load_training_data(texts, loss="auto").texts == ["one", "T two"]
    with pytest.raises(DatasetError, match="needs objects with 'query' and 'positive'"):
        load_training_data(texts, loss="mnrl")


def test_malformed_pairs_are_named_with_their_line(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "q", "positive": "p"}\n\n{"query": "q", "positive": 3}\n', "utf-8")
    with pytest.raises(DatasetError, match=r"pairs.jsonl:3: 'positive' must be a string"):
        load_training_data(pairs, loss="mnrl")
    with pytest.raises(DatasetError, match="does not exist"):
        load_training_data(tmp_path / "none.jsonl", loss="auto")
