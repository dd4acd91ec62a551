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
    ({"input": "x" * 5000}, 413, "too large; this server accepts at most 4096 bytes"),
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
    assert r.status_code == 413 and "too large; this server accepts at most 4096 bytes" in r.json()["error"]


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


# ------------------------------------------------------------------ what a web page could send
GOOD_BODY = b'{"input": "ROMEO:", "max_length": 2, "mode": "greedy"}'


def raw_request(endpoint, body: bytes = GOOD_BODY, headers: dict | None = None, path: str = "/invocations",
                method: str = "POST", chunked: bool = False) -> tuple[int, dict]:
    """Send the whole request (headers and body) before reading anything, as a simple client does, then
    read the answer: (status, JSON body)."""
    head = {"Host": f"127.0.0.1:{endpoint.port}", "Content-Type": "application/json"}
    head.update(headers or {})
    if chunked:
        head["Transfer-Encoding"] = "chunked"
        size = 64 * 1024
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                           for i in range(0, len(body), size)) + b"0\r\n\r\n"
    else:
        head["Content-Length"] = str(len(body))
        payload = body
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items() if v is not None]
    with socket.create_connection((endpoint.host, endpoint.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
    return response.status, json.loads(data, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "APPLICATION/JSON", "Application/Json ; Charset=UTF-8", "", None])
def test_json_and_a_missing_content_type_are_accepted(endpoint, content_type):
    status, body = raw_request(endpoint, headers={"Content-Type": content_type})
    assert status == 200 and body[0].startswith("ROMEO:")


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/json", "application/jsonp", "application/json-patch+json"])
def test_other_content_types_get_415(endpoint, content_type):
    status, body = raw_request(endpoint, headers={"Content-Type": content_type})
    assert status == 415
    assert body["error"] == (f"Content-Type {content_type!r} is not accepted; send the JSON object with "
                             "Content-Type: application/json (or without a Content-Type)")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:{port}", "127.0.0.1", "127.0.0.1:{port}", "127.1.2.3",
                                  "[::1]:{port}", "[::1]", "app.localhost:{port}"])
def test_loopback_host_names_are_answered(endpoint, host):
    status, _ = raw_request(endpoint, headers={"Host": host.format(port=endpoint.port)})
    assert status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}",
                                  "localhost.evil.example", "192.168.1.10:{port}", "[::2]:{port}", ""])
def test_other_host_names_are_refused_dns_rebinding(endpoint, host, monkeypatch):
    calls = []
    monkeypatch.setattr(generation, "generate", lambda *a, **k: calls.append(1))
    status, body = raw_request(endpoint, headers={"Host": host.format(port=endpoint.port)})
    assert status == 403 and calls == []
    assert "is not allowed" in body["error"] and "--allow-host" in body["error"]
    assert raw_request(endpoint, b"", {"Host": host.format(port=endpoint.port)}, "/ping", "GET")[0] == 403


def test_named_hosts_are_answered_too(tiny_lm):
    with server.serve_in_background(tiny_lm, allowed_hosts=["my.box", "10.0.0.5"]) as running:
        assert raw_request(running, headers={"Host": f"My.Box:{running.port}"})[0] == 200
        assert raw_request(running, headers={"Host": "10.0.0.5"})[0] == 200
        assert raw_request(running, headers={"Host": "localhost"})[0] == 200
        assert raw_request(running, headers={"Host": "other.box"})[0] == 403
    assert server.default_allowed_hosts("127.0.0.1") == () and server.default_allowed_hosts("::1") == ()
    assert server.default_allowed_hosts("0.0.0.0") == ("*",)  # reachable from other machines: any name
    assert server.default_allowed_hosts("0.0.0.0", ["a.b"]) == ("a.b",)
    args = cli.build_parser().parse_args(["serve", "--allow-host", "a.b", "--allow-host", "c.d"])
    assert args.allowed_hosts == ["a.b", "c.d"]


# ------------------------------------------------------------------ numbers JSON cannot hold, out-of-range numbers
@pytest.mark.parametrize("body, field", [
    (b'{"input": "x", "top_k": 1e309}', "top_k"),
    (b'{"input": "x", "temperature": Infinity}', "temperature"),
    (b'{"input": "x", "temperature": NaN}', "temperature"),
    (b'{"input": "x", "top_p": -Infinity}', "top_p"),
    (b'{"input": "x", "seed": 1e999}', "seed"),
    (b'{"input": ["a", NaN]}', "input"),
    (b'{"input": "x", "NaN": NaN}', "NaN"),
    (b'{"input": "x", "repetition_penalty": 1e-38}', "repetition_penalty"),
    (b'{"input": "x", "top_k": 9223372036854775808}', "top_k"),
    (b'{"input": "x", "temperature": 1e-400}', "temperature"),  # parses as 0.0
])
def test_non_finite_and_out_of_range_numbers_get_a_serialisable_422(endpoint, body, field):
    status, answer = raw_request(endpoint, body)
    assert status == 422 and answer["fields"][0]["field"] == field
    assert field in answer["error"]


def test_a_failure_while_generating_is_a_422_not_a_500(endpoint, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")

    monkeypatch.setattr(generation, "transformers_call", failing)
    status, answer = raw_request(endpoint)
    assert status == 422 and answer["error"].startswith("generation failed: no next token could be drawn")


def test_limit_errors_suggest_what_can_help(endpoint):
    r = post(endpoint, {"input": ["a", "b", "c"], "num_return_sequences": 3})
    assert r.status_code == 422 and r.json()["error"].endswith("lower num_return_sequences to <= 2")
    r = post(endpoint, {"input": ["a"] * 9, "mode": "greedy"})  # no num_return_sequences can help greedy
    assert r.status_code == 422 and r.json()["error"].endswith("send at most 8 prompts per request")


# ------------------------------------------------------------------ oversized bodies get an answer
@pytest.mark.parametrize("size, chunked", [(5 * 1024 * 1024, False), (3 * 4096, True), (5000, False)])
def test_an_oversized_body_gets_a_413_the_client_can_read(endpoint, size, chunked):
    body = b'{"input": "' + b"x" * size + b'"}'
    status, answer = raw_request(endpoint, body, chunked=chunked)
    assert status == 413
    assert answer["error"].endswith("too large; this server accepts at most 4096 bytes (max_body_bytes)")
    assert requests.get(endpoint.url + "/ping", timeout=10).status_code == 200  # and keeps serving


def test_a_body_beyond_the_drain_limit_is_refused_at_once(endpoint):
    """Larger than ServerLimits.drain_limit: answered from the Content-Length alone, before any body is sent
    (a client that waits for '100 Continue', as curl does for large bodies, reads it cleanly)."""
    size = endpoint.server.config.app.state.limits.drain_limit + 1
    with socket.create_connection((endpoint.host, endpoint.port), timeout=30) as sock:
        sock.sendall(f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413 and f"of {size} bytes is too large" in json.loads(response.read())["error"]
