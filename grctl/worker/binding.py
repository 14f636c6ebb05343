"""Handler argument binding: payload → keyword arguments after the context
(docs/protocol.md#argument-binding-and-payload-conversion).

- no parameters, or no payload → no arguments (parameter defaults apply);
- one parameter ``name: T`` → ``payload[name]`` when the payload is a map holding ``name``, else the
  whole payload, converted to ``T``;
- several parameters → the payload must be a map; each parameter takes ``payload[name]`` converted to
  its type; a missing key uses the parameter's default, or raises ``KeyError``.
"""

from __future__ import annotations

from typing import Any

from grctl.codec import CodecRegistry, default_codec
from grctl.workflow import HandlerSpec


def bind_arguments(spec: HandlerSpec, payload: Any, codec: CodecRegistry = default_codec) -> dict[str, Any]:
    if not spec.params or payload is None:
        return {}
    if len(spec.params) == 1:
        name, tp = next(iter(spec.params.items()))
        raw = payload[name] if isinstance(payload, dict) and name in payload else payload
        return {name: codec.convert(raw, tp)}
    if not isinstance(payload, dict):
        raise TypeError(f"the handler takes parameters {list(spec.params)} but the payload is a "
                        f"{type(payload).__name__}, not a map")
    bound: dict[str, Any] = {}
    for name, tp in spec.params.items():
        if name in payload:
            bound[name] = codec.convert(payload[name], tp)
        elif name not in spec.defaults:
            raise KeyError(name)
    return bound
