"""The HTTP server under hostile input: malformed bodies are one-line 4xx (never 500), bodies are
refused before they are held in memory, deadlines run from arrival, optional bearer-token auth,
API docs off by default, and a drain that answers late arrivals with 503."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from skipswitch.serve.policy import make_policy

from test_serve import _engine, supernet_and_configs  # noqa: F401  (module-scoped fixture)

ONE = torch.zeros(1, 1, 8, 8).tolist()


@pytest.fixture(scope="module")
def engine(supernet_and_configs):  # noqa: F811
    return _engine(supernet_and_configs)


def _app(engine, **kw):
    from skipswitch.serve.server import create_app

    engine.active = None
    return create_app(engine, make_policy("slackfit", engine), capacity=kw.pop("capacity", 8), **kw)


@pytest.fixture()
def client(engine):
    from fastapi.testclient import TestClient

    with TestClient(_app(engine)) as c:
        yield c


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _npy_header(shape, dtype="<f4") -> bytes:
    """A valid .npy header declaring ``shape`` with no data behind it."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((1, 1, 8, 8), np.float32))
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a", "b")
    return buf.getvalue()


JSON, NPY = "application/json", "application/x-npy"
HUGE_INT = "1" * 5001
DEEP = "[" * 100_000 + "]" * 100_000

# (body, content type, expected status, fragment of the one-line error)
MALFORMED = [
    # the five that returned 500
    (_npz(), NPY, 422, "not a valid .npy"),
    (_npy_header((10**11,)), NPY, 413, "declares"),
    (('{"inputs": ' + DEEP + "}").encode(), JSON, 422, "JSON"),
    (('{"inputs": [' + HUGE_INT + "]}").encode(), JSON, 422, "JSON"),
    (('{"inputs": [[[0]]], "deadline_ms": ' + HUGE_INT + "}").encode(), JSON, 422, "JSON"),
    # shapes and values
    (json.dumps({"inputs": []}).encode(), JSON, 422, "no examples"),
    (json.dumps({"inputs": [[]]}).encode(), JSON, 422, "no examples"),
    (_npy(np.zeros((0, 1, 8, 8), np.float32)), NPY, 422, "no examples"),
    (json.dumps({"inputs": [[[True] * 8] * 8]}).encode(), JSON, 422, "number"),
    (json.dumps({"inputs": [[[1.0] * 7 + [False]] * 8]}).encode(), JSON, 422, "number"),
    (_npy(np.zeros((1, 1, 8, 8), bool)), NPY, 422, "dtype bool"),
    (_npy(np.zeros((1, 1, 8, 8), complex)), NPY, 422, "dtype complex"),
    (_npy(np.array(["a"] * 64).reshape(1, 1, 8, 8)), NPY, 422, "dtype <U1"),
    (_npy(np.zeros((1, 1, 8, 8), "datetime64[s]")), NPY, 422, "dtype datetime64"),
    (json.dumps({"inputs": [[["a"] * 8] * 8]}).encode(), JSON, 422, "number"),
    (json.dumps({"inputs": [[[None] * 8] * 8]}).encode(), JSON, 422, "number"),
    (json.dumps({"inputs": [[[{}] * 8] * 8]}).encode(), JSON, 422, "number"),
    (json.dumps({"inputs": [[[1e39] * 8] * 8]}).encode(), JSON, 422, "infinite"),
    (b'{"inputs": [[' + b",".join([b"[" + b",".join([b"Infinity"] * 8) + b"]"] * 8) + b']]}', JSON, 422, "infinite"),
    (json.dumps({"inputs": [[1, 2], [3]]}).encode(), JSON, 422, "rectangular"),
    (json.dumps({"inputs": [1, 2, 3]}).encode(), JSON, 422, "does not match the served input"),
    (json.dumps({"inputs": torch.zeros(64, 1, 8, 8).tolist()}).encode(), JSON, 422, "more than the largest batch"),
    (_npy(np.zeros((1, 3, 8, 8), np.float32)), NPY, 422, "does not match the served input"),
    (_npy(np.zeros((2, 2), np.float32)), NPY, 422, "does not match the served input"),
    (_npy(np.float32(1.0)), NPY, 422, "does not match the served input"),
    # options
    (json.dumps({"inputs": ONE, "deadline_ms": -3}).encode(), JSON, 422, "deadline_ms"),
    (json.dumps({"inputs": ONE, "deadline_ms": 0}).encode(), JSON, 422, "deadline_ms"),
    (json.dumps({"inputs": ONE, "deadline_ms": "soon"}).encode(), JSON, 422, "deadline_ms"),
    (json.dumps({"inputs": ONE, "deadline_ms": True}).encode(), JSON, 422, "deadline_ms"),
    (json.dumps({"inputs": ONE, "accuracy_floor": 2}).encode(), JSON, 422, "accuracy_floor"),
    (json.dumps({"inputs": ONE, "accuracy_floor": 0.999}).encode(), JSON, 422, "above the most accurate"),
    (json.dumps({"inputs": ONE, "subnet": "s9"}).encode(), JSON, 422, "unknown subnet"),
    (json.dumps({"inputs": ONE, "subnet": 3}).encode(), JSON, 422, "subnet"),
    (json.dumps({"inputs": ONE, "subnet": "s0", "accuracy_floor": 0.5}).encode(), JSON, 422, "either subnet"),
    (json.dumps({"inputs": ONE, "extra": 1}).encode(), JSON, 422, "unknown field"),
    # envelopes
    (b"{not json", JSON, 422, "not valid JSON"),
    (b"", JSON, 422, "JSON"),
    (b"[1, 2]", JSON, 422, "must be an object"),
    (b'"inputs"', JSON, 422, "must be an object"),
    (b"null", JSON, 422, "must be an object"),
    (b'{"input": [1]}', JSON, 422, "unknown field"),
    (b'{"inputs": 5}', JSON, 422, "inputs"),
    (b"\xff\xfe\x00{", JSON, 422, "JSON"),
    (json.dumps({"inputs": ONE}).encode(), "", 415, "Content-Type"),
    (json.dumps({"inputs": ONE}).encode(), "text/plain", 415, "Content-Type"),
    (json.dumps({"inputs": ONE}).encode(), "multipart/form-data; boundary=x", 415, "Content-Type"),
    (b"\x93NUMPY garbage", NPY, 422, "not a valid .npy"),
    (b"", NPY, 422, "not a valid .npy"),
    (_zip(), NPY, 422, "not a valid .npy"),
    (_npy(np.zeros((1, 1, 8, 8), np.float32))[:-10], NPY, 422, "declares"),
    (_npy(np.zeros((1, 1, 8, 8), np.float32)) + b"extra", NPY, 422, "declares"),
    (_npy(np.array([{"a": 1}], dtype=object)), NPY, 422, "dtype object"),
    (_npy_header((10**6, 10**6), "<f8"), NPY, 413, "declares"),
    (_npy_header((-1,)), NPY, 422, "not a valid .npy"),
    (json.dumps({"inputs": ONE}).encode(), "application/x-npy", 422, "not a valid .npy"),
]


def test_enough_malformed_bodies():
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize("body,ctype,status,fragment", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_body_is_a_one_line_4xx(client, body, ctype, status, fragment):
    headers = {"Content-Type": ctype} if ctype else {}
    r = client.post("/v1/predict", content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert fragment in error and "\n" not in error, error
    assert client.get("/health").status_code == 200  # and the server is still up


def test_malformed_bodies_keep_server_memory_bounded(client):
    """Every malformed body, three times over after a warm-up pass: the (in-process) server's peak
    RSS stays within 32 MiB of where it was, so no body is expanded (a declared 1e11-element .npy,
    100,000-deep JSON) and nothing accumulates."""
    import threading

    def post_all():
        for body, ctype, status, _ in MALFORMED:
            r = client.post("/v1/predict", content=body, headers={"Content-Type": ctype} if ctype else {})
            assert r.status_code == status, r.text

    post_all()
    baseline, peak, stop = _rss_bytes(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for _ in range(3):
            post_all()
    finally:
        stop.set()
        sampler.join()
    growth = max(peak[0], _rss_bytes()) - baseline
    assert growth < 32 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over {3 * len(MALFORMED)} malformed bodies"


def test_query_options_of_a_npy_body_are_validated(client):
    body = _npy(np.zeros((1, 1, 8, 8), np.float32))
    for query, fragment in ((f"deadline_ms={HUGE_INT}", "deadline_ms"), ("deadline_ms=nan", "deadline_ms"),
                            ("accuracy_floor=x", "accuracy_floor"), ("bogus=1", "unknown field")):
        r = client.post(f"/v1/predict?{query}", content=body, headers={"Content-Type": NPY})
        assert r.status_code == 422 and fragment in r.json()["error"], r.text


# -- auth, docs, deadlines from arrival --------------------------------------------------------------

def test_bearer_token_guards_everything_but_health(engine):
    from fastapi.testclient import TestClient

    with TestClient(_app(engine, token="s3cret-token")) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/v1/subnets").status_code == 401
        r = c.post("/v1/predict", json={"inputs": ONE}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "token" in r.json()["error"]
        ok = {"Authorization": "Bearer s3cret-token"}
        assert c.get("/v1/subnets", headers=ok).status_code == 200
        assert c.post("/v1/predict", json={"inputs": ONE}, headers=ok).status_code == 200


def test_serve_token_from_flag_then_environment_and_warning_beyond_loopback(tmp_path, monkeypatch, capsys):
    from skipswitch.errors import SkipswitchError
    from skipswitch.jobs.serve import ServeJob, bearer_token

    ckpt = tmp_path / "supernet.safetensors"
    monkeypatch.delenv("SKIPSWITCH_TOKEN", raising=False)
    assert bearer_token(ServeJob(checkpoint=ckpt)) is None and capsys.readouterr().err == ""
    assert bearer_token(ServeJob(checkpoint=ckpt, host="0.0.0.0")) is None
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: serving on 0.0.0.0") and "SKIPSWITCH_TOKEN" in warning[0]
    monkeypatch.setenv("SKIPSWITCH_TOKEN", "from-the-environment")
    assert bearer_token(ServeJob(checkpoint=ckpt, host="0.0.0.0")) == "from-the-environment"
    assert bearer_token(ServeJob(checkpoint=ckpt, token="from-the-flag")) == "from-the-flag"  # the flag wins
    assert capsys.readouterr().err == ""  # a token: no warning
    monkeypatch.setenv("SKIPSWITCH_TOKEN", "short")
    with pytest.raises(SkipswitchError, match="SKIPSWITCH_TOKEN is shorter than 8") as refused:
        bearer_token(ServeJob(checkpoint=ckpt))
    assert "short" not in str(refused.value).replace("shorter", "")


def test_one_loopback_notion_for_the_server_warning_and_the_load_generator(tmp_path, monkeypatch, capsys):
    """`serve` warns exactly for the hosts the load generator refuses to load (127.0.0.2 is loopback too)."""
    from skipswitch.errors import SkipswitchError
    from skipswitch.jobs.serve import ServeJob, bearer_token
    from skipswitch.serve.loadgen import check_loopback

    monkeypatch.delenv("SKIPSWITCH_TOKEN", raising=False)
    for host, loopback in (("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("LOCALHOST", True),
                           ("::1", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
                           ("example.com", False)):
        bearer_token(ServeJob(checkpoint=tmp_path / "s.safetensors", host=host))
        warned = capsys.readouterr().err.startswith("warning: serving on")
        url = f"http://{f'[{host}]' if ':' in host else host}:8000"
        try:
            refused = not check_loopback(url)
        except SkipswitchError:
            refused = True
        assert warned == refused == (not loopback), host


def test_the_server_listens_on_ipv6_loopback_and_names_a_bad_host(engine):
    import socket

    import httpx

    from skipswitch.errors import SkipswitchError
    from skipswitch.serve.server import listening_socket, run_in_thread

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with run_in_thread(_app(engine), host="::1") as url:
        assert url.startswith("http://[::1]:")
        assert httpx.get(f"{url}/health").status_code == 200
    with pytest.raises(SkipswitchError, match="cannot listen on 'no-such-host.invalid'"):
        listening_socket("no-such-host.invalid", 0)
    with listening_socket() as taken, pytest.raises(SkipswitchError, match="cannot listen on 127.0.0.1:"):
        taken.listen()  # a listening socket holds its port even against SO_REUSEADDR
        listening_socket("127.0.0.1", taken.getsockname()[1]).close()


def test_a_rejected_token_is_not_echoed():
    from pydantic import ValidationError

    from skipswitch.io import validation_line
    from skipswitch.jobs.serve import ServeJob

    with pytest.raises(ValidationError) as exc:
        ServeJob(checkpoint="x.safetensors", token="hunter2")
    line = validation_line(exc.value)
    assert line.startswith("invalid token=<hidden>") and "hunter2" not in line


def test_api_docs_only_when_asked(engine):
    from fastapi.testclient import TestClient

    with TestClient(_app(engine)) as c:
        assert [c.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404] * 3
    with TestClient(_app(engine, api_docs=True)) as c:
        assert [c.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [200] * 3


def test_deadline_runs_from_arrival_not_from_submission(engine):
    """A request that waited 1 s before reaching the scheduler has no slack left for a 100 ms deadline."""
    import threading
    import time

    from skipswitch.serve.scheduler import Result, Scheduler, Shed

    scheduler = Scheduler(engine, make_policy("slackfit", engine))
    scheduler.start()
    outcomes, done = [], threading.Semaphore(0)

    def record(outcome):
        outcomes.append(outcome)
        done.release()

    try:
        x = torch.zeros(1, 1, 8, 8)
        scheduler.submit(x, deadline_ms=100, done=record, arrival=time.monotonic() - 1.0)
        scheduler.submit(x, deadline_ms=1000, done=record)
        assert done.acquire(timeout=30) and done.acquire(timeout=30)
    finally:
        scheduler.stop()
    assert sorted(type(o).__name__ for o in outcomes) == ["Result", "Shed"]
    assert any(isinstance(o, Shed) for o in outcomes) and any(isinstance(o, Result) for o in outcomes)


def test_inference_process_gives_the_same_logits_and_ends_with_its_block(engine):
    """Forward passes in a forked child: same logits and switch bookkeeping as in-process; the child
    is gone after the block, and the app serves through it."""
    from fastapi.testclient import TestClient

    from skipswitch.serve.worker import inference_process

    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    expected = {name: engine.infer(name, x) for name in ("s0", "s2")}
    switches = engine.switches
    with inference_process(engine) as remote:
        child = remote.process
        assert child.is_alive() and child.pid != os.getpid()
        got = {name: engine.infer(name, x) for name in ("s0", "s2")}
        assert engine.switches == switches + 2 and engine.active.name == "s2"
        with TestClient(_app(engine)) as c:
            r = c.post("/v1/predict", json={"inputs": ONE, "subnet": "s1"})
        assert r.status_code == 200 and r.json()["subnet"] == "s1", r.text
    assert not child.is_alive() and child.exitcode == 0
    assert engine.backend is not remote
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning needs Linux and 2 CPUs")
def test_pinned_inference_process_runs_on_its_cpus_and_the_server_on_the_rest(engine):
    """--inference-cpus: the child runs on the given CPUs, the server's threads on the others while the
    block runs (and as before after it); the answers are the same logits (tolerance 1e-5)."""
    from skipswitch.serve.worker import inference_process

    allowed = frozenset(os.sched_getaffinity(0))
    inference = frozenset({min(allowed)})
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    expected = engine.infer("s1", x)
    with inference_process(engine, inference) as remote:
        torch.testing.assert_close(engine.infer("s1", x), expected, rtol=1e-5, atol=1e-5)
        assert os.sched_getaffinity(remote.process.pid) == inference
        assert os.sched_getaffinity(0) == allowed - inference
    assert os.sched_getaffinity(0) == allowed


def test_pipelined_batches_in_the_inference_process_keep_every_answer(engine):
    """With a full batch waiting, the scheduler sends the next batch to the inference process before it
    takes the last one's outputs: every request still gets its own subnet's logits (tolerance: batched vs
    one-at-a-time convolution, 1e-4), switches included."""
    import threading

    from skipswitch.serve.scheduler import Result, Scheduler
    from skipswitch.serve.worker import inference_process

    names = ["s0"] * 20 + ["s2"] * 20 + ["s1"] * 20
    xs = torch.randn(len(names), 1, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    expected = [engine.infer(name, x) for name, x in zip(names, xs)]
    outcomes, done = {}, threading.Semaphore(0)
    with inference_process(engine) as remote:
        depth = []
        submit = remote.submit
        remote.submit = lambda *a: (depth.append(remote._outstanding), submit(*a))[1]
        scheduler = Scheduler(engine, make_policy("slackfit", engine), capacity=len(names))
        for i, (name, x) in enumerate(zip(names, xs)):  # all queued before the worker starts: full batches wait
            scheduler.submit(x, subnet=name, done=lambda o, i=i: (outcomes.__setitem__(i, o), done.release()))
        scheduler.start()
        try:
            assert all(done.acquire(timeout=60) for _ in names)
        finally:
            scheduler.stop()
    assert max(depth) >= 1, depth  # a batch was sent while another was still in the process
    for i, name in enumerate(names):
        assert isinstance(outcomes[i], Result) and outcomes[i].subnet == name, outcomes[i]
        torch.testing.assert_close(outcomes[i].outputs, expected[i], rtol=1e-4, atol=1e-4)


def test_refusals_are_counted_by_status_and_reason(engine):
    import httpx

    from skipswitch.serve.metrics import parse_prometheus
    from skipswitch.serve.server import run_in_thread

    token = {"Authorization": "Bearer s3cret-token"}
    app = _app(engine, token="s3cret-token")
    with run_in_thread(app) as url:
        assert httpx.post(f"{url}/v1/predict", json={"inputs": ONE}).status_code == 401
        assert httpx.get(f"{url}/v1/subnets").status_code == 401
        declared = _raw_post(url, {**token, "Content-Type": NPY, "Content-Length": str(10**9)}, b"")
        assert declared.startswith(b"HTTP/1.1 413")
        header = httpx.post(f"{url}/v1/predict", content=_npy_header((10**11,)), headers={**token, "Content-Type": NPY})
        assert header.status_code == 413
        assert httpx.post(f"{url}/v1/predict", content=b"x", headers={**token, "Content-Type": "text/plain"}).status_code == 415
        app.state.scheduler.capacity = 0  # every predict now finds the queue full
        full = httpx.post(f"{url}/v1/predict", json={"inputs": ONE}, headers=token)
        assert full.status_code == 503 and full.json()["reason"] == "queue_full"
        samples = parse_prometheus(httpx.get(f"{url}/metrics", headers=token).text)
    refusals = {k: v for k, v in samples.items() if k.startswith("skipswitch_refusals_total{")}
    assert refusals == {'skipswitch_refusals_total{reason="unauthorized",status="401"}': 2.0,
                        'skipswitch_refusals_total{reason="too_large",status="413"}': 2.0,
                        'skipswitch_refusals_total{reason="media_type",status="415"}': 1.0,
                        'skipswitch_refusals_total{reason="queue_full",status="503"}': 1.0}, refusals


# -- a real loopback server: memory, health under load, drain on SIGTERM ----------------------------

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _raw_post(url: str, headers: dict, body: bytes) -> bytes:
    """POST over a plain socket (the client's HTTP library would refuse a Content-Length it does not send)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parts.netloc, **headers}.items())
        sock.sendall(f"POST /v1/predict HTTP/1.1\r\n{head}\r\n".encode() + body)
        return sock.recv(65536)


def _timed_get(url: str) -> tuple[int, float]:
    """Status and seconds of a GET on a fresh connection of its own (not queued behind the flood)."""
    import http.client
    import time
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    t = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path)
    status = conn.getresponse().status
    conn.close()
    return status, time.perf_counter() - t


def test_large_uploads_are_refused_with_bounded_memory(engine):
    """A 200 MB streamed (chunked) body and a 1 GB Content-Length are refused with 413; the
    server's memory grows by less than 64 MiB (bodies are read only up to 16 MiB)."""
    import threading

    import httpx

    from skipswitch.serve.server import run_in_thread

    chunk = b"\0" * (1 << 20)
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(0.005)

    with run_in_thread(_app(engine)) as url:
        baseline = _rss_bytes()
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            try:
                streamed = httpx.post(f"{url}/v1/predict", content=(chunk for _ in range(200)),
                                      headers={"Content-Type": NPY}, timeout=60).status_code
            except httpx.HTTPError:  # the server answered 413 and closed while the client still sent
                streamed = 413
            declared = _raw_post(url, {"Content-Type": NPY, "Content-Length": str(10**9)}, chunk)
        finally:
            stop.set()
            sampler.join()
        assert streamed == 413 and declared.startswith(b"HTTP/1.1 413"), declared[:200]
        assert httpx.get(f"{url}/health").status_code == 200
    growth = peak[0] - baseline
    assert growth < 64 * 2**20, f"RSS grew by {growth / 2**20:.0f} MiB"


def test_concurrent_large_uploads_are_capped_at_64_mib_held(engine):
    """Ten 15 MiB uploads (each under the 16 MiB limit) held open at once: at most 64 MiB of bodies
    are buffered, so the server refuses some with 503 "busy" (counted; the client may see only the
    connection's reset, as the rest of its body is left unread) and reads the others in full."""
    import socket
    import threading
    import time
    from urllib.parse import urlsplit

    import httpx

    from skipswitch.serve.server import MAX_BODY_BYTES, MAX_BUFFERED_BYTES, run_in_thread

    size, uploads = 15 * 2**20, 10
    body = _npy_header((size // 256, 1, 8, 8)) + b"\0" * size
    first = len(body) - 2**20  # sent at once; the last MiB 2 s later, so that the uploads overlap
    # what the kernel's socket buffers may hold unread cannot hide the excess
    assert size < MAX_BODY_BYTES and uploads * first > 2 * MAX_BUFFERED_BYTES
    answers = [b""] * uploads

    def upload(i: int, port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            try:
                sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {NPY}\r\n"
                             f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:first])
                time.sleep(2)
                sock.sendall(body[first:])
            except OSError:  # refused: the server answered 503 and closed while this client still sent
                pass
            try:
                while chunk := sock.recv(65536):  # the answer, up to the server's close
                    answers[i] += chunk
            except ConnectionResetError:  # refused, and the kernel's reset overtook the 503 already sent
                pass

    app = _app(engine)
    with run_in_thread(app) as url:
        threads = [threading.Thread(target=upload, args=(i, urlsplit(url).port)) for i in range(uploads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert httpx.get(f"{url}/health").status_code == 200
    statuses = [a.split(b" ", 2)[1].decode() if a.startswith(b"HTTP/1.1") else "no answer" for a in answers]
    read = statuses.count("422")  # read in full: too many examples for one batch
    assert set(statuses) <= {"422", "503", "no answer"} and 1 <= read < uploads, statuses
    assert all(b'"busy"' in a for a in answers if b" 503 " in a)
    assert app.state.scheduler.metrics.value("refusals_total", status="503", reason="busy") == uploads - read


def test_health_stays_prompt_and_drain_answers_late_arrivals_with_503(engine):
    import asyncio
    import signal

    import httpx

    from skipswitch.serve.server import run_in_thread

    app = _app(engine, capacity=16)
    with run_in_thread(app) as url:
        async def scenario():
            payload = {"inputs": ONE, "deadline_ms": 50}
            limits = httpx.Limits(max_connections=300)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                flood = [asyncio.create_task(http.post("/v1/predict", json=payload)) for _ in range(200)]
                await asyncio.sleep(0.05)
                health = await asyncio.to_thread(_timed_get, f"{url}/health")
                flood = await asyncio.gather(*flood)
                queued = [asyncio.create_task(http.post("/v1/predict", json={"inputs": ONE})) for _ in range(8)]
                while not app.state.scheduler.queue and not any(q.done() for q in queued):
                    await asyncio.sleep(0.001)
                app.state.uvicorn_server.handle_exit(signal.SIGTERM, None)  # what the signal does
                while app.state.scheduler.accepting:
                    await asyncio.sleep(0.001)
                late = await http.post("/v1/predict", json={"inputs": ONE})
                return health, flood, await asyncio.gather(*queued), late

        (health, health_s), flood, queued, late = asyncio.run(scenario())
    assert health == 200 and health_s < 0.5, health_s
    assert {r.status_code for r in flood} <= {200, 503}
    # accepted before the signal: served; arriving after it: 503 shutting_down, never a closed connection
    assert 200 in [r.status_code for r in queued]
    assert all(r.status_code == 200 or r.json()["reason"] == "shutting_down" for r in queued)
    assert late.status_code == 503 and late.json()["reason"] == "shutting_down"
    assert app.state.scheduler.metrics.value("refusals_total", status="503", reason="shutting_down") >= 1


def _serve_process(supernet_and_configs, tmp_path, *args: str, **env: str):  # noqa: F811
    """`skipswitch serve` of the fixture supernet in a child process of its own process group
    (stdout and stderr piped); (the Popen, its URL) once /health answers."""
    import subprocess
    import sys

    from skipswitch.serve.server import free_loopback_port, wait_until_healthy
    from skipswitch.supernet.io import save_supernet

    from test_serve import _write_pareto

    supernet, configs = supernet_and_configs
    ckpt = tmp_path / "supernet.safetensors"
    save_supernet(ckpt, supernet, {"dataset": {"name": "digits", "seed": 0}})
    pareto = _write_pareto(tmp_path / "pareto.json", supernet, configs, [0.6, 0.7, 0.8])
    port = free_loopback_port()
    server = subprocess.Popen([sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--pareto", str(pareto),
                               "--port", str(port), *args], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, timeout_s=120)
    except BaseException:
        server.kill()
        raise
    return server, url


def _children(pid: int) -> list[str]:
    import subprocess

    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def test_sigterm_stops_serve_cleanly_and_removes_the_temporal_directory(supernet_and_configs, tmp_path):  # noqa: F811
    import signal

    from test_shutdown import _left_in_group

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    server, _ = _serve_process(supernet_and_configs, tmp_path, "--max-batch", "4", "--mode", "temporal",
                               "--inference", "process", TMPDIR=str(scratch))
    try:
        assert [p.name for p in scratch.iterdir()][0].startswith("skipswitch-temporal-")
        assert len(_children(server.pid)) == 1  # the inference process
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0, out
    assert "stopped: queue drained" in out and "Traceback" not in out
    assert not list(scratch.iterdir())
    assert not _left_in_group(server.pid)


def test_inference_process_exits_when_the_server_is_killed(supernet_and_configs, tmp_path):  # noqa: F811
    """kill -9 of `skipswitch serve` gives its inference process no chance to be stopped: it exits by
    itself when its pipe closes."""
    import signal

    from test_shutdown import _left_in_group

    server, _ = _serve_process(supernet_and_configs, tmp_path, "--max-batch", "2", "--inference", "process")
    try:
        assert len(_children(server.pid)) == 1
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert not _left_in_group(server.pid)
    finally:
        server.kill()
        try:
            os.killpg(server.pid, signal.SIGKILL)  # the group this test started, should the assertion fail
        except ProcessLookupError:
            pass


# -- the load generator ---------------------------------------------------------------------------

def test_loadgen_accounts_for_every_request_and_shows_the_servers_reason(engine, digits):
    import asyncio

    from skipswitch.serve.loadgen import make_trace, run_load
    from skipswitch.serve.server import run_in_thread

    x = digits.test.images.numpy()
    with run_in_thread(_app(engine, capacity=64)) as url:
        good = asyncio.run(run_load(url, make_trace("poisson", 200, 1.0, seed=1), x, digits.test.labels.numpy(),
                                    deadline_ms=200))
        bad = asyncio.run(run_load(url, [0.0, 0.01, 0.02], x, deadline_ms=None, options={"subnet": "s9"}))
    assert good.sent > 150 and good.ok + good.shed + good.rejected + good.errors == good.sent
    assert good.errors == 0 and good.ok > 0 and good.p99_ms is not None
    assert -1 < good.send_lag_p99_ms < 250  # the generator kept to its trace
    # the server's own p99 (arrival stamp to outputs) is inside the client's (send to answer read); 1 ms for clocks
    assert good.server_p99_ms is not None and 0 < good.server_p99_ms <= good.p99_ms + 1.0
    assert bad.errors == 3 and "422: unknown subnet 's9'" in next(iter(bad.error_reasons)), bad.error_reasons
    assert "unknown subnet 's9'" in bad.summary()


def test_keepalive_pool_resends_once_when_the_server_closed_an_idle_connection():
    import asyncio

    from skipswitch.serve.loadgen import KeepAlivePool

    async def run():
        answered = []

        async def one_answer_per_connection(reader, writer):  # then closes, without "Connection: close"
            if await reader.readuntil(b"\r\n\r\n"):
                answered.append(1)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        async def no_answer(reader, writer):
            writer.close()

        server = await asyncio.start_server(one_answer_per_connection, "127.0.0.1", 0)
        mute = await asyncio.start_server(no_answer, "127.0.0.1", 0)
        pool = KeepAlivePool("127.0.0.1", server.sockets[0].getsockname()[1], size=1)
        raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        results = [await pool.request(raw) for _ in range(3)]
        with pytest.raises(ConnectionResetError):  # a fresh connection closed unanswered is an error, not resent
            await KeepAlivePool("127.0.0.1", mute.sockets[0].getsockname()[1]).request(raw)
        await pool.close()
        server.close(), mute.close()
        return results, len(answered), pool.opened

    results, answered, opened = asyncio.run(run())
    assert results == [(200, b"ok")] * 3 and answered == 3 and opened == 1


def _read_answer(stream) -> tuple[int, bytes]:
    """(status, body) of one Content-Length answer read from a socket's buffered file."""
    status, length = int(stream.readline().split()[1]), 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, stream.read(length)


def test_the_protocol_refuses_before_the_request_cycle_and_keeps_the_connection(engine):
    """With uvicorn's httptools protocol, a predict the intake cannot admit is answered by the connection's
    protocol (no ASGI cycle: Intake's own refusal is never called), its body is discarded, and the same
    keep-alive connection then serves /health, pipelined refusals and an admitted predict."""
    import socket
    from urllib.parse import urlsplit

    from skipswitch.serve.metrics import parse_prometheus
    from skipswitch.serve.server import run_in_thread

    app = _app(engine)
    asgi_refusals = []
    refusal = app.intake.queue_full

    async def recorded(scope, receive, send):
        asgi_refusals.append(scope["path"])
        await refusal(scope, receive, send)

    body = json.dumps({"inputs": ONE, "deadline_ms": 1000}).encode()
    post = (f"POST /v1/predict?x=1 HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with run_in_thread(app) as url:
        assert isinstance(app.state.uvicorn_server.config.http, type), "the installed uvicorn lacks the fast path"
        app.intake.queue_full = recorded
        scheduler = app.state.scheduler
        capacity, scheduler.capacity = scheduler.capacity, 0  # every predict now finds the queue full
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock, sock.makefile("rb") as answers:
            sock.sendall(post)  # the headers alone: refused before the body is sent
            status, answer = _read_answer(answers)
            assert status == 503 and json.loads(answer)["reason"] == "queue_full", answer
            sock.sendall(body + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")  # the late body is dropped
            status, answer = _read_answer(answers)
            assert status == 200 and json.loads(answer)["status"] == "ok", answer
            sock.sendall((post + body) * 2)  # two pipelined predicts in one write
            assert [_read_answer(answers)[0] for _ in range(2)] == [503, 503]
            scheduler.capacity, app.intake.tokens = capacity, float(capacity)  # and a full token bucket
            sock.sendall(post + body)
            status, answer = _read_answer(answers)
            assert status == 200 and json.loads(answer)["deadline_met"], answer
        import httpx

        samples = parse_prometheus(httpx.get(f"{url}/metrics").text)
    assert asgi_refusals == []
    assert samples['skipswitch_requests_total{outcome="rejected"}'] == 3
    assert samples['skipswitch_refusals_total{reason="queue_full",status="503"}'] == 3
    assert samples['skipswitch_requests_total{outcome="ok"}'] == 1


def test_without_the_protocol_intake_refuses_the_same_way(engine, monkeypatch):
    """The ASGI path (no httptools protocol: another server, or a uvicorn whose request cycle differs) answers
    a predict it cannot admit with the same 503, and the protocol is not used when uvicorn's cycle differs."""
    from fastapi.testclient import TestClient
    from uvicorn.protocols.http import httptools_impl

    from skipswitch.serve.server import intake_protocol

    app = _app(engine)
    with TestClient(app) as client:
        app.state.scheduler.capacity = 0
        refused = client.post("/v1/predict", json={"inputs": ONE})
    assert refused.status_code == 503 and refused.content == app.intake.queue_full.body
    assert isinstance(intake_protocol(app.intake), type)

    class OtherCycle:  # a uvicorn release whose request cycle takes other arguments
        def __init__(self, scope, transport):
            pass

    monkeypatch.setattr(httptools_impl, "RequestResponseCycle", OtherCycle)
    assert intake_protocol(app.intake) == "auto"
