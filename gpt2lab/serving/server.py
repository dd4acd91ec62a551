"""A local JSON endpoint for text generation (FastAPI + uvicorn).

Endpoints (the container contract of managed inference services such as Amazon SageMaker, so the same
server runs there unchanged: the platform sends health checks to ``GET /ping`` and requests to
``POST /invocations`` on port 8080; inside a container start it with ``--host 0.0.0.0``):

* ``GET /ping`` -> ``{"status": "ok", "model": ...}`` once the model is loaded.
* ``POST /invocations`` with a JSON object of generation parameters (:mod:`gpt2lab.generation.params`: ``input``,
  ``max_length``, ``num_return_sequences``, ``mode``, ``top_p``, ``top_k``, ``temperature``,
  ``num_beams``, ``no_repeat_ngram_size``, ``repetition_penalty``, ``seed``, aliases ``length``/``k``/``p``;
  each mode applies its row of the published API's table, see ``mode_table_markdown()``)
  -> a JSON list of generated strings, prompt included (one list per prompt if ``input`` is a list).
  Response headers: ``X-Gpt2lab-Seed`` (the seed used by sampling modes) and ``X-Gpt2lab-Ignored``
  (parameters the mode ignored).
* ``GET /docs`` and ``/openapi.json``: the OpenAPI description, request schema included.

Bad requests get a 4xx JSON body ``{"error": "...", "fields": [...]}`` naming the problem: 400 malformed
JSON or a body that is not a JSON object; 403 a Host header that is not allowed (below); 413 a body larger
than ``max_body_bytes`` (an oversized body is read and discarded up to ``ServerLimits.drain_limit`` bytes
first, so a client that sends its whole body before reading still gets the answer); 415 a Content-Type other
than ``application/json`` (a missing one is accepted: the managed-inference contract's clients send JSON); 422
invalid parameters (type, range, non-finite numbers, unknown name or mode, empty or over-long input, prompt +
max_length beyond the model's context, more texts than the server allows) and generations that fail for
their parameters. Error bodies are always valid JSON (a non-finite number sent is shown as text). The worker
never crashes on input; the next request is served normally.

Concurrency model: one model, one generation at a time. Requests are accepted concurrently by the
asyncio event loop (so ``/ping`` answers while a generation runs), and every generation is handed to a
single dedicated worker thread, which runs them one after another in arrival order. Nothing about the
model or the random generator is shared between two generations, so identical concurrent greedy requests
return identical texts and a seeded sampling request is reproducible however busy the server is. Use
several server processes (behind a load balancer) to serve in parallel.

Binds to 127.0.0.1 (loopback) by default: nothing outside this machine can reach it unless you pass
``--host 0.0.0.0``. A loopback server also answers only requests whose Host header is a loopback name or
address (localhost, 127.0.0.1, ::1): a web page cannot reach it through a DNS name of its own that points to
127.0.0.1 (DNS rebinding). Name other hosts with ``--allow-host`` (``allowed_hosts=``). Together with the 415
for non-JSON bodies, this keeps pages open in your browser from driving the server.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from starlette.requests import Request  # at module level: FastAPI reads the endpoint's annotations from here

from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import (
    GenerationParams,
    InvalidParameterError,
    mode_table_markdown,
    parameter_table_markdown,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LogLevel", "ServerLimits", "RequestError", "is_loopback",
           "host_allowed", "is_json_content_type", "check_limits", "parse_body", "create_app", "read_limited",
           "discard_body", "BackgroundServer", "default_allowed_hosts", "serve_in_background"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM

DEFAULT_HOST = "127.0.0.1"
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]  # uvicorn's levels
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for; larger requests get a 413/422 instead of tying up the model."""

    max_body_bytes: int = 64 * 1024
    max_input_chars: int = 20_000
    max_prompts: int = 16
    max_texts: int = 32  # prompts x num_return_sequences per request
    max_beams: int = 16
    # An oversized body is read and thrown away up to this many bytes (at least 4 x max_body_bytes) before the
    # 413 is sent, so that a client which sends its whole body before reading gets the answer; beyond it the
    # connection is closed (the client may then see a reset).
    drain_bytes: int = 8 * 1024 * 1024

    @property
    def drain_limit(self) -> int:
        return max(self.drain_bytes, 4 * self.max_body_bytes)


class RequestError(Exception):
    """A bad request that is not about one parameter (malformed JSON, oversized body, wrong content type).
    ``close``: answer with ``Connection: close`` (part of the body may still be unread)."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) always means this machine:
    ``localhost`` and ``*.localhost`` (RFC 6761), 127.0.0.0/8 and ::1."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, allowed_hosts) -> bool:
    """Whether a request's ``Host`` header may be answered: a loopback name or address, one of
    ``allowed_hosts`` (names or addresses, case-insensitive), or anything when ``allowed_hosts`` holds "*".
    A request without a Host header (HTTP/1.0) is answered: browsers always send one."""
    if host_header is None or "*" in (allowed_hosts or ()):
        return True
    try:
        name = urlsplit("//" + host_header.strip()).hostname
    except ValueError:  # e.g. a port that is not a number
        return False
    if not name:
        return False
    return is_loopback(name) or name.rstrip(".") in {h.lower().strip("[]").rstrip(".") for h in allowed_hosts or ()}


def is_json_content_type(value: str | None) -> bool:
    """``application/json`` in any case, with or without parameters such as ``charset``; also a missing or
    empty Content-Type (the managed-inference contract's clients send JSON without saying so). Everything else
    is refused: text/plain, form and multipart bodies are what a web page can send cross-site without asking."""
    if value is None or not value.strip():
        return True
    return value.split(";", 1)[0].strip().lower() == "application/json"


def check_limits(params: GenerationParams, limits: ServerLimits) -> None:
    """Reject requests larger than the server allows, naming the field and the limit."""
    errors = []
    prompts = params.prompts()
    if len(prompts) > limits.max_prompts:
        errors.append({"field": "input", "value": f"<list of {len(prompts)} prompts>",
                       "message": f"input holds {len(prompts)} prompts; this server takes at most "
                                  f"{limits.max_prompts} per request", "allowed": f"<= {limits.max_prompts} prompts"})
    chars = sum(len(p) for p in prompts)
    if chars > limits.max_input_chars:
        errors.append({"field": "input", "value": f"<{chars} characters>",
                       "message": f"input has {chars} characters; this server takes at most "
                                  f"{limits.max_input_chars}", "allowed": f"<= {limits.max_input_chars} characters"})
    settings = params.settings()
    texts = len(prompts) * settings.num_return_sequences
    if texts > limits.max_texts:
        per_prompt = limits.max_texts // len(prompts)  # the most num_return_sequences these prompts leave room for
        fix = (f"lower num_return_sequences to <= {per_prompt}" if per_prompt >= 1 and params.applied(
            "num_return_sequences") else f"send at most {limits.max_texts} prompts per request")
        errors.append({"field": "num_return_sequences", "value": params.num_return_sequences,
                       "message": f"{len(prompts)} prompt(s) x num_return_sequences={settings.num_return_sequences}"
                                  f" = {texts} texts; this server returns at most {limits.max_texts} per request: "
                                  f"{fix}", "allowed": f"prompts x num_return_sequences <= {limits.max_texts}"})
    if settings.strategy == "beam" and settings.num_beams > limits.max_beams:
        errors.append({"field": "num_beams", "value": params.num_beams,
                       "message": f"num_beams={params.num_beams} is more than this server allows "
                                  f"({limits.max_beams})", "allowed": f"1 <= num_beams <= {limits.max_beams}"})
    if errors:
        raise InvalidParameterError(errors)


def parse_body(body: bytes) -> dict:
    """The request body as a JSON object, or a RequestError saying what is wrong with it."""
    if not body.strip():
        raise RequestError(400, "empty request body; send a JSON object such as {\"input\": \"Hello\"}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"request body is not valid UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(400, f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"the JSON body must be an object of generation parameters such as "
                                f"{{\"input\": \"Hello\"}}, got a JSON {type(data).__name__}")
    return data


def create_app(lm: LM, limits: ServerLimits | None = None, *, allowed_hosts=None):
    """The FastAPI application serving ``lm`` (see the module docstring for the endpoints and the
    concurrency model).

    allowed_hosts: the Host header values answered besides loopback names and addresses (DNS rebinding
    protection: a web page cannot reach the server under a name of its own); ``None`` = loopback only, the
    right choice for a server bound to loopback; ``["*"]`` = any host (a server bound to all interfaces).
    A request for another host gets 403.
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    limits = limits or ServerLimits()
    allowed_hosts = tuple(allowed_hosts or ())
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpt2lab-generate")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="gpt2lab generation endpoint", version="1", lifespan=lifespan,
                  description="Text generation with a GPT-2 style model. `POST /invocations` takes the generation "
                              "parameters as a JSON object and returns a JSON list of texts; `GET /ping` is the "
                              "health check. Same contract as managed inference containers (port 8080).\n\n"
                              "## Modes\n\n" + mode_table_markdown() + "\n\n## Parameters\n\n"
                              + parameter_table_markdown())
    app.state.lm = lm
    app.state.limits = limits
    app.state.served = 0

    def error(status: int, payload: dict, close: bool = False):
        return JSONResponse(status_code=status, content=payload, headers={"Connection": "close"} if close else None)

    @app.exception_handler(RequestError)
    async def _request_error(request, exc: RequestError):
        return error(exc.status, {"error": exc.message}, close=exc.close)

    @app.middleware("http")
    async def _check_host(request, call_next):
        host = request.headers.get("host")
        if not host_allowed(host, allowed_hosts):
            await discard_body(request.receive, limits.drain_limit)
            allowed = ", ".join(allowed_hosts) + " or " if allowed_hosts else ""
            return error(403, {"error": f"Host {host!r} is not allowed: this server answers requests for "
                                        f"{allowed}localhost / 127.0.0.1 / ::1 only (protection against DNS "
                                        "rebinding); name the host with --allow-host (or allowed_hosts=) to "
                                        "serve it"}, close=True)
        return await call_next(request)

    @app.exception_handler(InvalidParameterError)
    async def _invalid(request, exc: InvalidParameterError):
        return error(422, exc.as_json())

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        return error(422, {"error": "; ".join(str(e.get("msg")) for e in exc.errors())})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc):
        return error(exc.status_code, {"error": str(exc.detail)})

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):  # a server fault, not the client's: say so, keep serving
        print(f"gpt2lab serve: internal error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return error(500, {"error": f"internal error ({type(exc).__name__}); the request was not processed"})

    @app.get("/ping", summary="Health check")
    async def ping():
        return {"status": "ok", "model": lm.name, "served": app.state.served}

    def run_generation(params: GenerationParams):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", generation.IgnoredParameterWarning)  # reported in a header instead
            return generation.generate(lm, params=params)

    request_schema = GenerationParams.model_json_schema()
    request_schema.setdefault("examples", [{"input": "Shall I compare thee", "max_length": 40,
                                            "num_return_sequences": 2, "mode": "sample-top-p", "seed": 1}])

    @app.post("/invocations", summary="Generate text",
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": request_schema}}}},
              responses={200: {"description": "The generated texts, prompt included",
                               "content": {"application/json": {"schema": {"type": "array", "items": {
                                   "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}}}},
                         400: {"description": "Malformed JSON or not a JSON object"},
                         403: {"description": "Host header not allowed (DNS rebinding protection)"},
                         413: {"description": "Body too large"},
                         415: {"description": "Content-Type other than application/json"},
                         422: {"description": "Invalid generation parameters"}})
    async def invocations(request: Request):
        body = await read_limited(request, limits.max_body_bytes, limits.drain_limit)
        content_type = request.headers.get("content-type")
        if not is_json_content_type(content_type):
            raise RequestError(415, f"Content-Type {content_type!r} is not accepted; send the JSON object with "
                                    "Content-Type: application/json (or without a Content-Type)")
        params = GenerationParams.from_dict(parse_body(body))
        check_limits(params, limits)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(worker, run_generation, params)
        app.state.served += 1
        headers = {"X-Gpt2lab-Ignored": ",".join(result.ignored)}
        if result.seed is not None:
            headers["X-Gpt2lab-Seed"] = str(result.seed)
        return JSONResponse(content=list(result), headers=headers)

    return app


async def read_limited(request, max_bytes: int, drain_limit: int | None = None) -> bytes:
    """Read the body, refusing it (413) when it exceeds ``max_bytes``: known from the Content-Length header
    when there is one, else while streaming. An oversized body is still read and discarded up to
    ``drain_limit`` bytes before answering, so a client that sends its whole body before reading the reply
    gets the 413 instead of a connection reset; a larger one is answered at once and the connection closed."""
    drain_limit = max(drain_limit or 0, max_bytes)
    limit = f"this server accepts at most {max_bytes} bytes (max_body_bytes)"
    declared = request.headers.get("content-length")
    size = None
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"invalid Content-Length header {declared!r}", close=True) from None
        if size > drain_limit:
            raise RequestError(413, f"request body of {size} bytes is too large; {limit}", close=True)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > drain_limit:
            break
        if total <= max_bytes:
            chunks.append(chunk)
    if total > max_bytes:
        shown = f"of {size} bytes " if size is not None else ""
        raise RequestError(413, f"request body {shown}is too large; {limit}", close=True)
    return b"".join(chunks)


async def discard_body(receive, limit: int) -> None:
    """Read and throw away a request body (ASGI ``receive``) up to ``limit`` bytes, so that an answer sent
    without reading it can be read by the client."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


# ------------------------------------------------------------------------------------------------------
# Running the server: in the foreground (``gpt2lab serve``) or in a background thread (notebooks, tests)
# ------------------------------------------------------------------------------------------------------
class BackgroundServer:
    """A uvicorn server on its own thread. ``url`` is where it listens; ``stop()`` shuts it down.

    Usable as a context manager. The socket is bound before the thread starts, so port 0 picks a free
    port without any race.
    """

    def __init__(self, app, host: str = DEFAULT_HOST, port: int = 0, log_level: LogLevel = "warning"):
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name=f"gpt2lab-server-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        with contextlib.suppress(OSError):
            self.socket.close()

    def __enter__(self):
        return self if self.server.started else self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self.thread.is_alive() else "stopped"
        return f"BackgroundServer({self.url}, {state})"


def default_allowed_hosts(bind_host: str, allowed_hosts=None) -> tuple[str, ...]:
    """The Host names a server bound to ``bind_host`` answers besides loopback ones: those given, else none
    for a loopback binding and any ("*") for one reachable from other machines (0.0.0.0 in a container)."""
    if allowed_hosts:
        return tuple(allowed_hosts)
    return () if is_loopback(bind_host) else ("*",)


def serve_in_background(lm: LM, host: str = DEFAULT_HOST, port: int = 0, limits: ServerLimits | None = None,
                        log_level: LogLevel = "warning", allowed_hosts=None) -> BackgroundServer:
    """Start the endpoint for ``lm`` on a background thread (port 0 = any free port) and return it.
    ``allowed_hosts``: see :func:`create_app` (default: :func:`default_allowed_hosts`)."""
    app = create_app(lm, limits, allowed_hosts=default_allowed_hosts(host, allowed_hosts))
    return BackgroundServer(app, host=host, port=port, log_level=log_level).start()


# ------------------------------------------------------------------------------------------------------
# gpt2lab serve
# ------------------------------------------------------------------------------------------------------


