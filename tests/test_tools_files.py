"""The file tools stay inside base_dir: `..` and symlinks out are refused, as error results."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from crewq.config.schema import ToolSpec
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.files import ListFiles, ReadFile, WriteFile


@pytest.fixture
def workspace(tmp_path):
    base = tmp_path / "work"
    base.mkdir()
    (base / "notes.txt").write_text("inside", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside", encoding="utf-8")
    os.symlink(tmp_path / "secret.txt", base / "link.txt")
    os.symlink(tmp_path, base / "up")
    return base


@pytest.fixture
def context(workspace) -> ToolContext:
    return ToolContext(run_id="r", agent_id="a", idempotency_key="k", source_dir=str(workspace.parent))


def spec(name: str) -> ToolSpec:
    return ToolSpec(name=name, base_dir="work")  # relative to the crew file's folder


def test_reads_and_writes_inside(context, workspace):
    assert ReadFile(spec("read_file")).execute({"path": "notes.txt"}, context).content == "inside"
    wrote = WriteFile(spec("write_file")).execute({"path": "out/new.txt", "content": "hello"}, context)
    assert not wrote.is_error and (workspace / "out" / "new.txt").read_text() == "hello"


@pytest.mark.parametrize("path", ["../secret.txt", "link.txt", "up/secret.txt", "/etc/passwd", "out/../../secret.txt"])
def test_reading_out_of_base_dir_is_refused(context, path):
    result = ReadFile(spec("read_file")).execute({"path": path}, context)
    assert result.is_error and "outside the allowed folder" in result.content


@pytest.mark.parametrize("path", ["../escape.txt", "up/escape.txt"])
def test_writing_out_of_base_dir_is_refused(context, workspace, path):
    result = WriteFile(spec("write_file")).execute({"path": path, "content": "x"}, context)
    assert result.is_error and "outside" in result.content
    assert not (workspace.parent / "escape.txt").exists()


def test_listing_hides_links_out_and_refuses_to_climb(context):
    listing = ListFiles(spec("list_files")).execute({"recursive": True}, context).content
    assert "notes.txt" in listing and "secret" not in listing and "link.txt" not in listing
    climbed = ListFiles(spec("list_files")).execute({"path": ".."}, context)
    assert climbed.is_error and "outside" in climbed.content


def test_bad_arguments_are_named(context):
    result = WriteFile(spec("write_file")).execute({"path": "a.txt"}, context)
    assert result.is_error and "'content' is a required property" in result.content
    result = ReadFile(spec("read_file")).execute(["notes.txt"], context)
    assert result.is_error and "must be a JSON object" in result.content


def test_a_symlink_swapped_in_during_calls_never_leads_out(tmp_path):
    """A thread swaps folders and files inside base_dir for symlinks to outside and back, for a few
    seconds, while the tools are called; no call ever reads, writes or lists outside."""
    import threading
    import time

    base, outside = tmp_path / "work", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE", encoding="utf-8")
    (outside / "target.txt").write_text("original", encoding="utf-8")
    (base / "swap").mkdir()
    (base / "swap" / "secret.txt").write_text("inside", encoding="utf-8")
    (base / "f.txt").write_text("inside", encoding="utf-8")
    hold = tmp_path / "hold"
    stop = threading.Event()
    swaps = 0

    def replace_dir(make) -> None:
        """`make()` the swap folder's entry; a folder write_file made meanwhile is removed first."""
        while True:
            try:
                return make()
            except OSError:
                target = base / "swap"
                if target.is_symlink():
                    target.unlink()
                elif target.exists():
                    shutil.rmtree(target, ignore_errors=True)  # (the tool may be writing into it)

    def swapper():
        nonlocal swaps
        while not stop.is_set():
            os.rename(base / "swap", hold)  # the real folder steps aside for a symlink out
            replace_dir(lambda: os.symlink(outside, base / "swap"))
            os.symlink(outside / "secret.txt", tmp_path / "link-tmp")
            os.replace(tmp_path / "link-tmp", base / "f.txt")  # a file becomes a symlink out, atomically
            (tmp_path / "file-tmp").write_text("inside", encoding="utf-8")
            os.replace(tmp_path / "file-tmp", base / "f.txt")
            os.unlink(base / "swap")
            replace_dir(lambda: os.rename(hold, base / "swap"))
            swaps += 1

    context = ToolContext(run_id="r", agent_id="a", idempotency_key="k", source_dir=str(tmp_path))
    read, write, listing = (ReadFile(spec("read_file")), WriteFile(spec("write_file")), ListFiles(spec("list_files")))
    fds_before = len(os.listdir("/proc/self/fd"))
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # let the swapper interleave with the calls as often as it can
    thread = threading.Thread(target=swapper)
    thread.start()
    calls, seen = 0, set()
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for path in ("swap/secret.txt", "f.txt"):
                result = read.execute({"path": path}, context)
                seen.add(result.content if not result.is_error else "error")
                assert "OUTSIDE" not in result.content
            write.execute({"path": "swap/target.txt", "content": "pwned"}, context)
            write.execute({"path": "f.txt", "content": "inside"}, context)
            shown = listing.execute({"path": "swap", "recursive": True}, context).content
            assert "secret.txt" not in shown or "swap/secret.txt" in shown  # never the outside folder's
            assert (outside / "target.txt").read_text() == "original"
            assert (outside / "secret.txt").read_text() == "OUTSIDE"
            calls += 4
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switch)
    print(f"{calls} calls during {swaps} swaps; results seen: {sorted(seen)}")
    assert swaps > 100 and "inside" in seen and "error" in seen  # the race was on, both ways
    assert (outside / "target.txt").read_text() == "original"
    # No descriptor left open (other threads of this process may close theirs meanwhile: <=, not ==).
    assert len(os.listdir("/proc/self/fd")) <= fds_before
