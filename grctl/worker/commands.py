"""Engine → worker commands on ``grctl_worker_cmd.{worker_id}`` (docs/protocol.md#worker-commands).
Every request gets a valid msgpack reply ``{success: bool}``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from grctl.models.command import APIResponse, CommandKind, decode_command, encode_response
from grctl.nats import subjects
from grctl.nats.connection import Connection

log = logging.getLogger("grctl.worker")


class CommandServer:
    def __init__(self, connection: Connection, worker_id: str, terminate_run: Callable[[str], bool]) -> None:
        self._connection = connection
        self._worker_id = worker_id
        self._terminate_run = terminate_run
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._connection.nc.subscribe(subjects.worker_cmd(self._worker_id), cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing the command subject failed", exc_info=True)

    async def _on_msg(self, msg: Msg) -> None:
        success = False
        try:
            cmd = decode_command(msg.data)
            if cmd.kind == CommandKind.worker_terminate_run:
                success = self._terminate_run(cmd.msg.run_id)
                log.info("engine asked to terminate run %s: %s", cmd.msg.run_id,
                         "cancelled" if success else "not running here")
            else:
                log.warning("unsupported worker command %s", cmd.kind)
        except Exception as exc:
            log.warning("undecodable worker command on %s: %s", msg.subject, exc)
        if msg.reply:
            try:
                await msg.respond(encode_response(APIResponse(success=success)))
            except Exception:
                log.debug("replying to a worker command failed", exc_info=True)
