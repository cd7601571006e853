"""Overload benchmark -> docs/results/reliability.md.

`skipswitch serve` runs in a subprocess (in-place switching, SlackFit, every request with the
largest subnet's accuracy as its floor, so SlackFit serves the largest subnet and sheds what it
cannot serve in time). Capacity is the server's own profile: max_batch / latency(largest, max_batch)
from /v1/subnets. `skipswitch loadgen` (another subprocess) drives a Poisson trace at 1x, 2x, 5x
and 10x capacity; per level: sent = ok + shed + rejected (+ errors), accepted p99 against the
deadline plus one batch, throughput against capacity, /health latency (polled on fresh
connections), the server's peak RSS, the generator's own CPU time per request. Then a 1 GB
streamed upload's effect on the server's RSS, and the generator's latency against a lean client
(one blocking keep-alive connection, one request at a time) at a light load.

The machine's 2 cores are shared by several engineers, so each level is short (--seconds, 15 by
default) and the load average is recorded with every figure.

    PYTHONPATH=src python benchmarks/overload.py --seconds 15
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skipswitch.io import atomic_write_json, atomic_write_text, markdown_table  # noqa: E402


def prepare(work: Path, base_width: int) -> Path:
    """A supernet on digits with BatchNorm statistics for three subnets (smallest, middle, largest);
    untrained: this benchmark measures the server under load, not accuracy."""
    import torch

    from skipswitch.data import iterate_batches, load_dataset
    from skipswitch.supernet import supernet_for
    from skipswitch.supernet.bn import recalibrate_bn
    from skipswitch.supernet.io import save_supernet

    ckpt = work / "supernet.safetensors"
    if ckpt.is_file():
        return ckpt
    torch.manual_seed(0)
    digits = load_dataset("digits", seed=0)
    supernet = supernet_for("resnet-cifar", num_classes=10, in_channels=1, input_size=8, base_width=base_width,
                            max_depth=3)
    space = supernet.space
    batches = [x for x, _ in iterate_batches(digits.train, 64, shuffle=False)][:4]
    middle = space.config([2, 2, 2], [[0.75] * 2, [0.75] * 2, [0.75] * 2], [0.75, 0.75, 0.75])
    for config in (space.smallest(), middle, space.largest()):
        recalibrate_bn(supernet, config, batches)
    save_supernet(ckpt, supernet.eval(), {"dataset": digits.to_dict()})
    return ckpt


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


class Watch:
    """Polls the server's RSS and /health (fresh connection each time) in a thread."""

    def __init__(self, pid: int, port: int, every_s: float = 0.1):
        self.pid, self.port, self.every_s = pid, port, every_s
        self.peak_rss, self.health_s, self.health_bad = 0, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))
            t = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            self.health_s.append(time.perf_counter() - t)
            self.health_bad += not ok
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else None


def loadgen(url: str, rate: float, seconds: float, deadline_ms: float, floor: float, out: Path) -> tuple[dict, float]:
    """`skipswitch loadgen` in a subprocess; (report, its CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "skipswitch.cli", "loadgen", "--url", url, "--rate", f"{rate:.1f}", "--duration",
           str(seconds), "--deadline-ms", str(deadline_ms), "--accuracy-floor", f"{floor:.6f}", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                          timeout=seconds * 4 + 120)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return json.loads(out.read_text()), cpu


def saturate(port: int, body: bytes, seconds: float, connections: int = 32) -> float:
    """Closed loop: ``connections`` clients sending back to back for ``seconds``; 200 answers per second.
    This is the whole server's capacity (HTTP included), which the engine's profile alone overstates."""
    import asyncio

    from skipswitch.serve.loadgen import KeepAlivePool

    raw = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def run() -> int:
        pool, ok = KeepAlivePool("127.0.0.1", port, connections), 0
        end = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal ok
            while time.perf_counter() < end:
                status, _ = await pool.request(raw)
                ok += status == 200

        await asyncio.gather(*(client() for _ in range(connections)))
        await pool.close()
        return ok

    return asyncio.run(run()) / seconds


def lean_client(port: int, body: bytes, n: int) -> list[float]:
    """Latencies of ``n`` requests sent one at a time over one blocking keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - t)
        time.sleep(0.01)
    conn.close()
    return out


def big_upload(port: int, total: int) -> tuple[str, int]:
    """Stream ``total`` bytes as a chunked .npy body; (the server's status line, bytes sent)."""
    chunk = b"\0" * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < total:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered 413 and closed: the rest is never sent
            pass
        try:
            status = sock.recv(4096).split(b"\r\n")[0].decode()
        except OSError as exc:
            status = f"connection closed ({exc.__class__.__name__})"
    return status, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--levels", default="1,2,5,10")
    parser.add_argument("--deadline-ms", type=float, default=100.0)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--queue", type=int, default=32, help="Server queue bound: about the batches a deadline holds.")
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-overload")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "reliability.md")
    args = parser.parse_args()

    from skipswitch.serve.server import free_loopback_port, wait_until_healthy

    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = prepare(args.work, args.base_width)
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen([sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--port", str(port),
                               "--max-batch", str(args.max_batch), "--queue", str(args.queue)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    levels, upload, overhead = [], {}, {}
    try:
        wait_until_healthy(url, server, timeout_s=600)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/subnets")
        info = json.loads(conn.getresponse().read())
        conn.close()
        largest = max(info["subnets"], key=lambda s: s["accuracy"])
        batch_s = largest["latency_ms"][str(args.max_batch)] / 1e3
        profile_capacity = args.max_batch / batch_s
        floor = largest["accuracy"]
        body = json.dumps({"inputs": [[[[0.0] * 8] * 8]], "deadline_ms": 1000, "accuracy_floor": floor}).encode()
        capacity = saturate(port, body, min(args.seconds, 10))
        print(f"capacity {capacity:.0f} req/s measured, {profile_capacity:.0f} by the engine's profile", flush=True)
        time.sleep(2)
        baseline_rss = rss_bytes(server.pid)

        for level in [float(v) for v in args.levels.split(",")]:
            load_before = os.getloadavg()[0]
            with Watch(server.pid, port) as watch:
                report, cpu = loadgen(url, level * capacity, args.seconds, args.deadline_ms, floor,
                                      args.work / f"level-{level:g}.json")
            levels.append({
                "level": level, "target_rate": level * capacity, "sent": report["sent"],
                "sent_rate": report["sent"] / args.seconds, "ok": report["ok"], "shed": report["shed"],
                "rejected": report["rejected"], "errors": report["errors"], "p50_ms": report["p50_ms"],
                "p99_ms": report["p99_ms"], "throughput": report["throughput"],
                "throughput_vs_capacity": report["throughput"] / capacity,
                "health_p50_ms": pct(watch.health_s, 50) * 1e3, "health_p99_ms": pct(watch.health_s, 99) * 1e3,
                "health_max_ms": max(watch.health_s) * 1e3, "health_failed": watch.health_bad,
                "peak_rss_mib": watch.peak_rss / 2**20, "loadgen_cpu_ms_per_request": cpu / max(1, report["sent"]) * 1e3,
                "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0],
            })
            print(json.dumps(levels[-1]), flush=True)
            time.sleep(2)  # let the queue drain between levels

        # A 1 GB streamed upload: the server reads at most 16 MiB of it.
        before = rss_bytes(server.pid)
        with Watch(server.pid, port, every_s=0.01) as watch:
            status, sent = big_upload(port, 2**30)
        upload = {"status": status, "client_sent_mib": sent / 2**20, "rss_before_mib": before / 2**20,
                  "rss_peak_mib": watch.peak_rss / 2**20, "rss_after_mib": rss_bytes(server.pid) / 2**20,
                  "growth_mib": (watch.peak_rss - before) / 2**20}
        print(json.dumps(upload), flush=True)

        # The generator's own overhead: its p50 against a lean client's at a light load (0.2x capacity).
        lean = lean_client(port, body, 200)
        light, cpu = loadgen(url, 0.2 * capacity, min(args.seconds, 10), 1000, floor, args.work / "light.json")
        overhead = {"lean_p50_ms": pct(lean, 50) * 1e3, "lean_p99_ms": pct(lean, 99) * 1e3,
                    "loadgen_p50_ms": light["p50_ms"], "loadgen_p99_ms": light["p99_ms"],
                    "loadgen_rate": 0.2 * capacity, "loadgen_cpu_ms_per_request": cpu / max(1, light["sent"]) * 1e3,
                    "loadavg": os.getloadavg()[0]}
        print(json.dumps(overhead), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server_out, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server_out, _ = server.communicate()

    data = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "cpus": os.cpu_count(), "seconds_per_level": args.seconds, "deadline_ms": args.deadline_ms,
            "max_batch": args.max_batch, "queue": args.queue, "base_width": args.base_width, "largest": largest["name"],
            "batch_ms": batch_s * 1e3, "capacity": capacity, "profile_capacity": profile_capacity, "baseline_rss_mib": baseline_rss / 2**20,
            "levels": levels, "upload": upload, "overhead": overhead, "server_exit": server.returncode,
            "server_tail": server_out.strip().splitlines()[-1:]}
    atomic_write_json(args.work / "reliability.json", data)
    atomic_write_text(args.out, render(data))
    print(f"wrote {args.out}")


def render(d: dict) -> str:
    deadline, batch = d["deadline_ms"], d["batch_ms"]
    rows = [[f"{lv['level']:g}x", f"{lv['target_rate']:.0f} / {lv['sent_rate']:.0f}", lv["sent"],
             f"{lv['ok']} + {lv['shed']} + {lv['rejected']} + {lv['errors']}",
             "yes" if lv["sent"] == lv["ok"] + lv["shed"] + lv["rejected"] + lv["errors"] else "NO",
             f"{lv['p99_ms']:.1f}" if lv["p99_ms"] is not None else "n/a",
             "met" if lv["p99_ms"] is not None and lv["p99_ms"] <= deadline + batch else "missed",
             f"{lv['throughput']:.0f} ({lv['throughput_vs_capacity']:.0%})",
             f"{lv['health_p50_ms']:.1f} / {lv['health_p99_ms']:.1f} / {lv['health_max_ms']:.1f}",
             f"{lv['peak_rss_mib']:.0f}", f"{lv['loadgen_cpu_ms_per_request']:.2f}",
             f"{lv['loadavg_before']:.1f} -> {lv['loadavg_after']:.1f}"] for lv in d["levels"]]
    u, o = d["upload"], d["overhead"]
    return "\n".join([
        "# Reliability under overload",
        "",
        f"Measured {d['date']} by `benchmarks/overload.py` (Python {d['python']}, {d['cpus']} CPUs; "
        f"the load average is given per level: above {d['cpus']}, other jobs shared the cores). `skipswitch serve` (in-place, SlackFit, "
        f"max batch {d['max_batch']}, queue {d['queue']}: about the batches a deadline holds, so the excess is refused "
        f"before it is parsed) and `skipswitch loadgen` (Poisson arrivals, raw asyncio keep-alive "
        f"connections) run as separate processes on loopback. Every request carries a {deadline:g} ms deadline and "
        f"the largest subnet's accuracy as its floor, so SlackFit serves the largest subnet ({d['largest']}, an "
        f"untrained resnet-cifar supernet of base width {d['base_width']} on digits: accuracy is not measured here) "
        f"and sheds what it cannot serve in time.",
        "",
        f"**Capacity** = the whole server's throughput, measured closed-loop (32 keep-alive clients sending back to "
        f"back, 1 s deadline) = **{d['capacity']:.0f} req/s**. The engine's own profile (max batch / latency of that "
        f"batch = {d['max_batch']} / {batch:.2f} ms) would say {d['profile_capacity']:.0f} req/s: the HTTP layer, "
        f"in the same Python process, is the bottleneck. Each level runs "
        f"{d['seconds_per_level']:g} s (the issue asks 60 s; the load generator caps a run at 100,000 requests).",
        "",
        "Targets: accepted p99 <= deadline + one batch "
        f"({deadline:g} + {batch:.1f} = {deadline + batch:.1f} ms); throughput at overload >= 80% of capacity; "
        "nothing lost (sent = ok + shed + rejected + errors).",
        "",
        markdown_table(["load", "target / sent req/s", "sent", "ok + shed + rejected + errors", "all accounted",
                        "accepted p99 ms", "p99 target", "ok/s (of capacity)", "/health p50 / p99 / max ms",
                        "server peak RSS MiB", "loadgen CPU ms/req", "load avg"], rows),
        "",
        f"Server RSS after start-up: {d['baseline_rss_mib']:.0f} MiB.",
        "",
        "## A 1 GB upload",
        "",
        f"A 1 GiB chunked `.npy` body streamed to `/v1/predict`: the server answered `{u.get('status')}` after the "
        f"client had sent {u.get('client_sent_mib', 0):.0f} MiB; server RSS {u.get('rss_before_mib', 0):.0f} MiB "
        f"before, {u.get('rss_peak_mib', 0):.0f} MiB peak, {u.get('rss_after_mib', 0):.0f} MiB after "
        f"(growth {u.get('growth_mib', 0):.0f} MiB; the body limit is 16 MiB, and at most 64 MiB of bodies are "
        "held at once).",
        "",
        "## The load generator's own overhead",
        "",
        f"At a light load ({o.get('loadgen_rate', 0):.0f} req/s) the generator measured p50 "
        f"{o.get('loadgen_p50_ms', 0):.2f} ms / p99 {o.get('loadgen_p99_ms', 0):.2f} ms; a lean client (one blocking "
        f"keep-alive connection, one request at a time) measured p50 {o.get('lean_p50_ms', 0):.2f} ms / p99 "
        f"{o.get('lean_p99_ms', 0):.2f} ms against the same server (load average {o.get('loadavg', 0):.1f}). "
        f"The generator spent {o.get('loadgen_cpu_ms_per_request', 0):.2f} ms of CPU per request (process start-up and "
        "dataset loading included).",
        "",
        f"Server exit after SIGTERM: code {d['server_exit']} ({' '.join(d['server_tail'])}).",
        "",
        "## Limits of this server design",
        "",
        "- The deadline clock starts at the ASGI front. Time a request spends unread in the kernel's socket buffer "
        "is invisible to the policy; when the HTTP layer itself is overloaded, the client sees accepted requests "
        "finish later than the server's clock says. (Subtracting the event loop's measured lag from the stamp was "
        "tried in two earlier runs, not kept: at 2x one served 118% of capacity with accepted p99 503 ms, the other "
        "0.2%; on this shared machine the run-to-run spread is larger than the effect.)",
        "- Shedding is cheap on the server's side (a full queue is answered 503 before the body is parsed) but every "
        "request still costs one HTTP parse and one response in the single Python event loop that shares the GIL "
        "with the inference thread; past the loop's own capacity it saturates and everything waits.",
        "",
    ])


if __name__ == "__main__":
    main()
