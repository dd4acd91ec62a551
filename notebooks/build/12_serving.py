"""Builds notebooks/12_serving.ipynb (run: python notebooks/build/12_serving.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "12_serving.ipynb",
    "12 · Serving: a JSON endpoint and a batch job",
    """
    A model in a notebook helps one person. To let programs use it, put it behind an interface: an HTTP
    endpoint that answers requests, or a batch job that works through a file of them. This notebook starts
    gpt2lab's endpoint in the background, calls it with `requests` (and shows the equivalent `curl`),
    looks at how it answers bad requests and concurrent clients, and then runs the same requests as a
    restartable batch job. The endpoint follows the container contract of managed inference services, so
    the same server can be deployed there unchanged.
    """,
    [
        "start `gpt2lab serve` (here: in a background thread) and call `GET /ping` and `POST /invocations`",
        "write the same request with `requests` and with `curl`",
        "read the endpoint's 4xx errors and know which problems they report",
        "explain the server's concurrency model and why identical concurrent requests get identical answers",
        "run a JSONL batch job, interrupt it and restart it without redoing finished lines",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
""")

nb.code("""
import json
import shlex
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import requests

from gpt2lab.serving import batch
from gpt2lab.serving import server

pd.set_option("display.max_colwidth", 100)
""")

nb.md("""
## 1 · Start the server

From a terminal you would run

```
gpt2lab serve --model embedded            # http://127.0.0.1:8080, loopback only
```

In a notebook we start the same application on a background thread, on a free port chosen by the
operating system, so nothing clashes with another server already running. It binds to `127.0.0.1`:
only programs on this machine can reach it.
""")

nb.code("""
srv = server.serve_in_background(lm)  # port 0: any free port
url = srv.url
print("serving", lm.name, "at", url)
requests.get(url + "/ping", timeout=10).json()
""")

nb.md("""
## 2 · Call it

`POST /invocations` takes a JSON object with the generation parameters of `gpt2lab.generate` (the same
definition, `gpt2lab.GenerationParams`) and returns a JSON list of texts, prompt included.
""")

nb.code("""
body = {"input": "ROMEO:\\nBut soft, what light", "max_length": 30, "num_return_sequences": 2, "mode": "sample-top-p",
        "top_p": 0.9, "temperature": 0.8, "seed": 7}
response = requests.post(url + "/invocations", json=body, timeout=60)
print(response.status_code, {k: v for k, v in response.headers.items() if k.lower().startswith("x-gpt2lab")})
for text in response.json():
    print("---")
    print(text)
""")

nb.md("""
The same request with `curl` (run it in a terminal while the server is up; if `curl` is installed here,
the next cell runs it for you):
""")

nb.code("""
curl = ["curl", "-s", "-X", "POST", url + "/invocations", "-H", "Content-Type: application/json",
        "-d", json.dumps(body)]
print(" ".join(shlex.quote(part) for part in curl))
if shutil.which("curl"):
    answer = subprocess.run(curl, capture_output=True, text=True, timeout=60).stdout
    print("same answer as requests:", json.loads(answer) == response.json())
""")

nb.md("""
The seed makes a sampled answer reproducible: the response header `X-Gpt2lab-Seed` tells you the seed
used, also when you sent none (then the server drew one). Parameters the chosen mode does not use are
listed in `X-Gpt2lab-Ignored`:
""")

nb.code("""
r = requests.post(url + "/invocations", json={"input": "KING:", "mode": "greedy", "max_length": 12,
                                              "temperature": 0.3, "k": 5}, timeout=60)
print(r.json())
print("ignored:", r.headers["X-Gpt2lab-Ignored"])
""")

nb.md("""
The API is described in OpenAPI, with a browsable page at `/docs`:
""")

nb.code("""
spec = requests.get(url + "/openapi.json", timeout=10).json()
schema = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
pd.DataFrame([{"parameter": name, "default": p.get("default"), "description": p.get("description", "")}
              for name, p in schema["properties"].items()])
""")

nb.md("""
## 3 · Bad requests

A server must never crash on input, and should tell the client what was wrong. Every bad request gets a
4xx status and a JSON body naming the problem: 400 for a body that is not a JSON object, 413 for a body
that is too large (read to its end first, so even a client that sends everything before it listens gets the
answer), 422 for invalid parameters, including numbers JSON cannot hold (`1e309` reads as infinity) and
values outside the ranges of the parameter table.
""")

nb.code("""
bad = {
    "malformed JSON": b'{"input": "x",',
    "not an object": b'["a list"]',
    "wrong type": {"input": "x", "temperature": "hot"},
    "out of range": {"input": "x", "top_p": 1.5},
    "unknown mode": {"input": "x", "mode": "nucleus"},
    "misspelt name": {"input": "x", "tempreature": 0.9},
    "empty input": {"input": ""},
    "beyond the context": {"input": "x", "max_length": 100_000},
    "not a finite number": b'{"input": "x", "temperature": 1e309}',
    "penalty out of range": {"input": "x", "repetition_penalty": 1e-38},
    "too large a body": {"input": "x" * 100_000},
}
rows = []
for problem, payload in bad.items():
    data = payload if isinstance(payload, bytes) else json.dumps(payload)
    r = requests.post(url + "/invocations", data=data, timeout=60)
    rows.append({"problem": problem, "status": r.status_code, "error": r.json()["error"]})
print("still serving:", requests.post(url + "/invocations", json={"input": "KING:", "max_length": 5}, timeout=60).ok)
pd.DataFrame(rows)
""")

nb.md("""
Two more refusals protect you from web pages open in your browser. A page can send a cross-site POST
without asking the server first only as `text/plain`, a form or multipart data, so `/invocations` takes
`application/json` (or no Content-Type, as the managed-inference clients send) and answers anything else
with 415. And a page could make its own domain name point to 127.0.0.1 (DNS rebinding) to reach the
server through the browser; a server bound to loopback therefore answers only requests addressed to
`localhost`, `127.0.0.1` or `::1` (403 otherwise; `--allow-host NAME` names more):
""")

nb.code("""
as_a_page = requests.post(url + "/invocations", data='{"input": "KING:", "max_length": 5}',
                          headers={"Content-Type": "text/plain"}, timeout=60)
rebound = requests.post(url + "/invocations", json={"input": "KING:", "max_length": 5},
                        headers={"Host": "attacker.example"}, timeout=60)
for r in (as_a_page, rebound):
    print(r.status_code, r.json()["error"])
assert (as_a_page.status_code, rebound.status_code) == (415, 403)
""")

nb.md("""
## 4 · Concurrent clients

The server accepts requests concurrently (an asyncio event loop: `/ping` answers at once even while a
generation runs), but generates **one request at a time on a single worker thread**, in arrival order.
One model, one generation: no two requests share the model or the random generator at the same time,
so identical concurrent greedy requests get identical texts, and a seeded request is reproducible
however busy the server is. To serve in parallel, run several server processes behind a load balancer.
""")

nb.code("""
greedy = {"input": "First Citizen:\\n", "mode": "greedy", "max_length": 25}
start = time.perf_counter()
with ThreadPoolExecutor(4) as pool:
    answers = list(pool.map(lambda _: requests.post(url + "/invocations", json=greedy, timeout=60).json(), range(4)))
elapsed = time.perf_counter() - start
print(f"4 concurrent requests in {elapsed:.2f} s; identical answers: {all(a == answers[0] for a in answers)}")
print(answers[0][0])
""")

nb.md("""
## 5 · The batch job

For many requests there is no need for a server: `gpt2lab batch requests.jsonl results.jsonl` reads one
request per line (the same JSON objects) and writes one result per line, in order. A bad line gets an
error record and the others still run. The job is **restartable**: run the same command again after an
interruption and it keeps the finished lines (checking they belong to the same requests), drops a
half-written last line, and continues. From Python it is `batch.run_batch`:
""")

nb.code("""
work = Path(tempfile.mkdtemp(prefix="gpt2lab-batch-"))
requests_file, results_file = work / "requests.jsonl", work / "results.jsonl"
lines = [
    {"input": "ROMEO:", "max_length": 20, "num_return_sequences": 2, "seed": 1},
    {"input": "JULIET:", "max_length": 20, "mode": "beam", "num_beams": 3, "num_return_sequences": 1},
    {"input": "HAMLET:", "max_length": 20, "temperature": 0},
    {"input": "KING LEAR:", "max_length": 20, "mode": "greedy"},
]
requests_file.write_text("\\n".join(json.dumps(line) for line in lines) + "\\nnot json at all\\n")
print(f"gpt2lab batch {requests_file} {results_file} --model {lm.name}")
counts = batch.run_batch(lm, requests_file, results_file, progress=False)
print(counts)
records = [json.loads(line) for line in results_file.read_text().splitlines()]
pd.DataFrame([{"line": r["line"], "ok": r["ok"], "seed": "" if r.get("seed") is None else r["seed"],
               "output or error": r["output"] if r["ok"] else r["error"]} for r in records])
""")

nb.md("""
Now simulate a crash: keep the first two results and half of the third, then run the job again. Only
lines 3 to 5 are processed; line 1's seeded samples are the ones written before.
""")

nb.code("""
full = results_file.read_bytes()
kept = full.split(b"\\n")
results_file.write_bytes(b"\\n".join(kept[:2]) + b"\\n" + kept[2][:15])  # an interrupted write
counts = batch.run_batch(lm, requests_file, results_file, progress=False)
print(counts)
print("identical to the uninterrupted run:", results_file.read_bytes() == full)
""")

nb.md("""
## 6 · Deploying

`GET /ping` and `POST /invocations` on port 8080 are the contract managed inference services (Amazon
SageMaker, for instance) expect from a model container: the platform calls `/ping` to check health and
forwards client requests to `/invocations`. A container only has to start

```
gpt2lab serve --model /opt/ml/model --host 0.0.0.0 --port 8080
```

(`--host 0.0.0.0` because inside a container the platform connects from outside it, under whatever host
name it uses, so the Host check is off there unless you name hosts with `--allow-host`; on your own
machine keep the loopback default, since the server has no authentication). For more throughput, run
one server process per GPU or CPU socket behind the platform's load balancer.
""")

nb.exercise("""
Write a small client `ask(text, **params)` that posts to the endpoint with a timeout, returns the texts
on success, and raises `ValueError` carrying the server's error message on a 4xx answer. Call it once
with good parameters and once with `top_k=-1`.
""", solution="""
def ask(text, timeout=60, **params):
    r = requests.post(url + "/invocations", json={"input": text, **params}, timeout=timeout)
    if 400 <= r.status_code < 500:
        raise ValueError(f"{r.status_code}: {r.json()['error']}")
    r.raise_for_status()
    return r.json()

print(ask("GLOUCESTER:", max_length=10, seed=3))
try:
    ask("GLOUCESTER:", mode="sample-top-k", top_k=-1)
except ValueError as err:
    print("refused:", err)
""", title="A careful client")

nb.exercise("""
Sending four prompts as four requests costs four model calls; sending them as one request with a list
`input` costs one batched call. Time both (greedy, 20 tokens) and compare.
""", solution="""
prompts = ["ROMEO:", "JULIET:", "MERCUTIO:", "TYBALT:"]
params = {"mode": "greedy", "max_length": 20}
start = time.perf_counter()
one_by_one = [requests.post(url + "/invocations", json={"input": p, **params}, timeout=60).json()[0] for p in prompts]
separate = time.perf_counter() - start
start = time.perf_counter()
together = requests.post(url + "/invocations", json={"input": prompts, **params}, timeout=60).json()
batched = time.perf_counter() - start
print(f"4 requests: {separate:.2f} s, one batched request: {batched:.2f} s")
print("same texts:", [group[0] for group in together] == one_by_one)
""", title="One request or four")

nb.md("""
## Shutting down

A server started from a notebook keeps running until you stop it (or the kernel ends):
""")

nb.code("""
srv.stop()
try:
    requests.get(url + "/ping", timeout=2)
    print("still answering?!")
except requests.ConnectionError:
    print("server stopped")
shutil.rmtree(work, ignore_errors=True)
""")

nb.summary([
    "`gpt2lab serve` exposes a model as `GET /ping` and `POST /invocations` (JSON parameters in, JSON list of "
    "texts out), with OpenAPI docs at `/docs`; `server.serve_in_background` runs it from Python on a free port.",
    "The parameters are the one `GenerationParams` definition shared with `gpt2lab.generate`, the CLI and the "
    "batch job; headers report the seed used and the parameters the mode ignored.",
    "Bad requests get 4xx JSON errors naming the problem (400 not JSON, 413 too large, 422 invalid parameters); "
    "the server keeps serving.",
    "One model, one generation at a time on a worker thread: concurrent identical greedy requests return "
    "identical texts; parallelism comes from running more processes.",
    "`gpt2lab batch` processes a JSONL file line by line, writes error records for bad lines, and restarts "
    "where it stopped.",
    "The same endpoint is the container contract of managed inference services (port 8080, `--host 0.0.0.0` "
    "inside the container); at home it stays on loopback.",
])

if __name__ == "__main__":
    nb.write()
