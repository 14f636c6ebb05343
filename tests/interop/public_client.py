"""A client built with the public grctl SDK 0.3.0: runs one workflow and prints what it saw as JSON.

Usage: public_client.py TYPE WF_ID INPUT_JSON
"""

import asyncio
import json
import sys
from datetime import timedelta

from grctl.client.client import Client
from grctl.nats.connection import Connection


async def main() -> None:
    wf_type, wf_id, raw_input = sys.argv[1], sys.argv[2], sys.argv[3]
    connection = await Connection.connect()
    client = Client(connection)
    out: dict = {}
    try:
        out["result"] = await client.run_workflow(
            type=wf_type, id=wf_id, input=json.loads(raw_input), timeout=timedelta(seconds=30)
        )
    except Exception as exc:  # report, don't hide
        out["error"] = f"{type(exc).__name__}: {exc}"
    if "error" not in out:
        info = await client.describe(wf_id)
        out["status"] = str(info.status)
        history = await client.get_history(wf_id)
        out["kinds"] = [str(e.kind) for e in history]
    print(json.dumps(out), flush=True)
    await connection.close()


asyncio.run(main())
