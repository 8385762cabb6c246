"""The file tools stay inside base_dir: `..` and symlinks out are refused, as error results."""

from __future__ import annotations

import os

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
