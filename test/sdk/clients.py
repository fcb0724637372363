"""The official OpenAI and Cohere Python SDKs (and LangChain's OpenAIEmbeddings) against qembed.

Run by test/integration/sdk-clients.test.ts with QEMBED_URL (a running service) and QEMBED_MODEL
(the served model's name; the service's models folder holds other bundles, not served). Each check compares the SDK's vectors with what POST /encode returns
for the same texts: float32 by cosine >= 0.99999 (the same float32 values, decoded from base64
or read from JSON; anything looser would be another vector), int8/uint8/binary/ubinary exactly.
Prints one line per check; exits non-zero at the first failure.
"""

import json
import math
import os
import sys
import urllib.request

import cohere
import openai
from langchain_openai import OpenAIEmbeddings

URL = os.environ["QEMBED_URL"]
MODEL = os.environ["QEMBED_MODEL"]
TEXTS = [f"text number {i} about {['rivers', 'cities', 'music'][i % 3]}" for i in range(12)]


def encode(texts, **extra):
    body = json.dumps({"inputs": texts, **extra}).encode()
    request = urllib.request.Request(
        f"{URL}/encode", body, {"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["embeddings"]


def encode_all(texts, **extra):
    """/encode in requests of 8 texts (QEMBED_MAX_INPUTS in the test service)."""
    return [v for i in range(0, len(texts), 8) for v in encode(texts[i : i + 8], **extra)]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def same_floats(got, expected, what):
    assert len(got) == len(expected), f"{what}: {len(got)} vectors, expected {len(expected)}"
    worst = min(cosine(g, e) for g, e in zip(got, expected, strict=True))
    assert worst >= 0.99999, f"{what}: cosine {worst}"
    print(f"ok {what} (min cosine {worst:.7f})")


def check_openai():
    client = openai.OpenAI(base_url=f"{URL}/v1", api_key="unused", max_retries=0)
    expected = encode_all(TEXTS)
    default = client.embeddings.create(model=MODEL, input=TEXTS)  # base64 on the wire
    same_floats([d.embedding for d in default.data], expected, "openai python, default (base64)")
    floats = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    same_floats([d.embedding for d in floats.data], expected, "openai python, float")
    assert floats.usage.prompt_tokens > 0 and floats.model == MODEL
    short = client.embeddings.create(model=MODEL, input=TEXTS[:3], dimensions=16)
    same_floats([d.embedding for d in short.data], encode(TEXTS[:3], dimensions=16), "dimensions 16")
    codes = client.embeddings.create(
        model=MODEL, input=TEXTS[:4], extra_body={"precision": "binary", "input_type": "query"}
    )
    assert [d.embedding for d in codes.data] == encode(TEXTS[:4], precision="binary", input_type="query")
    print("ok openai python, binary codes byte-identical")
    try:
        client.embeddings.create(model="text-embedding-3-small", input="x")
        raise AssertionError("another model was accepted")
    except openai.NotFoundError as error:
        assert error.code == "QEMBED_MODEL_NOT_FOUND", error
    print("ok openai python, 404 for another model")
    # The usual way a client finds the model: the first one listed. Only the served model is
    # listed (the test service's models folder holds others), and it embeds.
    listed = [m.id for m in client.models.list().data]
    assert listed == [MODEL], f"models.list() gives {listed}; only {MODEL} is served"
    first = client.models.list().data[0].id
    same_floats(
        [d.embedding for d in client.embeddings.create(model=first, input=TEXTS[:3]).data],
        expected[:3],
        "openai python, models.list().data[0] embeds",
    )


def check_cohere():
    client = cohere.ClientV2(api_key="unused", base_url=URL)
    types = ["float", "int8", "uint8", "binary", "ubinary"]
    response = client.embed(
        model=MODEL, texts=TEXTS, input_type="search_query", embedding_types=types
    )
    embeddings = response.embeddings
    same_floats(embeddings.float_, encode_all(TEXTS, input_type="query"), "cohere v2, float")
    for kind in types[1:]:
        got = getattr(embeddings, kind)
        assert got == encode_all(TEXTS, input_type="query", precision=kind), kind
        print(f"ok cohere v2, {kind} byte-identical")
    try:
        client.embed(model=MODEL, texts=["x"], input_type="search_query", embedding_types=["float"], truncate="START")
        raise AssertionError("truncate START was accepted")
    except cohere.errors.BadRequestError as error:
        assert "START" in json.dumps(error.body), error.body
    print("ok cohere v2, 400 for truncate START")


def check_langchain():
    embedder = OpenAIEmbeddings(
        model=MODEL,
        base_url=f"{URL}/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # send texts, not tiktoken token ids
        max_retries=0,
    )
    same_floats(embedder.embed_documents(TEXTS), encode_all(TEXTS), "langchain embed_documents")
    same_floats([embedder.embed_query(TEXTS[0])], encode(TEXTS[:1]), "langchain embed_query")


if __name__ == "__main__":
    check_openai()
    check_cohere()
    check_langchain()
    sys.exit(0)
