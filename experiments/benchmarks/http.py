"""Menus over HTTP: ``recommend serve`` against ``mlflow models serve`` of the same model.

An EASE model is trained on the shipped sample (3,000 members, 800 courses), registered in
a temporary MLflow store as ``models:/bench@champion``, and served twice, side by side:

- ``recommend serve --model models:/bench@champion --workers W`` (``POST /v1/menus``);
- ``mlflow models serve -m models:/bench@champion --env-manager local`` (``POST
  /invocations``, MLflow's defaults), the reference.

Each round loads one server and then the other with C concurrent clients (threads, one
keep-alive HTTP/1.1 connection each) asking for single-member menus (n=10) of members drawn
at random (seeded) for D seconds after a warm-up; the figures are throughput (answers per
second) and latency percentiles per answer. Both servers must answer the same courses for
the same members (checked before the load). The machine is shared, so the run repeats the
rounds and reports medians over them.

Targets (2 cores, 8 clients): throughput at least 5x MLflow's, p99 under 20 ms. Run::

    python experiments/benchmarks/http.py [--rounds 3] [--seconds 8] [--clients 8] [--workers 2]

The last line reads ``RESULT rps=... p50_ms=... p99_ms=... rps_mlflow=...
ratio_vs_mlflow=...`` (medians over the rounds).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: run as a script, its folder comes first on sys.path and
# would hide the standard library's http package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import numpy as np

import recommend as rc
from recommend.registry import register_artifact

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            # The venv's bin first: `mlflow models serve` runs `uvicorn` from PATH.
            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env},
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not up after {timeout:.0f} s:\n{log.read_text()}")


Body = Callable[[str], bytes]


def ask(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status}: {data[:300]!r}")
    return data


class Connection:
    """A lean HTTP/1.1 keep-alive client: requests are encoded before the clock starts and
    an answer is read by its ``content-length`` (or chunks), so that the load generator,
    which shares the cores with the servers, costs each of them as little as possible."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def request(port: int, path: str, body: bytes) -> bytes:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def _more(self) -> None:
        got = self.sock.recv(65536)
        if not got:
            raise ConnectionError("the server closed the connection")
        self.buf += got

    def ask(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._more()
        head, self.buf = self.buf[:end].lower(), self.buf[end + 4 :]
        status = int(head[9:12])
        at = head.find(b"content-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at)
            size = int(head[at + 15 : len(head) if stop < 0 else stop].strip())
            while len(self.buf) < size:
                self._more()
            data, self.buf = self.buf[:size], self.buf[size:]
        else:  # chunked
            data = b""
            while True:
                while (eol := self.buf.find(b"\r\n")) < 0:
                    self._more()
                size = int(self.buf[:eol], 16)
                while len(self.buf) < eol + 2 + size + 2:
                    self._more()
                data += self.buf[eol + 2 : eol + 2 + size]
                self.buf = self.buf[eol + 2 + size + 2 :]
                if size == 0:
                    break
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.sock.close()


def load(
    port: int, path: str, body: Body, members: list[str], clients: int, seconds: float, seed: int
) -> dict[str, float]:
    """``clients`` threads asking for menus for ``seconds``; throughput and percentiles."""
    requests = [Connection.request(port, path, body(m)) for m in members]
    stop_at = [0.0]
    go = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []

    def client(i: int) -> None:
        rng = np.random.default_rng(seed + i)
        conn = Connection(port)
        picks = rng.integers(0, len(members), size=1_000_000)
        try:
            for j in range(50):  # warm-up: connection, caches
                conn.ask(requests[int(picks[j])])
            go.wait()
            mine = latencies[i]
            j = 50
            clock = time.perf_counter
            while True:
                start = clock()
                if start >= stop_at[0]:
                    break
                conn.ask(requests[int(picks[j])])
                mine.append(clock() - start)
                j += 1
        except BaseException as err:
            failures.append(err)
            go.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    stop_at[0] = float("inf")
    for t in threads:
        t.start()
    go.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000.0
    return {
        "rps": lat.size / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "answers": float(lat.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="recommend serve --workers")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument(
        "--no-access-log", action="store_true", help="recommend serve --no-access-log"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="http-bench-"))
    store = f"sqlite:///{work / 'mlruns.db'}"
    env = {"MLFLOW_TRACKING_URI": store, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    os.environ.update(env)
    platform = rc.read_platform(SAMPLE)
    dataset = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    model = rc.EASE().fit(dataset)
    rc.save(model, work / "ease")
    reg = register_artifact(work / "ease", "bench", uri=store)
    print(
        f"model: EASE on the sample ({dataset.n_members:,} members x "
        f"{dataset.n_courses:,} courses), registered as {reg.uri}"
    )
    members = [str(m) for m in model.member_ids_.external_ids]

    ours_port, theirs_port = free_port(), free_port()
    src = os.environ.get("PYTHONPATH", "")
    ours = start(
        [
            str(BIN / "python"),
            "-m",
            "recommend.cli",
            "serve",
            "--model",
            reg.uri,
            "--port",
            str(ours_port),
            "--workers",
            str(args.workers),
            *(["--no-access-log"] if args.no_access_log else []),
        ],
        work / "recommend.log",
        {**env, "PYTHONPATH": src},
    )
    theirs = start(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            reg.uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(theirs_port),
        ],
        work / "mlflow.log",
        env,
    )
    n = args.n

    def ours_body(member: str) -> bytes:
        return json.dumps({"member_id": member, "n": n}).encode()

    def theirs_body(member: str) -> bytes:
        split = {"columns": ["member_id", "n"], "data": [[member, n]]}
        return json.dumps({"dataframe_split": split}).encode()

    try:
        wait_up(f"http://127.0.0.1:{ours_port}/ready", ours, work / "recommend.log")
        wait_up(f"http://127.0.0.1:{theirs_port}/ping", theirs, work / "mlflow.log")
        # Same answers from both, before any timing.
        a = http.client.HTTPConnection("127.0.0.1", ours_port, timeout=60)
        b = http.client.HTTPConnection("127.0.0.1", theirs_port, timeout=60)
        for member in members[:20]:
            mine = [
                r["course_id"] for r in json.loads(ask(a, "/v1/menus", ours_body(member)))["rows"]
            ]
            ref = json.loads(ask(b, "/invocations", theirs_body(member)))["predictions"]
            assert mine == [r["course_id"] for r in ref], member
        a.close()
        b.close()
        print("both servers answer the same menus for 20 members")
        print(
            f"{args.clients} clients, keep-alive, single-member menus n={n}, "
            f"{args.seconds:g} s per server per round; recommend serve --workers {args.workers}"
        )
        print(f"{'round':>5} {'server':<22} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        rows: dict[str, list[dict[str, float]]] = {"recommend": [], "mlflow": []}
        for r in range(args.rounds):
            for name, port, path, body in (
                ("recommend", ours_port, "/v1/menus", ours_body),
                ("mlflow", theirs_port, "/invocations", theirs_body),
            ):
                got = load(port, path, body, members, args.clients, args.seconds, args.seed + r)
                rows[name].append(got)
                label = "recommend serve" if name == "recommend" else "mlflow models serve"
                print(
                    f"{r + 1:>5} {label:<22} {got['rps']:>10.0f} {got['p50_ms']:>8.2f} "
                    f"{got['p99_ms']:>8.2f}",
                    flush=True,
                )
    finally:
        stop(ours)
        stop(theirs)

    def med(name: str, key: str) -> float:
        return float(np.median([x[key] for x in rows[name]]))

    ratios = [o["rps"] / t["rps"] for o, t in zip(rows["recommend"], rows["mlflow"], strict=True)]
    print(
        f"medians: recommend serve {med('recommend', 'rps'):.0f}/s p50 "
        f"{med('recommend', 'p50_ms'):.2f} ms p99 {med('recommend', 'p99_ms'):.2f} ms; "
        f"mlflow models serve {med('mlflow', 'rps'):.0f}/s p50 {med('mlflow', 'p50_ms'):.2f} ms "
        f"p99 {med('mlflow', 'p99_ms'):.2f} ms; ratio per round "
        + ", ".join(f"{x:.1f}x" for x in ratios)
    )
    print(
        f"RESULT rps={med('recommend', 'rps'):.0f} p50_ms={med('recommend', 'p50_ms'):.2f} "
        f"p99_ms={med('recommend', 'p99_ms'):.2f} rps_mlflow={med('mlflow', 'rps'):.0f} "
        f"ratio_vs_mlflow={float(np.median(ratios)):.1f}"
    )


if __name__ == "__main__":
    main()
