"""The core's download seen from Python: what its hooks get, and an exception raised in a hook
(Ctrl-C) stopping it at once and coming out as it is, the ``.part`` kept for the next call.

The server is ``test_fetch``'s loopback server (127.0.0.1), in this process: a transfer that
held the GIL could not be served at all.
"""

from __future__ import annotations

import hashlib

import pytest
from test_fetch import LoopbackServer, payload

from deepfaune_rs import _core


class Hooks:
    def __init__(self, stop_after: int | None = None) -> None:
        self.said: list[str] = []
        self.bytes_seen: list[tuple[int, int | None, bool]] = []
        self.stop_after = stop_after

    def say(self, text: str) -> None:
        self.said.append(text)

    def bytes(self, name: str, done: int, total: int | None, end: bool) -> None:
        self.bytes_seen.append((done, total, end))
        if self.stop_after is not None and done >= self.stop_after:
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        raise AssertionError("no retry expected")


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    srv = LoopbackServer(served)
    yield srv
    srv.stop()


def test_hooks_see_lines_and_bytes(server, tmp_path):
    data = server.add("w.bin", payload(3_000_000, seed=21))
    hooks = Hooks()
    url = f"{server.url}/w.bin"
    path, sha, came = _core.fetch_download("w.bin", [url], tmp_path / "m", hooks)
    assert path.read_bytes() == data and sha == hashlib.sha256(data).hexdigest() and came == url
    assert hooks.said == [f"downloading w.bin from {url}"]
    assert hooks.bytes_seen[0] == (0, len(data), False)
    assert hooks.bytes_seen[-2:] == [(len(data), len(data), False), (len(data), len(data), True)]


def test_an_exception_in_a_hook_stops_the_download_and_keeps_the_part(server, tmp_path):
    data = server.add("w.bin", payload(3_000_000, seed=22))
    url = f"{server.url}/w.bin"
    with pytest.raises(KeyboardInterrupt):
        _core.fetch_download("w.bin", [url], tmp_path / "m", Hooks(stop_after=1))
    part = tmp_path / "m" / ".w.bin.part"
    assert 0 < part.stat().st_size < len(data) and not (tmp_path / "m" / "w.bin").exists()
    # The next call continues it.
    hooks = Hooks()
    path, _, _ = _core.fetch_download("w.bin", [url], tmp_path / "m", hooks)
    assert path.read_bytes() == data and hooks.said[0].startswith("resuming w.bin at ")
    assert server.requests[-1]["range"] == f"bytes={part_size(hooks)}-"


def part_size(hooks: Hooks) -> int:
    return hooks.bytes_seen[0][0]
