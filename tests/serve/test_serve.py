"""``recommend serve`` as a real server process on a free port.

Every verb answers the same rows as the Python API on the same artifact; bad requests get
400 with the library's message (404 for unknown resources, 413 for bodies over the
limit); a reload under load loses no request; SIGTERM lets requests in flight finish.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.engine import MenuOptions
from recommend.errors import ConfigError, DataError
from recommend.search import search, suggest

TOKEN = "test-token-0123"
STARTUP_TIMEOUT = 90.0


# ---------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``recommend serve`` process and a small JSON client for it."""

    def __init__(self, model: str, log: Path, workers: int = 1, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "recommend.cli",
                    "serve",
                    "--model",
                    model,
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                    "--max-n",
                    "200",
                    "--max-body-bytes",
                    "200000",
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RECOMMEND_SERVE_TOKEN": TOKEN},
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{log.read_text()}")
            try:
                if self.get("/ready")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server not ready after {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()}")

    def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as answer:
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read(), dict(err.headers)

    def post(
        self, path: str, body: Any, token: str | None = None, raw: bytes | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read()), dict(answer.headers)
        except urllib.error.HTTPError as err:
            text = err.read()
            assert b"Traceback" not in text
            return err.code, json.loads(text), dict(err.headers)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def artifact(small_dataset: rc.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "ease"
    rc.save(rc.EASE(l2=50.0).fit(small_dataset), path)
    return path


@pytest.fixture(scope="module")
def local(artifact: Path) -> rc.Recommender:
    """The artifact as the Python API loads it (what the server serves)."""
    return rc.load(artifact)


@pytest.fixture(scope="module")
def server(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(str(artifact), tmp_path_factory.mktemp("log") / "serve.log", 1)
    try:
        yield srv
    finally:
        srv.stop()


def _members(model: rc.Recommender, k: int) -> list[str]:
    return [str(m) for m in model.member_ids_.external_ids[:k]]


def _same(rows: list[dict[str, Any]], frame: pd.DataFrame) -> None:
    """JSON rows hold exactly the frame's rows (numbers compared as float64, NaN = null)."""
    assert len(rows) == len(frame), (len(rows), len(frame))
    if not rows:
        return
    assert list(rows[0]) == [str(c) for c in frame.columns]
    for column in frame.columns:
        got = [r[str(column)] for r in rows]
        want = frame[column].tolist()
        if frame[column].dtype.kind in "fiu":
            np.testing.assert_array_equal(
                np.array([np.nan if v is None else v for v in got], dtype=float),
                np.asarray(want, dtype=float),
                err_msg=str(column),
            )
        else:
            assert got == [None if isinstance(v, float) and np.isnan(v) else v for v in want], (
                column
            )


# ---------------------------------------------------------------------------- verbs


def test_menus_equal_the_python_api(server: Server, local: rc.Recommender) -> None:
    members = [*_members(local, 5), "nobody"]
    status, body, headers = server.post("/v1/menus", {"member_id": members[0], "n": 7})
    assert status == 200
    assert headers["x-model-version"] == body["model_version"]
    _same(body["rows"], rc.member_menu(local, members[0], n=7))

    options = {"n": 5, "lang": "en", "max_minutes": 30.0, "diversity": 0.3, "exclude": "none"}
    status, body, _ = server.post("/v1/menus", {"member_ids": members, **options})
    assert status == 200
    _same(body["rows"], rc.member_menu(local, members, **options))
    assert {r["member_id"] for r in body["rows"]} == set(members)

    status, body, _ = server.post("/v1/menus", {"member_id": members[1], "max_minutes": "auto"})
    assert status == 200
    frame = rc.member_menu(local, members[1], max_minutes="auto")
    _same(body["rows"], frame)
    assert body["notes"] == frame.attrs["notes"]

    # Option sets the server has seen before (it checks each once) and members without a
    # history (the cold-start routes) answer as the Python API does.
    counts = np.diff(local.history_.rows(np.arange(len(local.member_ids_))).indptr)
    quiet = local.member_ids_.to_external(np.flatnonzero(counts == 0)[:3]).tolist()
    assert quiet
    sets: list[dict[str, object]] = [
        {"n": 3},
        {"n": 4, "lang": "en"},
        {"n": 3},
        {"n": 4, "lang": "en", "with_reasons": False},
        {"n": 4, "diversity": 1},
        {"n": 4, "diversity": 1.0},
    ]
    for member in [members[2], *quiet]:
        for options in sets:
            status, body, _ = server.post("/v1/menus", {"member_id": str(member), **options})
            assert status == 200
            _same(body["rows"], rc.member_menu(local, str(member), **options))


def test_other_verbs_equal_the_python_api(
    server: Server, local: rc.Recommender, small_platform: rc.Platform
) -> None:
    member = _members(local, 12)[11]
    status, body, _ = server.post("/v1/compulsory", {"member_ids": _members(local, 30)})
    assert status == 200
    _same(body["rows"], rc.compulsory_courses(local, _members(local, 30)))

    status, body, _ = server.post("/v1/search", {"member_id": member, "query": "党史 学习", "n": 6})
    assert status == 200
    found = search(local, member, "党史 学习", n=6)
    _same(body["rows"], found)
    assert body["route"] == found.attrs["route"]
    assert body["rows"], "the query matches courses of the small platform"

    status, body, _ = server.post("/v1/suggest", {"member_id": member, "prefix": "dang", "n": 5})
    assert status == 200
    _same(body["rows"], suggest(local, member, "dang", 5))

    course = str(local.course_ids_.external_ids[3])
    status, body, _ = server.post("/v1/similar", {"course_id": course, "n": 6, "lang": "en"})
    assert status == 200
    _same(body["rows"], rc.similar_courses(local, course, n=6, lang="en"))

    status, body, _ = server.post("/v1/lecturers", {"member_id": member, "n": 4, "top": 2})
    assert status == 200
    _same(body["rows"], rc.lecturer_menu(local, member, n=4, top=2))

    org = str(small_platform.members["org_id"].mode()[0])
    request = {"members": org, "n": 6, "strategy": "average", "lang": "en", "lecturers": 2}
    status, body, _ = server.post("/v1/group-menus", request)
    assert status == 200
    group = rc.order_for_group(local, org, n=6, strategy="average", lang="en", lecturers=2)
    _same(body["menu"], group.menu)
    _same(body["members"], group.members)
    assert body["lecturers"] is not None
    _same(body["lecturers"], group.lecturers)
    assert body["notes"] == list(group.notes)
    assert body["coverage"] == pytest.approx(group.coverage)


# ---------------------------------------------------------------------------- errors


def test_bad_requests_get_the_librarys_message(server: Server, local: rc.Recommender) -> None:
    member = _members(local, 1)[0]
    with pytest.raises(ConfigError) as expected:
        MenuOptions(n=0)
    status, body, _ = server.post("/v1/menus", {"member_id": member, "n": 0})
    assert (status, body["error"], body["column"]) == (400, str(expected.value), "n")
    assert body["model_version"]

    with pytest.raises(ConfigError) as expected:
        rc.member_menu(local, member, channel="no such channel")
    status, body, _ = server.post("/v1/menus", {"member_id": member, "channel": "no such channel"})
    assert (status, body["error"], body["column"]) == (400, str(expected.value), "channel")

    status, body, _ = server.post("/v1/menus", {"member_id": member, "n": "ten"})
    assert (status, body["column"]) == (400, "n")
    assert body["error"].startswith("request.n: ")
    status, body, _ = server.post("/v1/menus", {"member_id": member, "nn": 3})
    assert (status, body["column"]) == (400, "nn")
    status, body, _ = server.post("/v1/menus", None, raw=b"{not json")
    assert status == 400 and "not JSON" in body["error"]
    status, body, _ = server.post("/v1/menus", {"member_id": member, "n": 201})
    assert (status, body["column"]) == (400, "n") and "limit of 200" in body["error"]

    # 404: resources the model does not know, with the library's message.
    with pytest.raises(DataError) as expected:
        rc.similar_courses(local, "no-such-course")
    status, body, _ = server.post("/v1/similar", {"course_id": "no-such-course"})
    assert (status, body["error"]) == (404, str(expected.value))
    status, body, _ = server.post("/v1/menus", {"member_id": "nobody", "unknown": "raise"})
    assert status == 404 and "nobody" in body["error"]

    # 413: a body over --max-body-bytes is refused before it is read.
    status, body, _ = server.post("/v1/menus", {"member_ids": ["m"] * 50_000})
    assert status == 413 and "200000 bytes" in body["error"]


def test_events_need_the_token_and_are_folded_in(
    server: Server, artifact: Path, small_dataset: rc.Dataset
) -> None:
    member = str(small_dataset.events["member_id"].iloc[0])
    course = str(small_dataset.events["course_id"].iloc[-1])
    when = str(small_dataset.now - pd.Timedelta(hours=1))
    events = [{"member_id": member, "course_id": course, "event": "complete", "timestamp": when}]
    status, body, headers = server.post("/v1/events", {"events": events})
    assert status == 401 and headers.get("www-authenticate") == "Bearer"
    status, body, _ = server.post("/v1/events", {"events": events}, token="wrong")
    assert status == 401

    bad = [*events, {**events[0], "course_id": "no-such-course"}]
    status, body, _ = server.post("/v1/events", {"events": bad}, token=TOKEN)
    assert status == 400 and body["column"] == "course_id" and "no-such-course" in body["error"]

    mirror = rc.load(artifact)  # the same events folded into a local copy
    expected = rc.ingest(mirror, pd.DataFrame(events))
    status, body, _ = server.post("/v1/events", {"events": events}, token=TOKEN)
    assert status == 200
    assert (body["events"], body["members"]) == (expected.events, expected.members)
    status, menu, _ = server.post("/v1/menus", {"member_id": member, "n": 8})
    _same(menu["rows"], rc.member_menu(mirror, member, n=8))
    assert course not in {r["course_id"] for r in menu["rows"]}


def test_operations_endpoints(server: Server, local: rc.Recommender) -> None:
    assert server.get("/health")[0] == 200
    status, raw, _ = server.get("/ready")
    ready = json.loads(raw)
    assert status == 200 and ready["status"] == "ready"
    server.post("/v1/menus", {"member_id": _members(local, 1)[0]})
    status, raw, headers = server.get("/metrics")
    text = raw.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'recommend_requests_total{endpoint="/v1/menus",method="POST",status="200"' in text
    assert 'recommend_request_duration_seconds_bucket{endpoint="/v1/menus",le="+Inf"' in text
    assert 'recommend_menu_rows_total{route="personal"' in text
    assert f'recommend_model_info{{version="{ready["model_version"]}"' in text
    spec = json.loads(server.get("/openapi.json")[1])
    assert {"/v1/menus", "/v1/group-menus", "/v1/similar", "/v1/events"} <= set(spec["paths"])
    assert "diversity" in spec["components"]["schemas"]["MenuRequest"]["properties"]
    answers = spec["paths"]["/v1/menus"]["post"]["responses"]
    assert "422" not in answers
    assert answers["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    # The access log has no member ids by default.
    log = server.log.read_text()
    assert '"endpoint":"/v1/menus"' in log
    assert _members(local, 1)[0] not in log


# ---------------------------------------------------------------------------- hot swap


def test_reload_under_load_loses_no_request(
    artifact: Path, small_dataset: rc.Dataset, tmp_path: Path
) -> None:
    second = tmp_path / "second"
    rc.save(rc.EASE(l2=5.0).fit(small_dataset), second)
    new_model = rc.load(second)
    srv = Server(str(artifact), tmp_path / "serve.log", 2)
    members = _members(new_model, 40)
    sent = [0] * 4
    answers: list[list[tuple[int, str, str]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def client(i: int) -> None:
        while not stop.is_set():
            member = members[(sent[i] * 7 + i) % len(members)]
            sent[i] += 1
            status, body, _ = srv.post("/v1/menus", {"member_id": member, "n": 5})
            answers[i].append((status, body.get("model_version"), member))

    try:
        old = json.loads(srv.get("/ready")[1])["model_version"]
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        # A long request under way when the swap comes finishes on the model it began on.
        long: list[Any] = []
        heavy = {"member_ids": (members * 25)[:1000], "n": 50, "diversity": 0.5}
        under_way = threading.Thread(target=lambda: long.append(srv.post("/v1/menus", heavy)))
        under_way.start()
        time.sleep(0.05)
        status, body, _ = srv.post("/admin/reload", {"model": str(second)}, token=TOKEN)
        assert status == 200 and body["previous_version"] == old
        new = body["model_version"]
        under_way.join()
        assert long[0][0] == 200 and long[0][1]["model_version"] == old
        assert new != old
        time.sleep(2.0)  # the other worker follows within sync_seconds
        stop.set()
        for t in threads:
            t.join()
        # Every request sent got an answer, every answer was a menu of one of the two.
        done = [a for mine in answers for a in mine]
        assert len(done) == sum(sent) > 50
        assert {status for status, _, _ in done} == {200}
        assert {version for _, version, _ in done} == {old, new}
        # After the swap (and the other worker's follow), only the new version answers.
        tail = [a for mine in answers for a in mine[-5:]]
        assert {version for _, version, _ in tail} == {new}
        status, body, _ = srv.post("/v1/menus", {"member_id": members[0], "n": 5})
        _same(body["rows"], rc.member_menu(new_model, members[0], n=5))
        # A reload without the token is refused; one of a broken folder keeps the model.
        assert srv.post("/admin/reload", {})[0] == 401
        status, body, _ = srv.post("/admin/reload", {"model": str(tmp_path)}, token=TOKEN)
        assert status == 503
        assert json.loads(srv.get("/ready")[1])["model_version"] == new
    finally:
        stop.set()
        assert srv.stop() == 0


# ---------------------------------------------------------------------------- shutdown


def test_sigterm_drains_requests_in_flight(artifact: Path, tmp_path: Path) -> None:
    local = rc.load(artifact)
    srv = Server(str(artifact), tmp_path / "serve.log", 1)
    members = _members(local, 300)
    # A heavy request (1,000 menus of 100 courses with diversity): long enough to be in
    # flight when the signal comes.
    heavy = {"member_ids": (members * 4)[:1000], "n": 100, "diversity": 0.5}
    results: list[tuple[int, Any, float]] = []

    def ask() -> None:
        status, body, _ = srv.post("/v1/menus", heavy)
        results.append((status, body, time.perf_counter()))

    started = time.perf_counter()
    srv.post("/v1/menus", heavy)
    one = time.perf_counter() - started
    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(min(0.2, one / 3))
    signalled = time.perf_counter()
    os.killpg(srv.proc.pid, signal.SIGTERM)
    for t in threads:
        t.join()
    # uvicorn drains, then ends the process by the signal it was sent.
    assert srv.proc.wait(timeout=60) == -signal.SIGTERM
    assert [status for status, _, _ in results] == [200, 200, 200]
    assert max(at for _, _, at in results) > signalled  # answered after the signal
    expected = rc.member_menu(local, heavy["member_ids"], n=100, diversity=0.5)
    for _, body, _ in results:
        assert len(body["rows"]) == len(expected)
    # Stopped: no new connection is accepted.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(srv.url + "/health", timeout=5)
    assert "Waiting for" in srv.log.read_text() or "Shutting down" in srv.log.read_text()


# ---------------------------------------------------------------------------- registry


def test_serves_a_registered_model_and_follows_its_alias_logging_members(
    artifact: Path, small_dataset: rc.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommend.registry import register_artifact

    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    first = register_artifact(artifact, "menus", uri=store)
    srv = Server(first.uri, tmp_path / "serve.log", 1, "--watch", "0.5", "--log-members")
    try:
        local, version = rc.load(artifact), json.loads(srv.get("/ready")[1])["model_version"]
        member = _members(local, 3)[2]
        status, body, _ = srv.post("/v1/menus", {"member_id": member, "n": 6})
        assert status == 200 and body["model_version"] == version
        _same(body["rows"], rc.member_menu(local, member, n=6))

        second = tmp_path / "second"
        rc.save(rc.EASE(l2=5.0).fit(small_dataset), second)
        register_artifact(second, "menus", uri=store)  # moves menus@champion
        deadline = time.monotonic() + 60
        while json.loads(srv.get("/ready")[1])["model_version"] == version:
            assert time.monotonic() < deadline, srv.log.read_text()
            time.sleep(0.3)
        status, body, _ = srv.post("/v1/menus", {"member_id": member, "n": 6})
        assert body["model_version"] != version
        _same(body["rows"], rc.member_menu(rc.load(second), member, n=6))
        assert f'"members":["{member}"]' in srv.log.read_text()  # --log-members
    finally:
        srv.stop()
