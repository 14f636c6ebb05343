"""Reading a process's HTTP listener the way Prometheus and a load balancer do: real HTTP requests, the
exposition parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def aget(url: str, timeout: float = 5.0) -> tuple[int, str]:
    return await asyncio.to_thread(get, url, timeout)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and wanted <= ls)


async def wait_status(url: str, status: int, timeout: float = 30.0) -> str:
    """Poll ``url`` until it answers ``status``; its body."""
    deadline = time.monotonic() + timeout
    last: tuple[int, str] | str = "no answer"
    while time.monotonic() < deadline:
        try:
            last = await aget(url, timeout=2.0)
            if last[0] == status:
                return last[1]
        except OSError as exc:
            last = str(exc)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


async def wait_value(url: str, name: str, expected: float, timeout: float = 30.0, **labels: str) -> str:
    """Scrape until metric ``name`` (with ``labels``) reaches ``expected``; the last exposition."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        status, text = await aget(url)
        if status == 200 and value(text, name, **labels) >= expected:
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name}{labels} did not reach {expected} within {timeout}s; got "
                         f"{value(text, name, **labels)}")
