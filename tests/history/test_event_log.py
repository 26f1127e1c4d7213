"""The history file: appended in a worker thread, rotated by size, read back at start."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from hotstandby.agent.history import EVENTS_FILE, EventLog, Rotation


def record(n: int, pad: int = 0) -> dict[str, object]:
    return {"at": 1_700_000_000.0 + n, "kind": "role", "message": f"record {n}" + "x" * pad}


def test_records_are_appended_and_read_back_oldest_first(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.start()
    for n in range(5):
        log.append(record(n))
    assert log.wait_idle(5)
    log.close()
    assert [r["message"] for r in EventLog(tmp_path).load(3)] == [
        "record 2",
        "record 3",
        "record 4",
    ]
    assert EventLog(tmp_path).load(0) == []


def test_the_file_rotates_by_size_and_keeps_n_old_files(tmp_path: Path) -> None:
    log = EventLog(tmp_path, Rotation(max_bytes=1000, keep=2))
    log.start()
    for n in range(40):
        log.append(record(n, pad=100))  # about 170 bytes a line: a file holds 6
    assert log.wait_idle(5)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [EVENTS_FILE, f"{EVENTS_FILE}.1", f"{EVENTS_FILE}.2"]
    for name in names:
        assert (tmp_path / name).stat().st_size < 1000 + 200
    # Reading back spans the files in order and ends with the newest record.
    back = EventLog(tmp_path, Rotation(max_bytes=1000, keep=2)).load(1000)
    numbers = [int(str(r["message"]).split()[1].rstrip("x")) for r in back]
    assert numbers == list(range(numbers[0], 40)) and 12 <= len(numbers) <= 21


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    (tmp_path / EVENTS_FILE).write_text(
        json.dumps(record(1))
        + "\n"
        + '{"at": 17000, "kind": "ro'
        + "\n"
        + json.dumps(record(2))
        + "\n"
    )
    assert [r["message"] for r in EventLog(tmp_path).load(10)] == ["record 1", "record 2"]


def test_appending_never_waits_for_a_stuck_disk(tmp_path: Path) -> None:
    # The history file is a FIFO nobody reads yet: the writer thread blocks opening it,
    # as it would on a hung disk. Appending must still return at once, every time.
    os.mkfifo(tmp_path / EVENTS_FILE)
    log = EventLog(tmp_path)
    log.start()
    began = time.perf_counter()
    for n in range(10_000):
        log.append(record(n))
    per_append = (time.perf_counter() - began) / 10_000
    assert log.written == 0  # nothing could be written: the appends did not wait for it
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append((tmp_path / EVENTS_FILE).read_bytes()))
    reader.start()
    assert log.wait_idle(10)
    log.close()
    reader.join(10)
    assert len(got[0].splitlines()) == 10_000
    print(f"append: {per_append * 1e6:.1f} us per record while the disk was stuck")


def test_a_failing_disk_loses_records_but_not_the_writer(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    log = EventLog(directory)
    log.start()
    (directory / EVENTS_FILE).mkdir()  # opening it to append fails: EISDIR
    log.append(record(1))
    assert log.wait_idle(5)
    assert log.errors == 1 and "Is a directory" in log.last_error
    (directory / EVENTS_FILE).rmdir()
    log.append(record(2))
    assert log.wait_idle(5)
    log.close()
    assert [r["message"] for r in EventLog(directory).load(10)] == ["record 2"]
