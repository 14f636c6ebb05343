"""A client built with the public grctl SDK 0.3.0: describes the latest run of a workflow id and prints
what it saw (run id, status, the history's kinds, the handle's result) as JSON.

Usage: public_describe.py WF_ID
"""

import asyncio
import json
import sys

from grctl.client.client import Client
from grctl.nats.connection import Connection


async def main() -> None:
    wf_id = sys.argv[1]
    connection = await Connection.connect()
    client = Client(connection)
    out: dict = {}
    try:
        info = await client.describe(wf_id)
        out["run_id"], out["status"] = info.id, str(info.status)
        out["kinds"] = [str(e.kind) for e in await client.get_history(wf_id)]
        handle = await client.get_workflow_handle(wf_id)
        out["result"] = await asyncio.wait_for(handle.result(), timeout=20)
    except Exception as exc:  # report, don't hide
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out), flush=True)
    await connection.close()


asyncio.run(main())
