"""File names that are not UTF-8 or hold a newline: escaped in log lines (notifications: test_control),
stored and read back exactly by the SQLite job store, and a log file (owner-only) that never breaks on them."""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from midframe.daemon.store.dbtext import from_db, to_db
from midframe.daemon.store.sqlite import SqliteJobStore
from midframe.log import LOG_FILE_NAME, configure_logging, escape

NOT_UTF8 = os.fsdecode(b"caf\xe9 \xff.mp4")                    # as os.listdir hands it over


@pytest.mark.parametrize(("text", "shown"), [
    ("plain name.mp4", "plain name.mp4"),
    ("two\nlines | ERROR | forged.mp4", "two\\nlines | ERROR | forged.mp4"),
    ("cr\rtab\tbell\x07esc\x1b[31m", "cr\\rtab\\tbell\\x07esc\\x1b[31m"),
    (NOT_UTF8, "caf\\xe9 \\xff.mp4"),
    ("sep\u2028par\u2029next\x85", "sep\\u2028par\\u2029next\\x85"),
    ("evil\u202egpj.mp4", "evil\\u202egpj.mp4"),
    ("C:\\Users\\ana\\été 日本.mkv", "C:\\Users\\ana\\été 日本.mkv"),
    ("\ud800lone", "\\ud800lone"),
])
def test_escape_gives_one_encodable_line(text, shown):
    assert escape(text) == shown
    escape(text).encode("utf-8")


@pytest.fixture
def configured(tmp_path):
    yield tmp_path / "logs"
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(sys.stderr)


def test_log_lines_are_escaped_and_the_file_sink_survives(configured, capsys):
    configure_logging(level="INFO", log_dir=configured)
    logger.info("job 1 queued: {}", "x\n12:00:00 | ERROR   | forged")
    logger.info("job 2 queued: {}", NOT_UTF8)
    try:
        raise OSError(2, "No such file", NOT_UTF8)
    except OSError:
        logger.exception("job 3: {} vanished", NOT_UTF8)
    logger.info("still logging")
    logger.remove()
    text = (configured / LOG_FILE_NAME).read_bytes().decode("utf-8")  # valid UTF-8 throughout
    lines = text.splitlines()
    assert lines[0].endswith("job 1 queued: x\\n12:00:00 | ERROR   | forged")
    assert lines[1].endswith("job 2 queued: caf\\xe9 \\xff.mp4")
    assert any(line.endswith("job 3: caf\\xe9 \\xff.mp4 vanished") for line in lines)
    assert lines[-1].endswith("still logging")
    assert "Logging error" not in capsys.readouterr().err
    assert stat.S_IMODE((configured / LOG_FILE_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE(configured.stat().st_mode) == 0o700


def _open_with(token: str, name: str) -> None:
    raise PermissionError(13, "Permission denied")  # the message holds neither value


def _job_with(token: str, name: str) -> None:
    config = {"token": token}
    _open_with(config["token"], name)


def test_a_traceback_in_the_log_never_shows_local_values(configured, capsys):
    """loguru's ``diagnose`` would print each variable of a traceback's lines, with its value."""
    configure_logging(level="INFO", log_dir=configured)
    token = secrets.token_hex(16)  # like the control API's token, and a user's file name
    name = f"private-{secrets.token_hex(8)}.mp4"
    try:
        _job_with(token, name)
    except PermissionError as exc:
        logger.opt(exception=exc).error("job 4: internal error")
    logger.remove()
    text = (configured / LOG_FILE_NAME).read_text(encoding="utf-8")
    err = capsys.readouterr().err
    for shown in (text, err):
        assert "job 4: internal error" in shown and "PermissionError: [Errno 13] Permission denied" in shown
        assert '_open_with(config["token"], name)' in shown  # the traceback and its code lines are there
        assert token not in shown and name not in shown, shown


def test_an_old_world_readable_log_is_made_private(configured):
    configured.mkdir()
    old = configured / LOG_FILE_NAME
    old.write_text("from before\n")
    old.chmod(0o644)
    configure_logging(log_dir=configured, stderr=False)
    logger.remove()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))
def test_db_text_round_trips_every_str(text):
    stored = to_db(text)
    stored.encode("utf-8")                                       # SQLite can take it
    assert from_db(stored) == text


def test_db_text_leaves_ordinary_text_as_it_is():
    for text in ("", "a.mp4", "/home/ana/Vidéos/日本.mkv", "C:\\x\\y.mov"):
        assert to_db(text) == text


def test_the_job_store_keeps_names_that_are_not_utf8(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    inbox = Path(os.fsdecode(b"/in\xfcbox"))
    store = SqliteJobStore(path)
    job = store.add(inbox / NOT_UTF8, relpath=NOT_UTF8, size=5, mtime=1.0, fingerprint="f")
    store.claim()
    store.finish(job.id, "failed", error=f"{inbox / NOT_UTF8}: is not a video file")
    store.close()
    again = SqliteJobStore(path)
    found = again.find(inbox / NOT_UTF8, size=5, mtime=1.0)
    assert found is not None and (found.name, found.relpath, found.path) == (NOT_UTF8, NOT_UTF8, str(inbox / NOT_UTF8))
    assert found.error == f"{inbox / NOT_UTF8}: is not a video file"
    again.close()
    with sqlite3.connect(path) as plain:                           # other tools read valid UTF-8 text
        assert plain.execute("SELECT name FROM jobs").fetchone()[0] == to_db(NOT_UTF8)
