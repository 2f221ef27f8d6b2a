"""The demo command as a process: shutdown, CSV import, load mode, CLI errors."""

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from demo_process import REPO_ROOT, DemoProcess


def run_cli(*args, timeout=30):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pygamesvc", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_service_cleanly(sig, tmp_path):
    service = DemoProcess("--db", ":memory:", "--players", str(_small_csv(tmp_path)))
    status, _ = service.get_json("/healthz")
    assert status == 200
    assert service.stop(sig) == 0
    assert f"stopped by {sig.name}" in service.log
    assert "player service stopped" in service.log
    assert "Traceback" not in service.log


def test_in_flight_requests_finish_on_sigterm():
    service = DemoProcess("--db", ":memory:", "--workers", "1")
    started = threading.Barrier(5)

    def match(player_id):
        started.wait(10)
        try:
            return service.post_json("/match", {"player_id": player_id, "count": 50})
        except OSError as exc:  # sent after the listener closed
            return exc

    with concurrent.futures.ThreadPoolExecutor(4) as clients:
        futures = [clients.submit(match, i) for i in range(1, 5)]
        started.wait(10)
        status = service.stop(signal.SIGTERM)
        results = [f.result(timeout=20) for f in futures]
    assert status == 0, service.log
    answered = [r for r in results if not isinstance(r, OSError)]
    # Every request the server accepted got a complete answer.
    for code, body in answered:
        assert code == 200
        assert len(body["opponents"]) == 50
    assert "Traceback" not in service.log


def _small_csv(directory):
    path = directory / "players.csv"
    path.write_text(
        "name,rating,level,region,last_seen\n"
        "Ada,1500,10,eu,2025-01-01T00:00:00Z\n"
        "Bo,1510,12,eu,2025-01-01T00:00:00\n"
        "Cy,1490,11,na,2024-12-31T12:00:00+00:00\n"
    )
    return path


def test_csv_import_reports_bad_rows(tmp_path):
    csv_path = tmp_path / "players.csv"
    csv_path.write_text(
        "name,rating,level,region,last_seen\n"
        "Ada,1500,10,eu,2025-01-01T00:00:00Z\n"
        "Bad,abc,10,eu,2025-01-01T00:00:00Z\n"
        "Bo,1510,12,eu,2025-01-01T00:00:00\n"
        ",1500,10,eu,2025-01-01T00:00:00Z\n"
        "Cy,1490,11,mars,2024-12-31T12:00:00+00:00\n"
        "Di,1490,11,na,yesterday\n"
        "Ed,1400,9,oce,2024-12-30T00:00:00Z\n"
    )
    service = DemoProcess("--db", str(tmp_path / "p.db"), "--players", str(csv_path))
    try:
        assert service.players == 3
        status, body = service.get_json("/players")
        assert status == 200
        assert [p["name"] for p in body["players"]] == ["Ada", "Bo", "Ed"]
    finally:
        assert service.stop() == 0
    log = service.log
    assert "line 3 skipped: rating must be an integer from 0 to 4000, got 'abc'" in log
    assert "line 5 skipped: name must be 1 to 64 characters, got ''" in log
    assert "line 6 skipped: region must be one of" in log
    assert "line 7 skipped: last_seen must be an ISO 8601 date and time" in log
    assert f"imported 3 players from {csv_path} (4 rows skipped)" in log


def test_csv_missing_column_fails_start(tmp_path):
    csv_path = tmp_path / "players.csv"
    csv_path.write_text("name,rating\nAda,1500\n")
    result = run_cli(
        "demo", "--db", ":memory:", "--players", str(csv_path), "--port", "0"
    )
    assert result.returncode == 1
    assert "missing: level, region, last_seen" in result.stderr


def test_csv_missing_file_fails_start(tmp_path):
    result = run_cli(
        "demo",
        "--db",
        ":memory:",
        "--players",
        str(tmp_path / "none.csv"),
        "--port",
        "0",
    )
    assert result.returncode == 1
    assert "No such file or directory" in result.stderr


def test_database_is_seeded_once(tmp_path):
    db = tmp_path / "players.db"
    first = DemoProcess("--db", str(db))
    assert first.stop() == 0
    assert "with 10000 generated players" in first.log
    second = DemoProcess("--db", str(db))
    assert second.players == first.players
    assert second.stop() == 0
    assert "generated players" not in second.log


def test_load_mode_prints_summary():
    service = DemoProcess("--db", ":memory:", "--load", "1", "--concurrency", "2")
    assert service.wait_exit(60) == 0, service.log
    out = service.stdout
    for endpoint in ("GET /players ", "GET /players/{id}", "POST /match", "all "):
        assert endpoint in out
    assert "p99 ms" in out
    assert "GC pauses:" in out
    assert "peak RSS:" in out
    assert "pool queue peak:" in out
    assert "load: " in service.log  # the progress line
    total = next(line for line in out.splitlines() if line.startswith("all "))
    requests, errors = int(total.split()[1].replace(",", "")), int(total.split()[-1])
    assert requests > 0
    assert errors == 0


def test_load_mode_rejects_remote_host():
    result = run_cli("demo", "--db", ":memory:", "--load", "1", "--host", "192.0.2.1")
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_help_names_units():
    result = run_cli("demo", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option in (
        "--host",
        "--port",
        "--db",
        "--players",
        "--workers",
        "--load",
        "--concurrency",
    ):
        assert option in text
    assert "TCP port" in text
    assert "for this many seconds" in text
    assert "10,000 generated players" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "port must be from 0 to 65535, got 70000"),
        (["--port", "http"], "port must be an integer, got 'http'"),
        (["--workers", "0"], "workers must be a positive integer, got 0"),
        (
            ["--load", "-1"],
            "load duration must be greater than 0 and at most 86400 seconds",
        ),
        (["--concurrency", "1000"], "concurrency must be at most 256, got 1000"),
    ],
)
def test_bad_option_exits_2(args, message):
    result = run_cli("demo", "--db", ":memory:", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_no_request_metrics_option():
    service = DemoProcess("--db", ":memory:", "--no-request-metrics")
    try:
        assert service.request("GET", "/players")[0] == 200
        text = service.request("GET", "/metrics")[2].decode()
    finally:
        assert service.stop() == 0
    assert "http_request_duration_seconds" not in text
    assert "pygamesvc_process_resident_memory_bytes" in text


def test_port_in_use_exits_1():
    service = DemoProcess("--db", ":memory:")
    try:
        result = run_cli("demo", "--db", ":memory:", "--port", str(service.port))
    finally:
        assert service.stop() == 0
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{service.port}" in result.stderr


def test_console_entry_point_is_main():
    from pygamesvc.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
