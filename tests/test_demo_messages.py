"""Error and log messages of the demo command: ranges, plurals, causes."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from demo_process import REPO_ROOT, DemoProcess

from pygamesvc.demo.app import MAX_ID
from pygamesvc.demo.load import EndpointResult, format_summary
from pygamesvc.demo.service import MAX_PAGE_SIZE
from pygamesvc.demo.storage import PlayerStore
from pygamesvc.demo.text import count_noun

_HEADER = "name,rating,level,region,last_seen\n"
_GOOD_ROW = "Ada,1500,10,eu,2025-01-01T00:00:00Z\n"


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pygamesvc", "demo", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    csv_path = tmp_path_factory.mktemp("demo") / "one.csv"
    csv_path.write_text(_HEADER + _GOOD_ROW + "Bo,notanumber,10,eu,2025-01-01\n")
    service = DemoProcess("--db", ":memory:", "--players", str(csv_path))
    yield service
    assert service.stop() == 0
    assert "Traceback" not in service.log


def test_count_noun_forms():
    assert count_noun(0, "row") == "0 rows"
    assert count_noun(1, "row") == "1 row"
    assert count_noun(2, "row") == "2 rows"
    assert count_noun(1500, "task", grouped=True) == "1,500 tasks"
    assert count_noun(2, "more row", "more rows") == "2 more rows"


@pytest.mark.parametrize("value", ["0", "-1", "86401", "inf", "nan"])
def test_load_duration_states_range(value):
    result = run_cli("--db", ":memory:", "--load", value)
    assert result.returncode == 2
    assert (
        "argument --load: load duration must be greater than 0 and at most "
        f"86400 seconds, got {value}"
    ) in result.stderr
    assert "from 0 to" not in result.stderr


def test_concurrency_range_is_usage_error():
    result = run_cli("--db", ":memory:", "--load", "1", "--concurrency", "1000")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert (
        "pygamesvc demo: error: argument --concurrency: "
        "concurrency must be at most 256, got 1000"
    ) in result.stderr


def test_concurrency_needs_load():
    result = run_cli("--db", ":memory:", "--concurrency", "4")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert "pygamesvc demo: error: --concurrency needs --load" in result.stderr


def test_remote_host_load_is_usage_error():
    result = run_cli("--db", ":memory:", "--load", "1", "--host", "192.0.2.1")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert "--host must be a loopback address, got '192.0.2.1'" in result.stderr


def test_unopenable_database_one_line(tmp_path):
    db = tmp_path / "missing-dir" / "x.db"
    result = run_cli("--db", str(db), "--port", "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        f"pygamesvc demo: error: cannot open SQLite database {db}: "
        "unable to open database file"
    ) in result.stderr


def test_not_a_database_one_line(tmp_path):
    db = tmp_path / "text.db"
    db.write_text("this is not an SQLite file, but long enough to be read\n" * 20)
    result = run_cli("--db", str(db), "--port", "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot open SQLite database {db}: file is not a database" in (
        result.stderr
    )


def test_store_open_error_is_os_error(tmp_path):
    with pytest.raises(OSError, match=r"cannot open SQLite database .*x\.db: "):
        PlayerStore(tmp_path / "missing-dir" / "x.db")


def test_csv_without_valid_rows_says_why(tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(_HEADER + "Ada,notanumber,10,eu,2025-01-01T00:00:00Z\n")
    result = run_cli("--db", ":memory:", "--players", str(csv_path), "--port", "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(1 row skipped)" in result.stderr
    assert (
        "line 2: rating must be an integer from 0 to 4000, got 'notanumber'"
        in result.stderr
    )


def test_csv_without_valid_rows_lists_first(tmp_path):
    csv_path = tmp_path / "bad.csv"
    rows = [f"P{i},{1500 + i},0,eu,2025-01-01\n" for i in range(7)]
    csv_path.write_text(_HEADER + "".join(rows))
    store = PlayerStore(":memory:")
    try:
        with pytest.raises(ValueError) as error:
            store.import_csv(csv_path)
    finally:
        store.close()
    message = str(error.value)
    assert "(7 rows skipped)" in message
    assert "line 2: level must be an integer from 1 to 100, got 0" in message
    assert "line 6: level" in message
    assert "line 7: level" not in message
    assert message.endswith("and 2 more rows")


def test_csv_header_only(tmp_path):
    csv_path = tmp_path / "empty.csv"
    csv_path.write_text(_HEADER)
    store = PlayerStore(":memory:")
    try:
        with pytest.raises(ValueError, match="no player rows after the header"):
            store.import_csv(csv_path)
    finally:
        store.close()


def test_csv_skip_log_uses_singular(small_demo):
    log = small_demo.log
    assert (
        "line 3 skipped: rating must be an integer from 0 to 4000, got 'notanumber'"
        in log
    )
    assert "imported 1 player from " in log
    assert "(1 row skipped)" in log
    assert "player service started: 1 player in :memory:" in log
    assert "serving 1 player on " in log
    assert "1 rows" not in log
    assert "1 players" not in log


@pytest.mark.parametrize(
    "value", ["9" * 19, "99999999999999999999999", "1" + "0" * 5000]
)
def test_huge_limit_is_capped(small_demo, value):
    status, body = small_demo.get_json(f"/players?limit={value}")
    assert status == 200
    assert body["limit"] == MAX_PAGE_SIZE
    assert [p["name"] for p in body["players"]] == ["Ada"]


def test_limit_leading_zeros(small_demo):
    status, body = small_demo.get_json("/players?limit=" + "0" * 30 + "5")
    assert status == 200
    assert body["limit"] == 5


def test_huge_offset_names_maximum(small_demo):
    value = "9" * 23
    status, body = small_demo.get_json(f"/players?offset={value}")
    assert status == 400
    assert body["error"] == (
        f"offset must be a non-negative integer at most {MAX_ID}, got '{value}'"
    )


def test_largest_offset_is_empty_page(small_demo):
    status, body = small_demo.get_json(f"/players?offset={MAX_ID}")
    assert status == 200
    assert body["players"] == []
    assert body["offset"] == MAX_ID


def test_huge_value_echo_is_shortened(small_demo):
    value = "9" * 5000
    status, body = small_demo.get_json(f"/players?offset={value}")
    assert status == 400
    assert body["error"].endswith(f"got '{'9' * 40}'... (5000 characters)")


def test_huge_player_id_names_maximum(small_demo):
    status, body = small_demo.get_json("/players/" + "9" * 25)
    assert status == 400
    assert body["error"].startswith(
        f"id must be a non-negative integer at most {MAX_ID}, got"
    )


def test_match_missing_player_id(small_demo):
    status, body = small_demo.post_json("/match", {})
    assert status == 400
    assert body == {"error": "missing required field player_id"}


def test_match_missing_player_id_with_count(small_demo):
    status, body = small_demo.post_json("/match", {"count": 3})
    assert status == 400
    assert body == {"error": "missing required field player_id"}


class _FakeLoad:
    elapsed = 1.0
    concurrency = 1
    host = "127.0.0.1"
    port = 8000


def test_load_summary_singular():
    summary = {
        "endpoints": {},
        "total": EndpointResult(),
        "service": {
            "cache": None,
            "pool": {"workers": 1, "completed": 1},
            "pool_queue_peak": 1,
        },
        "gc_count": 0,
        "gc_longest": 0.0,
        "peak_rss": 0,
    }
    text = format_summary(_FakeLoad(), summary)
    assert "1 client," in text
    assert "pool queue peak:  1 task (1 worker, 1 task done)" in text
    assert "1 tasks" not in text
