"""Workflow definitions: a ``Workflow`` collects its handlers through decorators. No I/O happens here.

    order_wf = Workflow(workflow_type="ProcessOrder")

    @order_wf.start(timeout=timedelta(seconds=30))
    async def start(ctx: Context, order_id: str) -> Directive:
        return ctx.next.step(charge)

    @order_wf.step()                    # default step timeout: 10 seconds
    async def charge(ctx: Context) -> Directive: ...

    @order_wf.event(name="approve")     # routed by event name
    async def approve(ctx: Context, by: str) -> Directive: ...
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from grctl import settings
from grctl.models.command import EventDef, WorkflowTypeDef
from grctl.nats.subjects import check_token

DEFAULT_STEP_TIMEOUT = timedelta(seconds=settings.STEP_TIMEOUT)  # the setting, as handlers take it

Handler = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])
Timeout = timedelta | float | int | None


def to_timedelta(value: Timeout) -> timedelta | None:
    """A timeout given as a ``timedelta`` or as seconds; None stays None."""
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


def timeout_ms(value: timedelta | None) -> int:
    """Whole milliseconds of a timeout; 0 for none (the engine's "use the default")."""
    return int(value.total_seconds() * 1000) if value is not None else 0


@dataclass(frozen=True)
class HandlerSpec:
    """The payload parameters of a handler (everything after the context), in signature order."""

    params: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)


def inspect_handler(fn: Callable[..., Any]) -> HandlerSpec:
    """Check a handler's signature: a context first, then annotated parameters; no ``*args``/``**kwargs``."""
    name = getattr(fn, "__name__", repr(fn))
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an annotation that cannot be resolved
        raise TypeError(f"handler {name!r}: cannot resolve type annotations: {exc}") from exc
    items = list(sig.parameters.values())
    if not items:
        raise TypeError(f"handler {name!r} must take the context as its first parameter")
    params: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for param in items[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"handler {name!r} must not use *args or **kwargs")
        if param.name not in hints:
            raise TypeError(f"handler {name!r}: parameter {param.name!r} needs a type annotation")
        params[param.name] = hints[param.name]
        if param.default is not inspect.Parameter.empty:
            defaults[param.name] = param.default
    return HandlerSpec(params=params, defaults=defaults)


@dataclass(frozen=True)
class HandlerConfig:
    handler: Handler
    spec: HandlerSpec
    timeout: timedelta | None = None

    @property
    def name(self) -> str:
        return self.handler.__name__


class Workflow:
    """A workflow type and its handlers: one start handler, named steps, events and queries."""

    def __init__(self, workflow_type: str) -> None:
        check_token("workflow type", workflow_type)
        self._type = workflow_type
        self.start_handler: HandlerConfig | None = None
        self.step_handlers: dict[str, HandlerConfig] = {}
        self.event_handlers: dict[str, HandlerConfig] = {}
        self.query_handlers: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"Workflow({self._type!r})"

    @property
    def workflow_type(self) -> str:
        return self._type

    @property
    def start_step_name(self) -> str | None:
        """Function name of the start handler (what the catalog reports), or None."""
        return self.start_handler.name if self.start_handler else None

    @property
    def step_names(self) -> list[str]:
        return list(self.step_handlers)

    @property
    def query_names(self) -> list[str]:
        return list(self.query_handlers)

    @property
    def event_defs(self) -> list[EventDef]:
        return [EventDef(name=n, timeout_ms=timeout_ms(c.timeout)) for n, c in self.event_handlers.items()]

    def type_def(self) -> WorkflowTypeDef:
        """This workflow's entry in the worker's registration catalog
        (docs/protocol.md#commands-and-api-replies)."""
        start_timeout = self.start_handler.timeout if self.start_handler else None
        return WorkflowTypeDef(
            type=self._type,
            start_step=self.start_step_name or "",
            steps=self.step_names,
            events=self.event_defs,
            queries=self.query_names,
            start_step_timeout_ms=timeout_ms(start_timeout),
        )

    def step_timeout_ms(self, step_name: str) -> int | None:
        """The configured timeout of a step in ms (what ``ctx.next.step`` sends), None when unknown."""
        config = self.step_handlers.get(step_name)
        if config is None or config.timeout is None:
            return None
        return timeout_ms(config.timeout)

    # --- decorators ----------------------------------------------------------------------------------

    def start(self, timeout: Timeout = None) -> Callable[[F], F]:
        """Register the start handler. ``timeout`` is the start step's timeout (engine default if None)."""

        def decorator(fn: F) -> F:
            if self.start_handler is not None:
                raise ValueError(f"workflow {self._type!r} already has a start handler: "
                                 f"{self.start_handler.name}")
            self.start_handler = HandlerConfig(fn, inspect_handler(fn), to_timedelta(timeout))
            return fn

        return decorator

    def step(self, timeout: Timeout = None) -> Callable[[F], F]:
        """Register a step handler under its function name. ``timeout`` defaults to 10 seconds."""

        def decorator(fn: F) -> F:
            name = fn.__name__
            check_token("step name", name)
            if name in self.step_handlers:
                raise ValueError(f"step handler {name!r} already registered")
            step_timeout = to_timedelta(timeout) or DEFAULT_STEP_TIMEOUT
            self.step_handlers[name] = HandlerConfig(fn, inspect_handler(fn), step_timeout)
            return fn

        return decorator

    def event(self, name: str | None = None, timeout: Timeout = None) -> Callable[[F], F]:
        """Register an event handler under ``name`` (default: the function name).

        ``timeout`` bounds the handler's execution once the event is delivered (engine default if None).
        """

        def decorator(fn: F) -> F:
            event_name = name or fn.__name__
            check_token("event name", event_name)
            if event_name in self.event_handlers:
                raise ValueError(f"event {event_name!r} already registered")
            self.event_handlers[event_name] = HandlerConfig(fn, inspect_handler(fn), to_timedelta(timeout))
            return fn

        return decorator

    def query(self, name: str | None = None) -> Callable[[F], F]:
        """Register a query handler (reported in the catalog; queries are not served yet)."""

        def decorator(fn: F) -> F:
            query_name = name or fn.__name__
            if query_name in self.query_handlers:
                raise ValueError(f"query {query_name!r} already registered")
            self.query_handlers[query_name] = fn
            return fn

        return decorator
