"""The prediction log's writer: one whole JSON line per request, rotation with retention, and
a write that fails (full disk, unwritable folder) counted, never raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maas.monitor.predictions import LogColumns, read_predictions
from maas.serving.log_policy import LogPolicy
from maas.serving.prediction_log import DIR_ENV, PredictionLog, environment

REQUEST = b'{"flights": [{"carrier": "UA", "distance": 1400,\n "flight": 1545}]}'
RESPONSE = b'{"model_version": "3", "predictions": [{"p": 0.25, "late": false}]}'
COLUMNS = LogColumns(frozenset({"carrier", "distance", "flight"}), frozenset({"p", "late"}))


def test_each_request_is_one_line_read_back_per_record(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "flight-delay", "3", max_bytes=1 << 20, backups=2)
    for _ in range(3):
        log.write(REQUEST, RESPONSE)
    assert log.written == 1  # the first line is flushed at once, the others buffered
    log.flush()  # what the writer's thread does at least every FLUSH_S
    lines = log.path.read_bytes().splitlines()
    assert len(lines) == 3 and log.written == 3 and log.lost == 0
    entry = json.loads(lines[0])  # the raw newline in the request did not split the line
    assert entry["model"] == "flight-delay" and entry["version"] == "3"
    assert entry["request"]["flights"][0]["flight"] == 1545  # a key column the model ignores
    rows = read_predictions(tmp_path, "flights", COLUMNS)
    assert len(rows.frame) == 3 and rows.skipped == 0
    assert {"carrier", "flight", "p", "late", "request_id", "model_version"} <= set(rows.frame)


def test_files_roll_over_and_only_the_newest_backups_are_kept(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", "1", max_bytes=4096, backups=2)
    for _ in range(200):
        log.write(REQUEST, RESPONSE)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [log.path.name, log.path.name + ".1", log.path.name + ".2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    assert log.written == 200 and log.lost == 0
    only = PredictionLog(tmp_path / "none", "m", "1", max_bytes=4096, backups=0)
    for _ in range(200):
        only.write(REQUEST, RESPONSE)
    only.close()  # no backups kept: the file starts again at each rollover
    assert [p.name for p in (tmp_path / "none").iterdir()] == [only.path.name]
    assert 0 < only.path.stat().st_size <= 4096


def test_a_torn_line_is_skipped_and_counted_nothing_else_lost(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", "1", max_bytes=1 << 20, backups=1)
    log.write(REQUEST, RESPONSE)
    log.write(REQUEST, RESPONSE)
    log.close()
    with log.path.open("ab") as handle:  # a writer killed mid-line, then a garbled line
        handle.write(b'{"time": "2026-11-30T00:00:00", "request_id": "x", "req')
    (tmp_path / "other-1.jsonl").write_bytes(b"not json\n")
    rows = read_predictions(tmp_path, "flights", COLUMNS)
    assert len(rows.frame) == 2
    assert rows.skipped == 2 and rows.lines == 4


def test_a_restarted_writer_ends_a_torn_line_before_its_own(tmp_path: Path) -> None:
    first = PredictionLog(tmp_path, "m", "1", max_bytes=1 << 20, backups=1)
    first.write(REQUEST, RESPONSE)
    first.close()
    with first.path.open("ab") as handle:  # killed mid-line
        handle.write(b'{"time": "2026-11-30T00:00:00", "requ')
    again = PredictionLog(tmp_path, "m", "1", max_bytes=1 << 20, backups=1)
    assert again.path == first.path  # a restarted container: same host name, same pid
    again.write(REQUEST, RESPONSE)
    again.close()
    rows = read_predictions(tmp_path, "flights", COLUMNS)
    assert len(rows.frame) == 2 and rows.skipped == 1


def test_a_full_disk_loses_lines_not_predictions(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", "1", max_bytes=1 << 20, backups=1)
    log.path.symlink_to("/dev/full")  # every write: ENOSPC
    for _ in range(3):
        log.write(REQUEST, RESPONSE)  # never raises
    log.close()
    assert log.lost == 3 and log.written == 0


def test_a_missing_folder_is_counted_then_written_once_it_exists(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "gone", "m", "1", max_bytes=1 << 20, backups=1)
    (tmp_path / "gone").rmdir()
    log.write(REQUEST, RESPONSE)
    assert log.lost == 1
    (tmp_path / "gone").mkdir()
    log.write(REQUEST, RESPONSE)
    assert log.written == 1 and log.path.exists()


def test_an_idle_writer_flushes_within_a_second(tmp_path: Path) -> None:
    import time

    from maas.serving.prediction_log import FLUSH_S

    log = PredictionLog(tmp_path, "m", "1", max_bytes=1 << 20, backups=1)
    log.write(REQUEST, RESPONSE)
    log.write(REQUEST, RESPONSE)  # buffered
    assert len(log.path.read_bytes().splitlines()) == 1
    started = time.monotonic()  # no more traffic: the writer's own thread flushes
    while len(log.path.read_bytes().splitlines()) < 2:
        assert time.monotonic() - started < 10 * FLUSH_S, "the buffered line was never flushed"
        time.sleep(0.01)
    waited = time.monotonic() - started
    assert waited <= 2 * FLUSH_S, f"flushed after {waited:.2f}s, not within {FLUSH_S}s"
    assert log.written == 2
    log.close()


def test_logging_is_off_unless_the_deploy_target_mounts_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    assert PredictionLog.from_env("m", "1", "flights", ["carrier"]) is None
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    log = PredictionLog.from_env("m", "1", "flights", ["carrier"])
    assert log is not None and log.path.parent == tmp_path


def test_only_declared_fields_and_keys_are_logged_redacted_as_the_task_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 item 8: a client's extra fields (a name, a card number, a nested object, a
    top-level key) never reach the file; `drop` and `hash` redactions apply; the file is 0640."""
    import hashlib
    import stat

    env = environment(
        1 << 20, 1, str(tmp_path), keys=["flight"], redact={"dest": "drop", "flight": "hash"}
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    log = PredictionLog.from_env("m", "1", "flights", ["carrier", "distance", "dest"])
    assert log is not None
    record = {
        "carrier": "UA",
        "distance": 1400,
        "dest": "LAX",
        "flight": 1545,
        "passenger_name": "Ada Lovelace",
        "card_number": "4111111111111111",
        "carrier_note": {"deep": ["x"] * 100},
    }
    hostile = json.dumps({"flights": [record, "not a record"], "card": "4111"}).encode()
    log.write(hostile, RESPONSE)
    log.close()
    text = log.path.read_bytes()
    assert b"Lovelace" not in text and b"4111" not in text and b"LAX" not in text
    entry = json.loads(text)
    flight = "sha256:" + hashlib.sha256(b"1545").hexdigest()
    assert entry["request"] == {
        "flights": [{"carrier": "UA", "distance": 1400, "flight": flight}, {}]
    }
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o640


def test_an_existing_0644_file_is_made_0640_and_a_non_scalar_key_is_null(tmp_path: Path) -> None:
    policy = LogPolicy("flights", frozenset({"carrier"}), frozenset({"flight"}))
    log = PredictionLog(tmp_path, "m", "1", 1 << 20, 1, policy=policy)
    log.path.write_bytes(b"")
    log.path.chmod(0o644)
    huge = b"1" + b"0" * 30  # no int64
    log.write(
        b'{"flights": [{"flight": {"a": 1}}, {"flight": 1e999}, {"flight": ' + huge + b"}]}",
        RESPONSE,
    )
    log.close()
    assert log.path.stat().st_mode & 0o777 == 0o640
    assert json.loads(log.path.read_bytes())["request"]["flights"] == [{"flight": None}] * 3
    with pytest.raises(ValueError, match="redactions"):
        LogPolicy("flights", frozenset(), redact={"x": "mask"})


def test_files_older_than_the_retention_are_deleted_and_old_files_roll_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Age-based retention beside the size cap: another (dead) process's file and a rolled-over
    file last written before the retention period are deleted when a writer starts or rolls
    over; a file that has been written to for a retention period rolls over."""
    import os
    import time

    day = 86_400
    stale = tmp_path / "gone-1.jsonl"
    stale.write_text("{}\n")
    os.utime(stale, (time.time() - 3 * day, time.time() - 3 * day))
    kept = tmp_path / "recent-2.jsonl.1"
    kept.write_text("{}\n")
    os.utime(kept, (time.time() - day, time.time() - day))
    other = tmp_path / "notes.txt"  # not a log file: never touched
    other.write_text("x")
    os.utime(other, (time.time() - 9 * day, time.time() - 9 * day))
    log = PredictionLog(tmp_path, "m", "1", 1 << 20, 2, retention_days=2)
    log.write(REQUEST, RESPONSE)
    assert not stale.exists() and kept.exists() and other.exists()
    # a day later (or a retention period, if shorter) the current file rolls over
    clock = time.monotonic() + day + 1
    monkeypatch.setattr("maas.serving.prediction_log.time.monotonic", lambda: clock)
    os.utime(kept, (time.time() - 3 * day, time.time() - 3 * day))
    log.write(REQUEST, RESPONSE)
    log.close()
    assert log.path.with_name(log.path.name + ".1").exists() and not kept.exists()
    assert len(log.path.read_bytes().splitlines()) == 1
