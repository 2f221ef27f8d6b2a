"""PlayerService: the demo's game logic, independent of HTTP.

The service owns the player store, the WorkerPool that computes matchmaking
scores, the cache in front of the store and the metrics sampler.  ``start``
opens them all, ``stop`` closes them all; the HTTP layer only translates
requests into calls on this object.
"""

import dataclasses
import json
import logging
import os
import threading

from pygamesvc import QueueFullError, TTLCache, WorkerPool
from pygamesvc.demo.matchmaking import (
    DEFAULT_MATCH_COUNT,
    MAX_MATCH_COUNT,
    best_opponents,
)
from pygamesvc.demo.storage import DEFAULT_SEED_PLAYERS, PlayerStore
from pygamesvc.demo.text import count_noun
from pygamesvc.metrics import start_metrics_collector

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MatchQueueFullError",
    "PlayerPage",
    "PlayerService",
    "UnknownPlayerError",
]

log = logging.getLogger("pygamesvc.demo")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_CACHE_TTL = 30.0  # seconds
DEFAULT_SAMPLE_INTERVAL = 1.0  # seconds
# Matchmaking requests that may wait per pool worker.  At about 6 ms each,
# a full queue is roughly 0.2 s of work per worker.
MATCH_QUEUE_PER_WORKER = 32

# A CSV file with many bad rows logs this many of them, then a count.
_MAX_LOGGED_ROW_ERRORS = 20

# Cached in place of a player that does not exist, so that repeated
# lookups of a bad id do not each reach the database.
_UNKNOWN = object()


class UnknownPlayerError(LookupError):
    """Raised when a request names a player id that is not stored."""

    def __init__(self, player_id):
        super().__init__(f"player {player_id} not found")
        self.player_id = player_id


class MatchQueueFullError(RuntimeError):
    """Raised when the matchmaking queue is full; the client should retry later."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerPage:
    """One page of the player listing, with its JSON encoding made once."""

    limit: int
    offset: int
    total: int
    players: tuple
    body: bytes


def _default_workers():
    return min(os.cpu_count() or 1, 8)


class PlayerService:
    """The demo game backend: players, listings, lookups and matchmaking.

    ``db_path`` names the SQLite file (``":memory:"`` keeps nothing).  An
    empty database is filled from ``players_csv`` if given, otherwise seeded
    with ``seed_players`` generated players; a CSV file given for a database
    that already has players replaces them.

    Pages and players are cached for ``cache_ttl`` seconds in one TTLCache
    of at most ``cache_size`` entries: pages under ``(limit, offset)`` keys,
    players under their integer id.

    ``start`` also starts the metrics sampler (every ``sample_interval``
    seconds), which exports the ``pygamesvc_*`` series through
    ``prometheus_client``'s default registry.  The sampler is one per
    process, so two services in one process share it and the first
    ``stop`` ends it for both.
    """

    def __init__(
        self,
        db_path=":memory:",
        *,
        players_csv=None,
        seed_players=DEFAULT_SEED_PLAYERS,
        workers=None,
        cache_size=DEFAULT_CACHE_SIZE,
        cache_ttl=DEFAULT_CACHE_TTL,
        sample_interval=DEFAULT_SAMPLE_INTERVAL,
    ):
        if workers is None:
            workers = _default_workers()
        if type(workers) is not int or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.db_path = str(db_path)
        self.players_csv = players_csv
        self.seed_players = seed_players
        self.workers = workers
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.sample_interval = sample_interval
        self.import_report = None
        self.seeded = 0
        self.total = 0
        self.pool = None
        self.cache = None
        self.sampler = None
        self.store = None
        self._table = ()
        self._table_index = {}
        self._now = 0.0
        self._queue_peak = 0
        self._loads = 0
        self._loads_lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._state_lock = threading.Lock()

    # -- lifetime ----------------------------------------------------------

    def start(self):
        """Open the store (seeding or importing it), cache, pool and sampler."""
        with self._state_lock:
            if self._started:
                raise RuntimeError("PlayerService.start() was already called")
            self._started = True
        self.store = PlayerStore(self.db_path)
        try:
            self._fill_store()
            self._load_rating_table()
            self.cache = TTLCache(self.cache_size, self.cache_ttl, name="demo-players")
            # submit_timeout=0: a full queue raises at once instead of
            # blocking the caller, which is the event loop.
            self.pool = WorkerPool(
                self.workers,
                self.workers * MATCH_QUEUE_PER_WORKER,
                name="demo-match",
                submit_timeout=0,
            )
            self.sampler = start_metrics_collector(interval=self.sample_interval)
        except BaseException:
            if self.pool is not None:
                self.pool.close()
            if self.cache is not None:
                self.cache.close()
            self.store.close()
            raise
        log.info(
            "player service started: %s in %s, %s",
            count_noun(self.total, "player"),
            self.db_path,
            count_noun(self.workers, "pool worker"),
        )
        return self

    def stop(self):
        """Close the pool (its queued tasks finish first), cache, sampler and store.

        Idempotent; safe to call when ``start`` failed part-way.
        """
        with self._state_lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        if self.pool is not None:
            self.pool.close()
        if self.cache is not None:
            self.cache.close()
        if self.sampler is not None:
            self.sampler.stop()
        if self.store is not None:
            self.store.close()
        log.info("player service stopped")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _fill_store(self):
        existing = self.store.count()
        if self.players_csv is not None:
            report = self.store.import_csv(self.players_csv)
            self.import_report = report
            for line, message in report.errors[:_MAX_LOGGED_ROW_ERRORS]:
                log.warning("%s: line %d skipped: %s", self.players_csv, line, message)
            unlogged = len(report.errors) - _MAX_LOGGED_ROW_ERRORS
            if unlogged > 0:
                log.warning(
                    "%s: %s more skipped",
                    self.players_csv,
                    count_noun(unlogged, "row"),
                )
            log.info(
                "imported %s from %s (%s skipped)",
                count_noun(report.imported, "player"),
                self.players_csv,
                count_noun(len(report.errors), "row"),
            )
        elif existing == 0:
            self.seeded = self.store.seed(self.seed_players)
            log.info(
                "seeded %s with %s",
                self.db_path,
                count_noun(self.seeded, "generated player"),
            )
        self.total = self.store.count()

    def _load_rating_table(self):
        table = self.store.rating_table()
        self._table = tuple(table)
        self._table_index = {row[0]: row for row in table}
        self._now = max((row[4] for row in table), default=0.0)

    # -- listing and lookup ------------------------------------------------

    def list_players(self, limit=DEFAULT_PAGE_SIZE, offset=0):
        """Return the PlayerPage of ``limit`` players after ``offset``, by id.

        ``limit`` above MAX_PAGE_SIZE is capped to it.  Raises ValueError for
        a negative or non-integer limit or offset.  A cache hit returns the
        cached PlayerPage itself; the only object built per call is the
        ``(limit, offset)`` key.
        """
        if type(limit) is not int or limit < 0:
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if type(offset) is not int or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        if limit > MAX_PAGE_SIZE:
            limit = MAX_PAGE_SIZE
        key = (limit, offset)
        page = self.cache.get(key)
        if page is None:
            page = self.cache.get_or_set(key, lambda: self._load_page(limit, offset))
        return page

    def cached_page(self, limit, offset):
        """Return the cached PlayerPage for valid arguments, or None on a miss.

        For callers that must not block on the database (an event loop):
        on None, call :meth:`list_players` from a thread.
        """
        return self.cache.get((min(limit, MAX_PAGE_SIZE), offset))

    def _count_load(self):
        with self._loads_lock:
            self._loads += 1

    def _load_page(self, limit, offset):
        self._count_load()
        # Past the end the page is empty; clamping keeps huge offsets within
        # SQLite's 64-bit integers.
        players = tuple(self.store.page(limit, min(offset, self.total)))
        body = json.dumps(
            {
                "players": [p.to_dict() for p in players],
                "limit": limit,
                "offset": offset,
                "total": self.total,
            },
            separators=(",", ":"),
        ).encode()
        return PlayerPage(limit, offset, self.total, players, body)

    def get_player(self, player_id):
        """Return the Player with this id; raise UnknownPlayerError if none."""
        player = self.cache.get(player_id)
        if player is None:
            player = self.cache.get_or_set(
                player_id, lambda: self._load_player(player_id)
            )
        if player is _UNKNOWN:
            raise UnknownPlayerError(player_id)
        return player

    def cached_player(self, player_id):
        """Return the cached Player, or None if it is not cached or unknown."""
        player = self.cache.get(player_id)
        return None if player is _UNKNOWN else player

    def _load_player(self, player_id):
        self._count_load()
        player = None
        if player_id in self._table_index:
            player = self.store.get(player_id)
        return _UNKNOWN if player is None else player

    # -- matchmaking -------------------------------------------------------

    def submit_match(self, player_id, count=DEFAULT_MATCH_COUNT):
        """Queue a matchmaking request on the pool and return its Future.

        The Future's result is a list of opponent dicts (the player's fields
        plus ``score``), best first.  Raises UnknownPlayerError at once for
        an unknown id, ValueError for a count outside 1..MAX_MATCH_COUNT and
        MatchQueueFullError when the pool's queue is full.  Never blocks.
        """
        if type(count) is not int or not 1 <= count <= MAX_MATCH_COUNT:
            raise ValueError(
                f"count must be an integer from 1 to {MAX_MATCH_COUNT}, got {count!r}"
            )
        row = self._table_index.get(player_id)
        if row is None:
            raise UnknownPlayerError(player_id)
        try:
            future = self.pool.submit(self._match, row, count)
        except QueueFullError:
            raise MatchQueueFullError(
                f"matchmaking queue is full ({self.pool.queue_size} requests "
                "waiting); retry later"
            ) from None
        # The queue is longest right after a submit, so sampling it here
        # sees the peak closely enough for the load report.
        queued = self.pool.stats()["queued"]
        if queued > self._queue_peak:
            self._queue_peak = queued
        return future

    def _match(self, row, count):
        opponents = []
        for score, opponent_id in best_opponents(row, self._table, count, self._now):
            entry = self.get_player(opponent_id).to_dict()
            entry["score"] = round(score, 6)
            opponents.append(entry)
        return opponents

    # -- statistics --------------------------------------------------------

    def stats(self):
        """Return pool and cache statistics and counters of this service.

        ``cache_loads`` counts the pages and players read from the database
        because the cache did not have them.  It is the true miss count:
        the cache's own ``misses`` also counts the lookups that precede each
        load.
        """
        return {
            "pool": self.pool.stats() if self.pool is not None else {},
            "cache": self.cache.stats() if self.cache is not None else None,
            "cache_loads": self._loads,
            "pool_queue_peak": self._queue_peak,
        }
