"""The configuration watch wakes grctld for the file itself only: a rename over it and a ConfigMap-style
symlink swap count; other files of its directory (a nats-server store, editor files) do not."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from daemonkit import write_atomic

from grctl.daemon.watch import Watcher, link_chain

SETTLE = 0.5  # the watch's debounce (0.2 s) plus a margin before a write is sure to have been seen


async def wait_calls(calls: list[int], at_least: int, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if len(calls) >= at_least:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the watch called back {len(calls)} time(s), expected {at_least}")


def configmap(directory: Path, version: str, text: str) -> None:
    """Kubernetes' layout: grctl.yaml -> ..data/grctl.yaml, ..data -> ..VERSION, swapped by rename."""
    (directory / f"..{version}").mkdir()
    (directory / f"..{version}" / "grctl.yaml").write_text(text)
    (directory / "..data_tmp").symlink_to(f"..{version}")
    os.replace(directory / "..data_tmp", directory / "..data")
    if not (directory / "grctl.yaml").is_symlink():
        (directory / "grctl.yaml").symlink_to("..data/grctl.yaml")


def test_link_chain_names_the_links_a_swap_replaces(tmp_path: Path) -> None:
    configmap(tmp_path, "v1", "a: 1\n")
    config = str(tmp_path / "grctl.yaml")
    assert link_chain(config) == {
        config, str(tmp_path / "..data/grctl.yaml"), str(tmp_path / "..data"), str(tmp_path / "..v1"),
        str(tmp_path / "..v1/grctl.yaml"),
    }
    plain = tmp_path / "plain.yaml"
    assert link_chain(str(plain)) == {str(plain)}


async def test_other_files_in_the_directory_do_not_wake_the_watch(tmp_path: Path) -> None:
    config = tmp_path / "grctl.yaml"
    config.write_text("a: 1\n")
    calls: list[int] = []
    watcher = Watcher(str(config), lambda: calls.append(1), lambda _: None)
    watcher.start(watch_config=True)
    try:
        await asyncio.sleep(SETTLE)
        store = tmp_path / "nats-store" / "jetstream"
        store.mkdir(parents=True)
        for i in range(20):  # what a store and an editor do next to the file
            (store / f"{i}.blk").write_bytes(b"x" * 100)
            (tmp_path / "nats-server.log").open("a").write(f"line {i}\n")
            (tmp_path / ".grctl.yaml.swp").write_text(str(i))
            (tmp_path / "nats-store" / f"meta{i}.inf").write_text(str(i))
            await asyncio.sleep(0.05)
        await asyncio.sleep(SETTLE)
        assert calls == []

        write_atomic(config, "a: 2\n")  # replaced by rename, as editors do
        await wait_calls(calls, 1)
        seen = len(calls)
        config.write_text("a: 3\n")  # written in place
        await wait_calls(calls, seen + 1)
    finally:
        await watcher.stop()


async def test_a_configmap_symlink_swap_wakes_the_watch(tmp_path: Path) -> None:
    configmap(tmp_path, "v1", "a: 1\n")
    config = tmp_path / "grctl.yaml"
    calls: list[int] = []
    watcher = Watcher(str(config), lambda: calls.append(1), lambda _: None)
    watcher.start(watch_config=True)
    try:
        await asyncio.sleep(SETTLE)
        configmap(tmp_path, "v2", "a: 2\n")
        await wait_calls(calls, 1)
        assert config.read_text() == "a: 2\n"
    finally:
        await watcher.stop()
