"""What the programs that run an engine hand to its listener: the console's routes, unless the
console is turned off (its web framework and templates are imported only when it is served)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grctl.console.settings import ConsoleSettings
from grctl.engine.endpoints import MountFor
from grctl.engine.engine import Engine

if TYPE_CHECKING:
    from grctl.ops.http import Mount


def console_for(settings: ConsoleSettings) -> MountFor | None:
    if not settings.enabled:
        return None

    def mount_for(engine: Engine) -> Mount:
        from grctl.console.routes import mounter

        return mounter(engine, settings)

    return mount_for
