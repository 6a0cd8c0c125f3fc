"""The official `openai` Python SDK against the gateway: what works must
parse, and what fails must raise the SDK's own exception types."""

import openai
import pytest
from openai import OpenAI


@pytest.fixture
def client(gateway):
    return OpenAI(base_url=gateway["base_url"], api_key=gateway["key"], max_retries=0)


def test_chat_non_streaming_through_an_upstream(client):
    r = client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "from upstream"
    assert r.usage.total_tokens == 7


def test_chat_with_raw_response_headers(client):
    raw = client.chat.completions.with_raw_response.create(model="mock", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-assisters-upstream"] == "py"
    assert raw.parse().choices[0].message.content == "from upstream"


def test_chat_streaming_with_usage_through_an_upstream(client):
    stream = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "from upstream"
    assert chunks[-1].usage.total_tokens == 7


def test_echo_model_streams_with_correct_usage(client):
    messages = [{"role": "user", "content": "four score and seven"}]
    plain = client.chat.completions.create(model="assisters-echo", messages=messages)
    stream = client.chat.completions.create(model="assisters-echo", messages=messages, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content == "four score and seven"
    usage = chunks[-1].usage
    assert usage.prompt_tokens == plain.usage.prompt_tokens
    assert usage.completion_tokens == plain.usage.completion_tokens == 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_models(client):
    ids = {m.id for m in client.models.list()}
    assert {"assisters-echo", "mock"} <= ids
    assert client.models.retrieve("mock").id == "mock"


def test_embeddings_in_both_encodings(client):
    # The SDK asks for base64 by default and decodes it itself.
    r = client.embeddings.create(model="assisters-echo", input=["alpha", "beta"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 256
    f = client.embeddings.create(model="assisters-echo", input="alpha", encoding_format="float", dimensions=8)
    assert len(f.data[0].embedding) == 8
    assert abs(sum(x * x for x in r.data[0].embedding) - 1.0) < 1e-3
    assert r.usage.prompt_tokens > 0


def test_completions(client):
    r = client.completions.create(model="assisters-echo", prompt="echo me")
    assert r.choices[0].text == "echo me"


def test_authentication_error(gateway):
    bad = OpenAI(base_url=gateway["base_url"], api_key="ask_" + "x" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.code == "invalid_api_key"


def test_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="assisters-echo", messages="not a list")
    assert e.value.status_code == 400


def test_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
