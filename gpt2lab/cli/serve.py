"""``gpt2lab serve``: the local HTTP endpoint (GET /ping, POST /invocations) from the command line."""
from __future__ import annotations

import sys

from gpt2lab.serving.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerLimits,
    create_app,
    default_allowed_hosts,
    is_loopback,
)

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``gpt2lab serve``."""
    p = subparsers.add_parser("serve", help="serve a model over HTTP (GET /ping, POST /invocations)",
                              description="Serve a model over HTTP: GET /ping (health) and POST /invocations "
                                          "(JSON generation parameters -> JSON list of texts), the container "
                                          "contract of managed inference services. OpenAPI docs at /docs.")
    p.add_argument("--model", default=None, help="embedded name, local directory or Hub id (default: the course "
                                                 "model, $GPT2LAB_MODEL or gpt2 with offline fallback)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST}, loopback only; "
                                                        "0.0.0.0 inside a container)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--allow-host", action="append", default=None, metavar="NAME", dest="allowed_hosts",
                   help="answer requests whose Host header is NAME (repeatable; '*' = any). Default: loopback names "
                        "only when bound to loopback (protection against DNS rebinding), any host otherwise")
    p.add_argument("--max-body-bytes", type=int, default=ServerLimits.max_body_bytes)
    p.add_argument("--max-texts", type=int, default=ServerLimits.max_texts,
                   help="most texts (prompts x num_return_sequences) one request may ask for")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_serve_command)


def _serve_command(args) -> int:
    import uvicorn

    from gpt2lab.loading import load

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a valid port (0-65535)")
    for name in ("max_body_bytes", "max_texts"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    lm = load(args.model, device=args.device)
    limits = ServerLimits(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts)
    if not is_loopback(args.host):
        print(f"gpt2lab serve: listening on {args.host}, reachable from other machines; there is no "
              "authentication", file=sys.stderr)
    print(f"gpt2lab serve: {lm.name} on http://{args.host}:{args.port} (POST /invocations, GET /ping, docs at "
          f"/docs)", file=sys.stderr, flush=True)
    app = create_app(lm, limits, allowed_hosts=default_allowed_hosts(args.host, args.allowed_hosts))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0

