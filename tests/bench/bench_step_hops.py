"""Where the milliseconds of a step go: three-step workflows (one task per step, support.wf_cluster) one
at a time through one engine and one worker on a file-backed nats-server (``sync_interval: always`` by
default), then every stored message of each run read back with the time nats-server stored it. Prints,
per step and over all runs, the median and p90 of each hop:

- ``dispatch → claim``: the stored dispatch (the previous step's ``step.completed``, or ``run.started``:
  they are one commit with it), the worker's fetch of the task and its claim of the step;
- ``claim → task.started``, ``task.started → task.completed`` (the task body and its record);
- ``task.completed → step.completed``: the step's result report and the engine's commit of it;
- aside, ``dispatch → step.started``: the worker's pick-up report and the engine's commit of
  ``step.started``, which goes on while the step runs;

and, around the run, ``client start → run.started`` and ``run.completed → client result``.

    .venv/bin/python tests/bench/bench_step_hops.py [-n 50] [--sync-interval always|1s|default]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from benchkit import Deployment
from figures import percentile
from ulid import ULID

from grctl.client.client import Client
from grctl.models.history import decode_history
from grctl.nats import subjects
from grctl.nats.connection import Connection
from grctl.nats.direct import StoredMsg, read_subject
from grctl.nats.server import NatsServerProcess

INTERVALS = {"always": "always", "1s": "1000ms", "default": None}


def stored_at(msg: StoredMsg) -> float:
    """The time nats-server stored ``msg`` (RFC 3339 with nanoseconds) as a UNIX time."""
    raw = msg.headers.get("Nats-Time-Stamp", "").rstrip("Z")
    whole, _, fraction = raw.partition(".")
    base = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return base + float(f"0.{fraction or '0'}")


async def one_run(conn: Connection, client: Client, hops: dict[str, list[float]], n: int) -> None:
    wf_id = f"hops-{ULID()}"
    started = time.time()
    handle = await client.start_workflow("Triple", wf_id, {"n": n})
    result = await handle.result(timeout=60)
    finished = time.time()
    assert result == n + 111, result
    info = await client.describe(wf_id)
    run_id = info.id
    history = await read_subject(conn.nc, subjects.history(wf_id, run_id))
    claims = await read_subject(conn.nc, f"{subjects.run_state(wf_id, run_id)}.claim.*")
    events = [(stored_at(m), str(decode_history(m.data).kind)) for m in history]
    at = {kind: [t for t, k in events if k == kind] for kind in {k for _, k in events}}
    claim_times = [stored_at(m) for m in claims]
    hops["client start → run.started"].append(at["run.started"][0] - started)
    dispatched = [at["run.started"][0], *at["step.completed"][:2]]
    for step in range(3):
        marks = [("dispatch", dispatched[step]),
                 ("claim", claim_times[step] if step < len(claim_times) else float("nan")),
                 ("task.started", at["task.started"][step]), ("task.completed", at["task.completed"][step]),
                 ("step.completed", at["step.completed"][step])]
        for (a, ta), (b, tb) in itertools.pairwise(marks):
            hops[f"step {step + 1}: {a} → {b}"].append(tb - ta)
        hops[f"step {step + 1}: whole step"].append(marks[-1][1] - marks[0][1])
        picked_up = at["step.started"][step] - marks[0][1]
        hops[f"step {step + 1}: (aside) dispatch → step.started"].append(picked_up)
    hops["run.completed → client result"].append(finished - at["run.completed"][0])
    hops["whole run (client)"].append(finished - started)


async def bench(runs: int, interval: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="grctl-bench-hops-"))
    server = NatsServerProcess(store_dir=root / "store", sync_interval=INTERVALS[interval]).start()
    deployment = Deployment([server.url], root / "logs").start()
    conn = await Connection.connect([server.url], name="bench-client")
    try:
        client = Client(conn)
        hops: dict[str, list[float]] = defaultdict(list)
        for i in range(5):  # warm up: registration, caches, consumers
            await one_run(conn, client, defaultdict(list), i)
        for i in range(runs):
            await one_run(conn, client, hops, i)
        print(f"sync_interval {interval}: {runs} three-step runs one at a time "
              "(ms, from the times nats-server stored each message)")
        print(f"{'hop':52s} {'p50':>7s} {'p90':>7s}")
        for name, values in hops.items():
            ms = [v * 1000 for v in values]
            print(f"{name:52s} {statistics.median(ms):7.2f} {percentile(ms, 90):7.2f}")
    finally:
        await conn.close()
        deployment.stop()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="runs, one at a time")
    parser.add_argument("--sync-interval", choices=sorted(INTERVALS), default="always")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.sync_interval))


if __name__ == "__main__":
    main()
