"""What the intake's parts cost against the ceiling: pipedial with storage, then the audit answer, switched off.

    .venv/bin/python scripts/bench/ablation.py        # ABLATION_ROUNDS=3, ABLATION_SECONDS=5

Starts, under the same gunicorn settings, the ceiling app, pipedial (intake only: RECEIVER_EMBEDDED_WORKER=0)
and pipedial with parts of its intake switched off (scripts/bench/ablated.py), and drives each with the
bench's wrk in alternating rounds, each round with fresh distinct deliveries. Prints requests per second,
their share of the same round's ceiling, and the CPU time of each server's processes per request.
Not part of `make bench`: it answers "what would reaching 60% of the ceiling take" (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402
from loadgen import deliveries, write_pool  # noqa: E402
from procs import Proc, children, install_cleanup, stop_all  # noqa: E402

VARIANTS = {
    "pipedial": "",
    "pipedial without storage": "storage",
    "pipedial without storage and audit answer": "storage,answer",
}
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children (gunicorn's master and workers)."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def start(b: bench.Bench, name: str, ablate: str) -> tuple[Proc, int]:
    """Start pipedial (intake only) with the named parts switched off (scripts/bench/ablated.py)."""
    script = str(Path(__file__).resolve().parent / "ablated.py")
    return b.pipedial(name.replace(" ", "-"), "http://127.0.0.1:9", command=(script,), RECEIVER_EMBEDDED_WORKER="0",
                      BENCH_ABLATE=ablate)


def main() -> int:
    install_cleanup()
    rounds, seconds = int(os.environ.get("ABLATION_ROUNDS", 3)), int(os.environ.get("ABLATION_SECONDS", 5))
    b = bench.Bench(bench.Plan.from_env())
    servers = {"ceiling": b.ceiling(), **{name: start(b, name, parts) for name, parts in VARIANTS.items()}}
    warm = write_pool(b.tmp / "warm.pool", deliveries("warm", 3000, bench.SECRET))
    for _, port in servers.values():
        b.wrk(port, warm, 2)
    rps: dict[str, list[float]] = {name: [] for name in servers}
    share: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    steal: list[float] = []
    try:
        for i in range(rounds):
            pool = write_pool(b.tmp / f"round{i}.pool", deliveries(f"round{i}", 10_000, bench.SECRET))
            machine = bench.cpu_times()
            for name, (proc, port) in servers.items():
                before = cpu_seconds(proc.pid)
                result = b.wrk(port, pool, seconds)
                cpu[name].append(1000 * (cpu_seconds(proc.pid) - before) / max(1, result["requests"]))
                if result["status_other"]:
                    raise SystemExit(f"{name}: {result['status_other']} answers other than 200/202")
                rps[name].append(result["rps_2xx"])
                share[name].append(100 * result["rps_2xx"] / rps["ceiling"][-1])
                bench.log(f"round {i + 1}: {name}: {result['rps_2xx']} req/s, {share[name][-1]:.1f}% of the ceiling")
            steal.append(bench.steal_share(machine, bench.cpu_times()))
    finally:
        stop_all()
    print(f"\n{rounds} alternating rounds of wrk -c{b.plan.wrk_connections} for {seconds} s, "
          f"{b.plan.workers} workers; intake only; CPU time taken by the host (steal) per round: "
          f"{', '.join(f'{x:.1%}' for x in steal)}\n")
    print("| server | req/s per round | share of that round's ceiling (median) | CPU per request, ms (median)"
          " | the ceiling's CPU per request over its own |")
    print("|---|---|---|---|---|")
    for name in servers:
        by_cpu = statistics.median(cpu["ceiling"]) / statistics.median(cpu[name])
        print(f"| {name} | {', '.join(f'{x:g}' for x in rps[name])}"
              f" | {', '.join(f'{x:.1f}%' for x in share[name])} ({statistics.median(share[name]):.1f}%)"
              f" | {', '.join(f'{x:.2f}' for x in cpu[name])} ({statistics.median(cpu[name]):.2f}) | {by_cpu:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
