"""Load mode's driver in this process against a demo service in a child process.

LoadThread gets stand-ins for the uvicorn server and the PlayerService it
normally shares a process with; the HTTP traffic, run_load and its
WorkerPool are real.
"""

import io
import signal
import threading

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from demo_process import DemoProcess

from pygamesvc.demo import load

CLIENTS = 3
SECONDS = 1.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo-load") / "players.db"
    service = DemoProcess("--db", str(db), "--workers", "2")
    yield service
    assert service.stop(signal.SIGTERM) == 0, service.log
    assert "Traceback" not in service.log


class ServerStandIn:
    """The two members of DemoServer that LoadThread uses."""

    started = True

    def __init__(self):
        self.exit_requested = False

    def request_exit(self):
        self.exit_requested = True


class ServiceStandIn:
    """The two members of PlayerService that LoadThread uses."""

    def __init__(self, total):
        self.total = total

    def stats(self):
        return {"pool": {}, "cache": None, "cache_loads": 0, "pool_queue_peak": 0}


def new_load_thread(demo, server):
    thread = load.LoadThread(
        server,
        ServiceStandIn(demo.players),
        "127.0.0.1",
        demo.port,
        SECONDS,
        CLIENTS,
        threading.Event(),
    )
    thread.progress = io.StringIO()
    return thread


@pytest.mark.leak_check
def test_load_mode_runs_through_run_load(demo, monkeypatch):
    results = []
    caller_threads = set()
    real_run_load = load.run_load

    def recording_run_load(fn, clients, requests, **options):
        def request():
            caller_threads.add(threading.get_ident())
            return fn()

        result = real_run_load(request, clients, requests, **options)
        results.append(result)
        return result

    monkeypatch.setattr(load, "run_load", recording_run_load)
    server = ServerStandIn()
    thread = new_load_thread(demo, server)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert thread.failure is None
    assert server.exit_requested

    # Rounds of about half a second each, all clients in every round.
    assert len(results) >= 2
    assert {result.clients for result in results} == {CLIENTS}
    assert sum(result.errors for result in results) == 0
    # One pool worker per client, none of them this thread.
    assert len(caller_threads) == CLIENTS
    assert threading.get_ident() not in caller_threads
    # Every request run_load made is in the summary table, and each client
    # (one keep-alive connection) sent some of them.
    total = thread.summary["total"]
    assert total.requests == sum(result.total for result in results)
    assert total.errors == 0
    for client in thread.clients:
        assert sum(r.requests for r in client.results.values()) > 0

    assert "load: " in thread.progress.getvalue()
    out = io.StringIO()
    thread.print_summary(out)
    assert "p99 ms" in out.getvalue()
    assert "\nall " in out.getvalue()


@pytest.mark.leak_check
def test_load_mode_reports_client_exception(demo, monkeypatch):
    def broken_send_one(client):
        raise ValueError("no request")

    monkeypatch.setattr(load.HTTPClient, "send_one", broken_send_one)
    server = ServerStandIn()
    thread = new_load_thread(demo, server)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert server.exit_requested
    assert thread.summary is None
    out = io.StringIO()
    thread.print_summary(out)
    assert out.getvalue() == (
        "load: failed: a load client raised ValueError('no request')\n"
    )
