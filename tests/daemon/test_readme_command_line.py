"""The README's "Command line" section as written: ``grctld -c grctl.yaml.example`` (moved to free
ports), then ``grctl run``/``start``/``describe``/``history --follow``/``list`` against the demo
workflow; and the web console whose URL grctld prints, listing the demo's runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonkit import ROOT, Daemon, daemon_env
from support.scrape import get

from grctl.nats.server import free_port

pytestmark = pytest.mark.timeout(120)


def grctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grctl", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


def test_the_readme_commands_against_the_example_config(tmp_path: Path,
                                                        subprocess_env: dict[str, str]) -> None:
    port, console_port = free_port(), free_port()
    example = (ROOT / "grctl.yaml.example").read_text()
    assert "    port: 4225\n" in example and "    listen: 127.0.0.1:9465\n" in example
    config = tmp_path / "grctl.yaml"
    config.write_text(example.replace("    port: 4225\n", f"    port: {port}\n")
                      .replace("    listen: 127.0.0.1:9465\n", f"    listen: 127.0.0.1:{console_port}\n"))
    env = daemon_env(subprocess_env, tmp_path)
    d = Daemon(config, env).start()
    try:
        d.ready_pids(1)
        cli = dict(env, GRCTL_NATS_SERVERS=f"nats://127.0.0.1:{port}")
        done = grctl(cli, "run", "Greeting", "--id", "greet-1", "--input", '{"name": "Ada"}')
        assert (done.returncode, done.stdout) == (0, '"Hello, Ada!"\n'), done
        done = grctl(cli, "start", "Greeting", "--id", "greet-2", "--input", '{"name": "Grace"}')
        assert done.returncode == 0, done
        assert done.stdout.startswith("Started workflow greet-2 (Greeting), run "), done
        done = grctl(cli, "history", "greet-2", "--follow")  # ends with the run
        assert done.returncode == 0, done
        assert "run.completed" in done.stdout.splitlines()[-1]
        assert 'result="Hello, Grace!"' in done.stdout.splitlines()[-1]
        done = grctl(cli, "describe", "greet-2")
        assert "Status:          completed" in done.stdout, done
        for _ in range(50):  # the engine's run index follows the stream a moment after each commit
            done = grctl(cli, "list", "--status", "completed", "--since", "1h")
            if [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["greet-2", "greet-1"]:
                break
            time.sleep(0.1)
        assert done.returncode == 0 and done.stdout.startswith("WORKFLOW ID"), done
        assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["greet-2", "greet-1"], done
        url = d.wait_for(r"web console: (http://\S+)").group(1)
        assert url == f"http://127.0.0.1:{console_port}/"
        status, page = get(url)
        assert status == 200 and page.index(">greet-2</a>") < page.index(">greet-1</a>"), page
    finally:
        d.stop()
