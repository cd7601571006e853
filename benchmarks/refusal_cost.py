"""CPU time the server spends per refused and per served request, and the load generator's CPU per request.

CPU time, not wall-clock throughput, so that the figures stay usable on a machine other jobs load.
`skipswitch serve` (the inference-bound workload of benchmarks/overload.py) runs in a subprocess;
a closed loop of keep-alive clients sends back to back for a few seconds while the server's event-loop
process's CPU (utime + stime from /proc/<pid>/stat, its inference child apart) is read before and after:

* as many clients as the queue bound: most requests are served, in batches;
* many clients: most are refused 503 queue_full before their body is read;

CPU per served and per refused request solve CPU = served x a + refused x b over the two bursts.

Then `skipswitch loadgen` at two rates: its marginal CPU per request = the difference of the CPU time its
run_load took over the difference of requests sent (per-run costs, such as encoding the requests, cancel out).

    PYTHONPATH=src python benchmarks/refusal_cost.py [--src other/src]   # --src: measure another tree's code
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from overload import WORKLOADS, prepare  # noqa: E402


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(port: int, raw: bytes, clients: int, seconds: float) -> dict[int, int]:
    """``clients`` keep-alive connections sending ``raw`` back to back; answers counted by status."""
    counts: dict[int, int] = {}
    end = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < end:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return counts


def burst(pid: int, port: int, raw: bytes, clients: int, seconds: float) -> dict:
    before, load = cpu_s(pid), os.getloadavg()[0]
    counts = asyncio.run(closed_loop(port, raw, clients, seconds))
    return {"clients": clients, "counts": counts, "server_cpu_s": cpu_s(pid) - before, "loadavg": load}


# `skipswitch loadgen` with run_load timed in CPU seconds: start-up (imports, the data set) left out.
TIMED_LOADGEN = """
import sys, time
import skipswitch.serve.loadgen as lg
run_load = lg.run_load
async def timed(*args, **kwargs):
    start = time.process_time()
    try:
        return await run_load(*args, **kwargs)
    finally:
        print("run_load CPU s", time.process_time() - start, file=sys.stderr)
lg.run_load = timed
from skipswitch.cli import main
sys.argv[0] = "skipswitch"
main()
"""


def loadgen_cpu(src: Path, url: str, rate: float, seconds: float, floor: float, dataset: str, out: Path) -> tuple[float, int]:
    """(CPU seconds of the generator's run_load, requests it sent)."""
    done = subprocess.run([sys.executable, "-c", TIMED_LOADGEN, "loadgen", "--url", url, "--rate", str(rate), "--duration",
                           str(seconds), "--deadline-ms", "100", "--accuracy-floor", f"{floor:.6f}", "--dataset", dataset,
                           "--out", str(out)], env={**os.environ, "PYTHONPATH": str(src)}, check=True, capture_output=True,
                          text=True)
    cpu = float(done.stderr.split("run_load CPU s")[-1].split()[0])
    return cpu, json.loads(out.read_text())["sent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="Source tree whose server and load generator run.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Seconds per closed-loop burst.")
    parser.add_argument("--clients", type=int, default=64, help="Clients of the overload burst.")
    parser.add_argument("--queue", type=int, default=8, help="The server's queue bound; the first burst has this many "
                        "clients (8: as measured in docs/results/reliability.md).")
    parser.add_argument("--loadgen-rates", default="200,3000", help="Two rates for the generator's marginal CPU ('' skips).")
    parser.add_argument("--loadgen-src", type=Path, action="append", help="Source tree(s) of the load generator, "
                        "measured in turn against the same server [default: --src].")
    parser.add_argument("--skip-bursts", action="store_true", help="Measure the load generator only.")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-overload")
    args = parser.parse_args()
    from skipswitch.data import load_dataset
    from skipswitch.serve.server import free_loopback_port, wait_until_healthy

    dataset, width, _ = WORKLOADS["engine"]
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = prepare(args.work, dataset, width)
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--port", str(port),
                               "--max-batch", "8", "--queue", str(args.queue), "--inference", "process"],
                              env={**os.environ, "PYTHONPATH": str(args.src)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until_healthy(url, server, timeout_s=600)
        import httpx

        info = httpx.get(f"{url}/v1/subnets").json()
        floor = max(s["accuracy"] for s in info["subnets"])
        body = json.dumps({"inputs": load_dataset(dataset, seed=0).test.images[:1].tolist(), "deadline_ms": 100,
                           "accuracy_floor": floor}).encode()
        raw = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        result = {"src": str(args.src), "loadgen": []}
        if not args.skip_bursts:
            import numpy as np

            bursts = [burst(server.pid, port, raw, clients, args.seconds) for clients in (args.queue, args.clients)]
            mix = [[b["counts"].get(200, 0), sum(n for s, n in b["counts"].items() if s != 200)] for b in bursts]
            served_cpu, refusal_cpu = np.linalg.solve(np.array(mix, float), [b["server_cpu_s"] for b in bursts])
            result.update(bursts=bursts, server_cpu_ms_per_served=served_cpu * 1e3,
                          server_cpu_ms_per_refused=refusal_cpu * 1e3)
        rates, secs = [float(r) for r in args.loadgen_rates.split(",") if r], 8.0
        for src in (args.loadgen_src or [args.src]) if rates else []:
            (c1, n1), (c2, n2) = (loadgen_cpu(src, url, r, secs, floor, dataset, args.work / f"refusal-lg-{r:g}.json")
                                  for r in rates)
            result["loadgen"].append({"src": str(src), "rates": rates, "sent": [n1, n2], "cpu_s": [c1, c2],
                                      "cpu_ms_per_request": (c2 - c1) / max(1, n2 - n1) * 1e3,
                                      "loadavg": os.getloadavg()[0]})
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
