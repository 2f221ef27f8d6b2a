"""Load mode: drive the running demo service over HTTP and report.

The clients run in the service's own process as ``run_load`` clients (from
``pygamesvc.testing``) on a WorkerPool of their own, each with one
keep-alive HTTP/1.1 connection to the service on the loopback interface.
Each client picks requests from a fixed mix (60 % listings, 30 %
single-player lookups, 10 % matches) with its own seeded random generator,
so two runs send the same sequence of requests per client.
Lookups and listings favour a small set of popular players and pages, the
way a real front page does, so the cache sees repeated keys.
"""

import dataclasses
import gc
import http.client
import json
import random
import resource
import sys
import threading
import time

from pygamesvc import WorkerPool
from pygamesvc.demo.cli import is_loopback
from pygamesvc.demo.text import count_noun
from pygamesvc.testing import run_load

__all__ = ["ENDPOINTS", "LoadThread", "start_load_thread"]

ENDPOINTS = ("GET /players", "GET /players/{id}", "POST /match")
_MIX_WEIGHTS = (60, 30, 10)
_PAGE_SIZE = 20
# Listings walk the first pages only, like players paging a leaderboard.
_HOT_PAGES = 50
# Each run_load round lasts about this many seconds, and the progress line
# is updated between rounds.
_ROUND_SECONDS = 0.5
_STARTUP_TIMEOUT = 30.0
_REQUEST_TIMEOUT = 30.0


class GCPauseTimer:
    """Count collector runs and time the longest, through ``gc.callbacks``.

    The callback only reads the clock and updates two numbers, so it takes
    no lock and allocates nothing that could start another collection.
    """

    def __init__(self):
        self.count = 0
        self.longest = 0.0
        self._started = 0.0

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.count += 1
        if pause > self.longest:
            self.longest = pause

    def __enter__(self):
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info):
        gc.callbacks.remove(self._callback)


@dataclasses.dataclass
class EndpointResult:
    """Latencies (seconds, successful requests only) and errors of one endpoint."""

    latencies: list = dataclasses.field(default_factory=list)
    errors: int = 0

    @property
    def requests(self):
        return len(self.latencies) + self.errors


def _failed(ok):
    return not ok


def _percentile(sorted_values, fraction):
    """Return the nearest-rank percentile of an ascending list (None if empty)."""
    if not sorted_values:
        return None
    rank = max(int(fraction * len(sorted_values) + 0.999999) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


class HTTPClient:
    """One load client: a keep-alive connection and a seeded request mix."""

    def __init__(self, host, port, players, seed):
        self.host = host
        self.port = port
        self.players = max(players, 1)
        self.rng = random.Random(seed)
        self.results = {name: EndpointResult() for name in ENDPOINTS}
        self._connection = None

    def _popular_player(self):
        # Cubing a uniform number skews ids towards 1: the top 10 % of ids
        # receive about 46 % of the lookups.
        return int(self.players * self.rng.random() ** 3) + 1

    def next_request(self):
        """Return (endpoint, method, path, body) for the next request of the mix."""
        endpoint = self.rng.choices(ENDPOINTS, _MIX_WEIGHTS)[0]
        if endpoint == "GET /players":
            offset = self.rng.randrange(_HOT_PAGES) * _PAGE_SIZE
            return endpoint, "GET", f"/players?limit={_PAGE_SIZE}&offset={offset}", None
        if endpoint == "GET /players/{id}":
            return endpoint, "GET", f"/players/{self._popular_player()}", None
        body = json.dumps({"player_id": self._popular_player(), "count": 5})
        return endpoint, "POST", "/match", body.encode()

    def send_one(self):
        """Send the next request of the mix, record its latency or error.

        Returns True on a 2xx response.
        """
        endpoint, method, path, body = self.next_request()
        result = self.results[endpoint]
        headers = {"Content-Type": "application/json"} if body is not None else {}
        started = time.perf_counter()
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=_REQUEST_TIMEOUT
                )
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.close()
            result.errors += 1
            return False
        if 200 <= status < 300:
            result.latencies.append(time.perf_counter() - started)
            return True
        result.errors += 1
        return False

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class LoadThread(threading.Thread):
    """Waits for the server to start, runs the load, then stops the server."""

    def __init__(self, server, service, host, port, seconds, concurrency, stop):
        super().__init__(name="demo-load", daemon=True)
        self.server = server
        self.service = service
        self.host = _client_host(host)
        self.port = port
        self.seconds = seconds
        self.concurrency = concurrency
        self.stop_event = stop
        self.clients = [
            HTTPClient(self.host, port, service.total, seed)
            for seed in range(concurrency)
        ]
        self.elapsed = 0.0
        self.summary = None
        self.failure = None
        self.progress = sys.stderr

    def run(self):
        try:
            if not self._wait_for_server():
                return
            with GCPauseTimer() as gc_timer:
                self._drive()
            self.summary = self._summarize(gc_timer)
        except Exception as exc:  # reported in the summary, then the server stops
            self.failure = exc
        finally:
            for client in self.clients:
                client.close()
            self.server.request_exit()

    def _wait_for_server(self):
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not self.server.started:
            if self.stop_event.wait(0.01):
                return False
            if time.monotonic() > deadline:
                self.failure = TimeoutError(
                    f"the service did not start within {_STARTUP_TIMEOUT:.0f} s"
                )
                return False
        return True

    def _drive(self):
        """Run the clients in rounds of run_load until the time is up.

        Each round lasts about ``_ROUND_SECONDS``: its request count comes
        from the rate of the round before.  Between rounds the progress line
        is updated and a shutdown request is noticed.
        """
        started = time.perf_counter()
        deadline = started + self.seconds
        tty = self.progress.isatty()
        progress_interval = 0.25 if tty else 1.0
        last_progress = started
        one_request = self._request_function()
        requests_per_client = 5
        with WorkerPool(self.concurrency, name="demo-load") as pool:
            while not self.stop_event.is_set():
                round_started = time.perf_counter()
                result = run_load(
                    one_request,
                    self.concurrency,
                    requests_per_client,
                    pool=pool,
                    is_error=_failed,
                )
                # send_one records HTTP and connection errors itself.  An
                # exception that escaped it is a bug in the load client, which
                # the per-endpoint table would not count, so the run stops.
                if result.first_error is not None:
                    raise RuntimeError(f"a load client raised {result.first_error}")
                now = time.perf_counter()
                remaining = deadline - now
                if now - last_progress >= progress_interval or remaining <= 0:
                    self._print_progress(started, tty)
                    last_progress = now
                if remaining <= 0:
                    break
                rate_per_client = requests_per_client / max(now - round_started, 1e-6)
                requests_per_client = max(
                    1, int(rate_per_client * min(_ROUND_SECONDS, remaining))
                )
        self.elapsed = time.perf_counter() - started
        if tty:
            self.progress.write("\n")
        self.progress.flush()

    def _request_function(self):
        """Return a zero-argument function sending one request of the mix.

        run_load calls it from the pool's worker threads.  Each thread takes
        its own HTTPClient (one connection) on its first call and keeps it
        for every later round, because the pool's threads live until the
        load ends.
        """
        unassigned = iter(self.clients)
        assign_lock = threading.Lock()
        local = threading.local()

        def one_request():
            client = getattr(local, "client", None)
            if client is None:
                with assign_lock:
                    client = next(unassigned, None)
                if client is None:
                    raise RuntimeError(
                        f"more load threads than the {len(self.clients)} clients"
                    )
                local.client = client
            return client.send_one()

        return one_request

    def _print_progress(self, started, tty):
        elapsed = time.perf_counter() - started
        done = sum(r.requests for c in self.clients for r in c.results.values())
        errors = sum(r.errors for c in self.clients for r in c.results.values())
        rate = done / elapsed if elapsed > 0 else 0.0
        line = (
            f"load: {min(elapsed, self.seconds):5.1f} s / {self.seconds:g} s  "
            f"{count_noun(done, 'request', grouped=True):>18}  {rate:>8,.0f} req/s  "
            f"{count_noun(errors, 'error', grouped=True)}"
        )
        self.progress.write(f"\r{line}" if tty else f"{line}\n")
        self.progress.flush()

    def _summarize(self, gc_timer):
        merged = {name: EndpointResult() for name in ENDPOINTS}
        for client in self.clients:
            for name, result in client.results.items():
                merged[name].latencies.extend(result.latencies)
                merged[name].errors += result.errors
        total = EndpointResult()
        for result in merged.values():
            result.latencies.sort()
            total.latencies.extend(result.latencies)
            total.errors += result.errors
        total.latencies.sort()
        # ru_maxrss is in KiB on Linux.
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {
            "endpoints": merged,
            "total": total,
            "service": self.service.stats(),
            "gc_count": gc_timer.count,
            "gc_longest": gc_timer.longest,
            "peak_rss": peak_rss,
        }

    def print_summary(self, out):
        """Write the summary table (or the failure) to ``out``."""
        if self.failure is not None:
            out.write(f"load: failed: {self.failure}\n")
        if self.summary is None:
            return
        out.write(format_summary(self, self.summary))
        out.flush()


def format_summary(load, summary):
    """Return the load report as text: one table row per endpoint, then totals."""
    elapsed = load.elapsed or 1e-9
    lines = [
        f"load: {load.elapsed:.1f} s, {count_noun(load.concurrency, 'client')}, "
        f"http://{load.host}:{load.port}",
        "",
        f"{'endpoint':<20}{'requests':>10}{'req/s':>10}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}",
    ]
    rows = [*summary["endpoints"].items(), ("all", summary["total"])]
    for name, result in rows:
        values = result.latencies
        cells = [_milliseconds(_percentile(values, q)) for q in (0.50, 0.90, 0.99)]
        lines.append(
            f"{name:<20}{result.requests:>10,}{result.requests / elapsed:>10,.1f}"
            f"{cells[0]:>9}{cells[1]:>9}{cells[2]:>9}{result.errors:>8,}"
        )
    lines.append("")
    service = summary["service"]
    cache = service.get("cache")
    if cache is not None:
        loads = service["cache_loads"]
        lookups = cache["hits"] + loads
        ratio = cache["hits"] / lookups if lookups else 0.0
        lines.append(
            f"cache hit ratio:  {ratio:.1%} ({cache['hits']:,} hits, "
            f"{loads:,} loads from SQLite)"
        )
    pool = service.get("pool", {})
    lines.append(
        f"pool queue peak:  {count_noun(service['pool_queue_peak'], 'task')} "
        f"({count_noun(pool.get('workers', 0), 'worker')}, "
        f"{count_noun(pool.get('completed', 0), 'task', grouped=True)} done)"
    )
    lines.append(
        f"GC pauses:        {summary['gc_count']:,}, longest "
        f"{summary['gc_longest'] * 1000:.2f} ms"
    )
    lines.append(
        f"peak RSS:         {summary['peak_rss'] / 2**20:.1f} MiB "
        "(the service and the load clients share the process)"
    )
    return "\n".join(lines) + "\n"


def _milliseconds(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _client_host(host):
    """Return the loopback address the clients connect to for a listen address."""
    if not is_loopback(host):
        raise ValueError(
            f"load mode sends traffic to the loopback interface only; "
            f"--host must be a loopback address, got {host!r}"
        )
    if ":" in host:
        return "::1"
    return host if host.startswith("127.") else "127.0.0.1"


def start_load_thread(server, service, host, port, seconds, concurrency, stop):
    """Start and return a LoadThread for a server that is about to run."""
    thread = LoadThread(server, service, host, port, seconds, concurrency, stop)
    thread.start()
    return thread
