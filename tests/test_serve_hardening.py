"""The HTTP server under hostile input: malformed bodies are one-line 4xx (never 500), bodies are
refused before they are held in memory, deadlines run from arrival, optional bearer-token auth,
API docs off by default, and a drain that answers late arrivals with 503."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from skipswitch.serve.policy import make_policy
from skipswitch.serve.server import MAX_BODY_BYTES

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


def test_query_options_of_a_npy_body_are_validated(client):
    body = _npy(np.zeros((1, 1, 8, 8), np.float32))
    for query, fragment in ((f"deadline_ms={HUGE_INT}", "deadline_ms"), ("deadline_ms=nan", "deadline_ms"),
                            ("accuracy_floor=x", "accuracy_floor"), ("bogus=1", "unknown field")):
        r = client.post(f"/v1/predict?{query}", content=body, headers={"Content-Type": NPY})
        assert r.status_code == 422 and fragment in r.json()["error"], r.text
