"""Menus over HTTP: ``recommend serve`` against ``mlflow models serve`` of the same model.

An EASE model is trained on the shipped sample (3,000 members, 800 courses), registered in
a temporary MLflow store as ``models:/bench@champion``, and served twice, side by side:

- ``recommend serve --model models:/bench@champion --workers W`` (``POST /v1/menus``);
- ``mlflow models serve -m models:/bench@champion --env-manager local`` (``POST
  /invocations``, MLflow's defaults), the reference.

Each round loads one server and then the other with C concurrent clients (one
keep-alive HTTP/1.1 connection each, all on one event loop of this process) asking for
single-member menus (n=10) of members drawn at random (seeded) for D seconds after a
warm-up; the figures are throughput (answers per second) and latency percentiles per
answer. Both servers must answer the same courses for the same members (checked before
the load). The machine is shared, so the run repeats the rounds and reports medians over
them.

Targets (2 cores, 8 clients): throughput at least 5x MLflow's, p99 under 20 ms. Run::

    python experiments/benchmarks/http.py [--rounds 3] [--seconds 8] [--clients 8] [--workers 2]

The CPU time each server spends per answer (its processes and workers, from the
operating system) is printed too: unlike throughput it hardly depends on what else the
shared machine runs; so is the load generator's own CPU time per request. The last line
reads ``RESULT rps=... p50_ms=... p99_ms=... rps_mlflow=... ratio_vs_mlflow=...
cpu_ratio_vs_mlflow=...`` (medians over the rounds).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: run as a script, its folder comes first on sys.path and
# would hide the standard library's http package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any

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


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) of a server: its process and all its workers."""
    import psutil

    root = psutil.Process(proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def ask(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status}: {data[:300]!r}")
    return data


def request_bytes(port: int, path: str, body: bytes) -> bytes:
    """One HTTP/1.1 keep-alive POST, encoded."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Run:
    """What the clients of one load share: when timing starts and stops, who is done."""

    def __init__(self, clients: int, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        self.waiting = clients  # clients still warming up
        self.running = clients  # clients still asking
        self.seconds = seconds
        self.began = float("inf")  # the clock starts when every client is warm
        self.stop_at = float("inf")
        self.done: asyncio.Future[float] = loop.create_future()

    def fail(self, err: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(err)


class Client(asyncio.Protocol):
    """One keep-alive connection asking for one menu after another, as callbacks of the
    event loop (no coroutine, no stream reader per answer): it reads the status and the
    ``content-length`` of each answer and nothing else, so it costs the shared cores
    little. Latency is from writing a request to having its whole answer."""

    WARM = 50  # answers per connection before the clock starts: connection, caches

    def __init__(self, run: Run, requests: list[bytes], picks: list[int], path: str) -> None:
        self.run, self.requests, self.picks, self.path = run, requests, picks, path
        self.latencies: list[float] = []
        self.buffer = b""
        self.sent = 0
        self.start = 0.0
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport
        self.ask()

    def ask(self) -> None:
        assert self.transport is not None
        request = self.requests[self.picks[self.sent % len(self.picks)]]
        self.sent += 1
        self.start = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            if at < 0:
                self.run.fail(RuntimeError(f"{self.path}: an answer without content-length"))
                return
            stop = head.find(b"\r\n", at)
            total = end + 4 + int(head[at + 15 : stop if stop >= 0 else len(head)].strip())
            if len(self.buffer) < total:
                return
            status = int(head[9:12])
            body, self.buffer = self.buffer[end + 4 : total], self.buffer[total:]
            self.answered(status, body)

    def answered(self, status: int, body: bytes) -> None:
        now = time.perf_counter()
        run = self.run
        if status != 200:
            run.fail(RuntimeError(f"{self.path}: HTTP {status}: {body[:300]!r}"))
            return
        if self.start >= run.began:
            self.latencies.append(now - self.start)
        elif self.sent == self.WARM:
            run.waiting -= 1
            if run.waiting == 0:
                run.began = now
                run.stop_at = now + run.seconds
        if now >= run.stop_at:
            run.running -= 1
            if run.running == 0 and not run.done.done():
                run.done.set_result(now - run.began)
            return
        self.ask()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.run.running and not self.run.done.done():
            self.run.fail(ConnectionError(f"{self.path}: the server closed the connection"))


def load(
    port: int, path: str, body: Body, members: list[str], clients: int, seconds: float, seed: int
) -> dict[str, float]:
    """``clients`` concurrent keep-alive connections asking for menus for ``seconds``;
    throughput and latency percentiles.

    The clients are :class:`Client` protocols on one event loop (uvloop where installed),
    with requests encoded before the clock starts: the load generator shares the cores
    with the servers, so it must cost them as little as possible (threads with
    ``http.client`` cost several times more per request). Answers count from when every
    connection is warm until ``seconds`` later (the requests under way then finish).
    """
    requests = [request_bytes(port, path, body(m)) for m in members]
    rng = np.random.default_rng(seed)
    protocols: list[Client] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        run = Run(clients, seconds, loop)
        for _ in range(clients):
            picks = rng.integers(0, len(members), size=20_000).tolist()
            made = await loop.create_connection(
                lambda p=picks: Client(run, requests, p, path), "127.0.0.1", port
            )
            protocols.append(made[1])
        try:
            return await run.done
        finally:
            for client in protocols:
                if client.transport is not None:
                    client.transport.close()

    cpu = time.process_time()
    elapsed = _run(main())
    client_cpu = time.process_time() - cpu
    lat = np.concatenate([np.asarray(c.latencies) for c in protocols]) * 1000.0
    asked = sum(c.sent for c in protocols)
    return {
        "rps": lat.size / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "answers": float(lat.size),
        # The load generator's own CPU time per request (warm-up included): what it takes
        # from the cores the server shares with it.
        "client_cpu_ms": client_cpu * 1000.0 / max(asked, 1),
    }


def _run(main: Coroutine[Any, Any, float]) -> float:
    """Run the clients on uvloop where it is installed (a cheaper event loop: less of
    the shared cores for the load generator), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


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
        print(
            f"{'round':>5} {'server':<22} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU ms/answer':>12} {'client CPU ms':>13}"
        )
        rows: dict[str, list[dict[str, float]]] = {"recommend": [], "mlflow": []}
        for r in range(args.rounds):
            for name, proc, port, path, body in (
                ("recommend", ours, ours_port, "/v1/menus", ours_body),
                ("mlflow", theirs, theirs_port, "/invocations", theirs_body),
            ):
                before = cpu_seconds(proc)
                got = load(port, path, body, members, args.clients, args.seconds, args.seed + r)
                # CPU per answer (warm-up included in both, a few hundred answers): a
                # figure that does not depend on what else the machine runs.
                got["cpu_ms"] = (cpu_seconds(proc) - before) * 1000.0 / (got["answers"])
                rows[name].append(got)
                label = "recommend serve" if name == "recommend" else "mlflow models serve"
                print(
                    f"{r + 1:>5} {label:<22} {got['rps']:>10.0f} {got['p50_ms']:>8.2f} "
                    f"{got['p99_ms']:>8.2f} {got['cpu_ms']:>12.2f} {got['client_cpu_ms']:>13.2f}",
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
    cpu = med("mlflow", "cpu_ms") / med("recommend", "cpu_ms")
    print(
        f"CPU per answer: recommend serve {med('recommend', 'cpu_ms'):.2f} ms, mlflow models "
        f"serve {med('mlflow', 'cpu_ms'):.2f} ms ({cpu:.1f}x less); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"RESULT rps={med('recommend', 'rps'):.0f} p50_ms={med('recommend', 'p50_ms'):.2f} "
        f"p99_ms={med('recommend', 'p99_ms'):.2f} rps_mlflow={med('mlflow', 'rps'):.0f} "
        f"ratio_vs_mlflow={float(np.median(ratios)):.1f} cpu_ratio_vs_mlflow={cpu:.1f}"
    )


if __name__ == "__main__":
    main()
