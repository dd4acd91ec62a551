"""The HTTP endpoint, over real HTTP on loopback (uvicorn on a background thread, tiny model)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import gpt2lab
from gpt2lab import cli
from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import mode_table_markdown
from gpt2lab.serving import server


@pytest.fixture(scope="module")
def endpoint(tiny_lm):
    limits = server.ServerLimits(max_body_bytes=4096, max_input_chars=1000, max_texts=8, max_beams=6)
    with server.serve_in_background(tiny_lm, limits=limits) as running:
        yield running


def post(endpoint, body, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(endpoint.url + "/invocations", data=data, timeout=60, **kwargs)


def test_binds_to_loopback_on_a_free_port(endpoint):
    assert endpoint.host == "127.0.0.1" and endpoint.port > 0
    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}"


def test_ping(endpoint, tiny_lm):
    r = requests.get(endpoint.url + "/ping", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["model"] == tiny_lm.name


def test_invocations_returns_the_texts_with_the_prompt(endpoint, tiny_lm):
    r = post(endpoint, {"input": "Hello there", "max_length": 6, "num_return_sequences": 2, "seed": 3})
    assert r.status_code == 200, r.text
    texts = r.json()
    assert texts == list(gpt2lab.generate(tiny_lm, "Hello there", max_length=6, num_return_sequences=2, seed=3))
    assert r.headers["X-Gpt2lab-Seed"] == "3" and r.headers["X-Gpt2lab-Ignored"] == ""


def test_aliases_lists_of_prompts_and_the_ignored_header(endpoint):
    r = post(endpoint, {"input": ["a", "b c"], "length": 3, "k": 5, "mode": "greedy"})
    assert r.status_code == 200, r.text
    assert [len(group) for group in r.json()] == [1, 1]
    assert r.headers["X-Gpt2lab-Ignored"] == "top_k" and "X-Gpt2lab-Seed" not in r.headers


def test_openapi_documents_the_request(endpoint):
    spec = requests.get(endpoint.url + "/openapi.json", timeout=10).json()
    body = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"input", "temperature", "top_p", "top_k", "mode", "max_length"} <= set(body["properties"])
    assert mode_table_markdown() in spec["info"]["description"]  # the published API's mode table
    assert "/ping" in spec["paths"]
    assert requests.get(endpoint.url + "/docs", timeout=10).status_code == 200


# (body, expected status, words the error must contain)
BAD_REQUESTS = [
    (b"{not json", 400, "malformed JSON"),
    (b'{"input": "x",}', 400, "malformed JSON"),
    (b"", 400, "empty request body"),
    (b"   ", 400, "empty request body"),
    (b"\xff\xfe{}", 400, "not valid UTF-8"),
    (b"[1, 2]", 400, "must be an object"),
    (b'"just a string"', 400, "must be an object"),
    (b"42", 400, "must be an object"),
    (b"null", 400, "must be an object"),
    ({"input": "x", "temperature": "hot"}, 422, "temperature='hot'"),
    ({"input": "x", "top_k": 2.5}, 422, "top_k=2.5"),
    ({"input": "x", "top_k": True}, 422, "top_k=True"),
    ({"input": "x", "max_length": "10"}, 422, "max_length='10'"),
    ({"input": 5}, 422, "input=5"),
    ({"input": ["ok", 3]}, 422, "item 1"),
    ({"input": "x", "temperature": 0}, 422, "temperature=0"),
    ({"input": "x", "temperature": -1}, 422, "temperature=-1"),
    ({"input": "x", "top_p": 0}, 422, "top_p=0"),
    ({"input": "x", "p": 1.5}, 422, "top_p=1.5"),
    ({"input": "x", "top_k": -3}, 422, "top_k=-3"),
    ({"input": "x", "num_beams": 0, "mode": "beam"}, 422, "num_beams=0"),
    ({"input": "x", "max_length": 0}, 422, "max_length=0"),
    ({"input": "x", "repetition_penalty": 0}, 422, "repetition_penalty=0"),
    ({"input": "x", "no_repeat_ngram_size": -1}, 422, "no_repeat_ngram_size=-1"),
    ({"input": "x", "seed": -7}, 422, "seed=-7"),
    ({"input": "x", "mode": "nucleus"}, 422, "mode='nucleus'"),
    ({"input": "x", "temprature": 0.5}, 422, "did you mean 'temperature'"),
    ({"input": "x", "k": 3, "top_k": 4}, 422, "two spellings"),
    ({"max_length": 5}, 422, "no prompt"),
    ({"input": ""}, 422, "empty prompt"),
    ({"input": []}, 422, "empty prompt"),
    ({"input": "word " * 300}, 422, "at most 1000"),  # more characters than the server takes
    ({"input": " word" * 40, "max_length": 30}, 422, "exceeds the model's context"),
    ({"input": "x", "max_length": 64}, 422, "leaves no room"),
    ({"input": "x", "mode": "beam", "num_beams": 2, "num_return_sequences": 3}, 422, "num_beams=2"),
    ({"input": "x", "num_return_sequences": 9}, 422, "at most 8"),
    ({"input": ["a"] * 3, "num_return_sequences": 3}, 422, "= 9 texts"),
    ({"input": "x", "mode": "beam", "num_beams": 7, "num_return_sequences": 1}, 422, "num_beams=7"),
    ({"input": "x" * 5000}, 413, "larger than this server accepts"),
]


@pytest.mark.parametrize("body, status, words", BAD_REQUESTS, ids=[str(i) for i in range(len(BAD_REQUESTS))])
def test_bad_requests_get_a_4xx_json_error(endpoint, body, status, words):
    r = post(endpoint, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert words in r.json()["error"]


def test_a_good_request_still_works_after_bad_ones(endpoint):
    for body, _, _ in BAD_REQUESTS[:5]:
        post(endpoint, body)
    r = post(endpoint, {"input": "Still fine", "max_length": 3, "seed": 1})
    assert r.status_code == 200 and len(r.json()) == 3


def test_oversized_chunked_body_without_content_length(endpoint):
    def chunks():
        yield b'{"input": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = requests.post(endpoint.url + "/invocations", data=chunks(), timeout=30)  # chunked transfer encoding
    assert r.status_code == 413 and "larger than" in r.json()["error"]


def test_invalid_content_length_header(endpoint):
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=10)
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Length", "abc")
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    assert 400 <= status < 500


def test_wrong_method_and_unknown_path_are_json_4xx(endpoint):
    r = requests.get(endpoint.url + "/invocations", timeout=10)
    assert r.status_code == 405 and "error" in r.json()
    r = requests.get(endpoint.url + "/nothing-here", timeout=10)
    assert r.status_code == 404 and "error" in r.json()


def test_concurrent_identical_greedy_requests_get_identical_texts(endpoint):
    body = {"input": "The same prompt", "mode": "greedy", "max_length": 12}
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: post(endpoint, body), range(4)))
    assert {r.status_code for r in responses} == {200}
    assert len({json.dumps(r.json()) for r in responses}) == 1
    seeded = {"input": "Seeded", "max_length": 8, "seed": 42}
    with ThreadPoolExecutor(3) as pool:
        texts = [r.json() for r in pool.map(lambda _: post(endpoint, seeded), range(3))]
    assert texts[0] == texts[1] == texts[2]


def test_one_generation_at_a_time_while_ping_stays_responsive(endpoint, monkeypatch):
    """The concurrency model: generations run one after another on one worker thread; the event loop
    keeps answering /ping meanwhile."""
    original = generation.generate
    active, overlaps = [], []

    def slow_generate(*args, **kwargs):
        active.append(1)
        overlaps.append(len(active))
        time.sleep(0.6)
        try:
            return original(*args, **kwargs)
        finally:
            active.pop()

    monkeypatch.setattr(generation, "generate", slow_generate)
    body = {"input": "slow", "mode": "greedy", "max_length": 2}
    started = time.monotonic()
    threads = [threading.Thread(target=post, args=(endpoint, body)) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    ping_started = time.monotonic()
    assert requests.get(endpoint.url + "/ping", timeout=10).status_code == 200
    assert time.monotonic() - ping_started < 0.5
    for t in threads:
        t.join()
    assert max(overlaps) == 1  # never two generations at once
    assert time.monotonic() - started >= 1.2  # so two slow requests took twice as long


def test_background_server_stops_and_frees_its_port(tiny_lm):
    running = server.serve_in_background(tiny_lm)
    port = running.port
    assert requests.get(running.url + "/ping", timeout=10).status_code == 200
    running.stop()
    assert not running.thread.is_alive()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_command_defaults_to_loopback_8080():
    args = cli.build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    args = cli.build_parser().parse_args(["serve", "--model", "embedded", "--port", "9000", "--host", "0.0.0.0"])
    assert (args.model, args.port, args.host) == ("embedded", 9000, "0.0.0.0")


def test_serve_command_rejects_a_bad_port(capsys):
    assert cli.main(["serve", "--port", "70000"]) == 2
    assert "not a valid port" in capsys.readouterr().err
