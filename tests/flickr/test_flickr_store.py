"""The response store: journal (fsync'd batches, torn tails), compaction, versions, reading."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from flickr_helpers import answer_for

from imagenet_captions.errors import UsageError
from imagenet_captions.flickr import store
from imagenet_captions.flickr.store import JournalWriter, StoredAnswer

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0


def ok(pid: int, template: dict, t: float, run: str, title: str = "t", image_ids=None) -> StoredAnswer:
    raw = json.dumps(answer_for(template, pid, title=title))
    return StoredAnswer(pid, image_ids or [f"n01440764_{pid}"], "ok", None, None, t, 1, run, raw)


def gone(pid: int, t: float, run: str) -> StoredAnswer:
    raw = '{"stat":"fail","code":1,"message":"Photo not found"}'
    return StoredAnswer(pid, [f"n01440764_{pid}"], "not_found", 1, None, t, 1, run, raw)


def write(directory: Path, run: str, answers: list[StoredAnswer], **kw) -> None:
    j = JournalWriter(str(directory), run, **kw)
    for fut in [j.append(a) for a in answers]:
        fut.result(timeout=10)
    j.close()


def test_answers_are_durable_once_their_future_is_done(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    j = JournalWriter(str(tmp_path), "run1", fsync_every=4, fsync_interval=5.0)
    futs = [j.append(ok(p, template, T0, "run1")) for p in range(1, 9)]
    for f in futs:
        f.result(timeout=5)  # 8 = two full batches: no wait for the 5-second interval
    (journal,) = [n for n in os.listdir(tmp_path) if n.startswith("journal-")]
    assert len((tmp_path / journal).read_bytes().splitlines()) == 8  # on disk before close
    j.close()
    assert os.listdir(tmp_path) == ["part-run1-00000.parquet"]  # compacted, journal gone
    assert [a.photo_id for a in store.read_answers(str(tmp_path))] == list(range(1, 9))


def test_interval_flush_for_a_trickle(tmp_path: Path, real_answers) -> None:
    j = JournalWriter(str(tmp_path), "r", fsync_every=1000, fsync_interval=0.05)
    j.append(ok(1, real_answers[3743398102], T0, "r")).result(timeout=2)
    assert j.synced == 1
    j.close()


def test_a_torn_last_line_is_ignored_and_recovery_compacts(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    path = tmp_path / "journal-crashed-00000.jsonl"
    lines = [json.dumps(ok(p, template, T0, "crashed").__dict__) for p in (1, 2)]
    path.write_bytes(("\n".join(lines) + "\n" + lines[0][:40]).encode())
    (tmp_path / "part-x-00000.parquet.tmp-123").write_bytes(b"half a file")
    assert [a.photo_id for a in store.read_answers(str(tmp_path))] == [1, 2]  # readable before recovery
    assert store.recover(str(tmp_path)) == 1
    assert sorted(os.listdir(tmp_path)) == ["part-crashed-00000.parquet"]
    assert [a.photo_id for a in store.read_answers(str(tmp_path))] == [1, 2]


def test_a_damaged_line_inside_the_journal_is_an_error(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    good = json.dumps(ok(1, template, T0, "r").__dict__)
    (tmp_path / "journal-r-00000.jsonl").write_text(f"{good}\n{{broken\n{good}\n")
    with pytest.raises(UsageError, match="damaged at line 2"):
        store.read_answers(str(tmp_path))


def test_compaction_is_idempotent_after_a_crash_between_rename_and_delete(
    tmp_path: Path, real_answers
) -> None:
    template = real_answers[3743398102]
    write(tmp_path, "r", [ok(1, template, T0, "r")])
    before = pq.read_table(tmp_path / "part-r-00000.parquet")
    # the crash left the journal beside its part
    (tmp_path / "journal-r-00000.jsonl").write_text(json.dumps(ok(1, template, T0, "r").__dict__) + "\n")
    store.recover(str(tmp_path))
    assert os.listdir(tmp_path) == ["part-r-00000.parquet"]
    assert pq.read_table(tmp_path / "part-r-00000.parquet").equals(before)


def test_duplicates_within_a_run_vanish_versions_across_runs_stay(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    # a Beam retry asked photo 1 twice in run a (two segments); run b refreshed it a day later
    write(tmp_path, "a", [ok(1, template, T0, "a", "old"), ok(2, template, T0, "a")])
    write(tmp_path, "a", [ok(1, template, T0 + 5, "a", "old")])
    write(tmp_path, "b", [ok(1, template, T0 + DAY, "b", "new")])
    rows = store.read_answers(str(tmp_path))
    assert [(a.photo_id, a.run_id) for a in rows] == [(1, "a"), (1, "b"), (2, "a")]
    table = store.read_table(str(tmp_path))
    assert table.schema == store.SCHEMA and table.num_rows == 3
    # as of now, the newest; as of before the refresh, the old one
    now = {r["photo_id"]: r["title"] for r in store.iter_release_records(str(tmp_path))}
    assert now == {1: "new", 2: "t"}
    then = store.iter_release_records(str(tmp_path), datetime.fromtimestamp(T0 + 10, timezone.utc))
    assert {r["photo_id"]: r["title"] for r in then} == {1: "old", 2: "t"}
    # before anything was fetched: nothing
    assert list(store.iter_release_records(str(tmp_path), datetime(2023, 1, 1))) == []


def test_a_gave_up_failure_does_not_hide_a_final_answer(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    gave_up = StoredAnswer(1, ["n01440764_1"], "failed", None, "gave_up: HTTP 503", T0 + DAY, 8, "b", None)
    write(tmp_path, "a", [ok(1, template, T0, "a")])
    write(
        tmp_path,
        "b",
        [gave_up, StoredAnswer(3, ["n01440764_3"], "failed", None, "gave_up: x", T0, 8, "b", None)],
    )
    assert store.effective_answers(str(tmp_path))[1].status == "ok"
    assert store.answered_photo_ids(str(tmp_path)) == {1}  # photo 3 will be asked again
    summary = store.store_summary(str(tmp_path))
    assert summary["photos"] == {"ok": 1, "not_found": 0, "failed": 0, "gave_up": 1}


def test_refresh_cutoff_and_summary_by_image(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    write(
        tmp_path,
        "a",
        [
            ok(1, template, T0, "a", image_ids=["n01440764_1", "n01443537_9"]),
            gone(2, T0 + 2 * DAY, "a"),
            StoredAnswer(
                4, ["n01440764_4"], "failed", 2, "Flickr code 2: Permission denied", T0, 1, "a", "{}"
            ),
        ],
    )
    assert store.answered_photo_ids(str(tmp_path)) == {1, 2, 4}
    assert store.answered_photo_ids(str(tmp_path), fresh_after=T0 + DAY) == {2}
    s = store.store_summary(str(tmp_path))
    assert s["images"] == {"ok": 2, "not_found": 1, "failed": 1, "gave_up": 0}
    assert s["image_total"] == 4 and s["photo_total"] == 3
    status = list(store.iter_image_status(str(tmp_path)))
    assert [(r["image_id"], r["status"]) for r in status] == [
        ("n01440764_1", "ok"),
        ("n01440764_2", "not_found"),
        ("n01440764_4", "failed"),
        ("n01443537_9", "ok"),
    ]


def test_release_records_carry_raw_text_and_ids(tmp_path: Path, real_answers) -> None:
    write(
        tmp_path / "responses",
        "a",
        [
            StoredAnswer(
                33213028138,
                ["n01847000_5"],
                "ok",
                None,
                None,
                T0,
                1,
                "a",
                json.dumps(real_answers[33213028138]),
            )
        ],
    )
    # the harvest's out dir names the store as well as its responses/ folder
    (rec,) = store.iter_release_records(str(tmp_path))
    assert rec == {
        "filename": "n01847000_5.JPEG",
        "wnid": "n01847000",
        "title": "Lesser Scaup",
        "tags": [
            "Waterfowl",
            "wild",
            "wildlife",
            "nature",
            "Photography",
            "ducks",
            "scaup",
            "delmarva",
            "migration",
            "winter",
        ],
        "description": "",
        "photo_id": 33213028138,
        "license": "0",
        "owner": "110745934@N07",
    }


def test_missing_store_and_second_writer_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no response store"):
        list(store.iter_release_records(str(tmp_path / "nope")))
    with (
        store.store_lock(str(tmp_path)),
        pytest.raises(UsageError, match="another harvest"),
        store.store_lock(str(tmp_path)),
    ):
        pass


def test_a_cancelled_waiter_does_not_kill_the_journal(tmp_path: Path, real_answers) -> None:
    template = real_answers[3743398102]
    j = JournalWriter(str(tmp_path), "r", fsync_every=1000, fsync_interval=0.05)
    first = j.append(ok(1, template, T0, "r"))
    assert first.cancel()  # the task waiting on it was cancelled (a shutdown)
    j.append(ok(2, template, T0, "r")).result(timeout=5)  # the journal still works
    j.close()
    assert [a.photo_id for a in store.read_answers(str(tmp_path))] == [1, 2]  # both lines are kept
