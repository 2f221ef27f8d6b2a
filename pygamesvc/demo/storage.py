"""Player storage for the demo service: one SQLite database file.

The table has one row per player: an integer id, a display name, a rating
(Elo-style, 0 to 4000), a level (1 to 100), a region code and the time the
player was last seen (ISO 8601, UTC).  A new database is seeded with
``DEFAULT_SEED_PLAYERS`` generated players, always the same ones for the same
seed, or filled from a CSV file with :func:`PlayerStore.import_csv`.

One connection serves every thread, guarded by a lock: the service puts a
cache in front of the store, so the database sees few queries and the lock
is not contended.
"""

import csv
import dataclasses
import datetime
import random
import sqlite3
import threading

from pygamesvc.demo.text import count_noun

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_SEED_PLAYERS",
    "LEVEL_RANGE",
    "RATING_RANGE",
    "REGIONS",
    "DatabaseOpenError",
    "ImportReport",
    "Player",
    "PlayerStore",
]

DEFAULT_SEED_PLAYERS = 10_000
REGIONS = ("eu", "na", "sa", "asia", "oce", "af")
RATING_RANGE = (0, 4000)
LEVEL_RANGE = (1, 100)
NAME_MAX_LENGTH = 64
CSV_COLUMNS = ("name", "rating", "level", "region", "last_seen")
# The error for a CSV file without one valid row lists this many row errors.
_MAX_LISTED_ERRORS = 5

# Generated players were last seen within 30 days before this fixed instant,
# so that a seed always produces the same rows.
_SEED_EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
_SEED_WINDOW_SECONDS = 30 * 24 * 3600

_NAME_PARTS = (
    (
        "Swift",
        "Iron",
        "Silent",
        "Crimson",
        "Lucky",
        "Frost",
        "Shadow",
        "Brave",
        "Rapid",
        "Golden",
        "Storm",
        "Quiet",
        "Wild",
        "Clever",
        "Bold",
        "Lone",
    ),
    (
        "Fox",
        "Wolf",
        "Hawk",
        "Bear",
        "Otter",
        "Raven",
        "Tiger",
        "Lynx",
        "Viper",
        "Falcon",
        "Badger",
        "Moose",
        "Heron",
        "Panda",
        "Shark",
        "Owl",
    ),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS players (
    id        INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL,
    rating    INTEGER NOT NULL,
    level     INTEGER NOT NULL,
    region    TEXT    NOT NULL,
    last_seen TEXT    NOT NULL
);
"""

_COLUMNS_SQL = "id, name, rating, level, region, last_seen"


@dataclasses.dataclass(frozen=True, slots=True)
class Player:
    """One row of the players table."""

    id: int
    name: str
    rating: int
    level: int
    region: str
    last_seen: str

    def to_dict(self):
        return {
            "id": self.id,
            "name": self.name,
            "rating": self.rating,
            "level": self.level,
            "region": self.region,
            "last_seen": self.last_seen,
        }


@dataclasses.dataclass(slots=True)
class ImportReport:
    """The outcome of a CSV import: rows taken and rows skipped.

    ``errors`` contains ``(line_number, message)`` pairs, one per skipped row,
    with line numbers counted from 1 at the header line.
    """

    imported: int = 0
    errors: list = dataclasses.field(default_factory=list)


class DatabaseOpenError(OSError):
    """Raised when the SQLite database file cannot be opened or created."""


class PlayerStore:
    """The players table in one SQLite database file (or ``":memory:"``)."""

    def __init__(self, path):
        """Open or create the database; raise DatabaseOpenError if that fails."""
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = None
        try:
            # check_same_thread=False: the lock above serializes every use.
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            with self._lock, self._db:
                self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if self._db is not None:
                self._db.close()
            raise DatabaseOpenError(
                f"cannot open SQLite database {self.path}: {exc}"
            ) from exc

    def close(self):
        with self._lock:
            self._db.close()

    def count(self):
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM players").fetchone()[0]

    def get(self, player_id):
        """Return the Player with this id, or None if there is none."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS_SQL} FROM players WHERE id = ?", (player_id,)
            ).fetchone()
        return None if row is None else Player(*row)

    def page(self, limit, offset):
        """Return up to ``limit`` players in id order, skipping ``offset``."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS_SQL} FROM players ORDER BY id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [Player(*row) for row in rows]

    def rating_table(self):
        """Return every player as ``(id, rating, level, region, last_seen)``.

        ``last_seen`` is in seconds since the Unix epoch here, which is what
        the matchmaking score needs.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, rating, level, region, last_seen FROM players"
            ).fetchall()
        table = []
        for player_id, rating, level, region, last_seen in rows:
            seen = datetime.datetime.fromisoformat(last_seen).timestamp()
            table.append((player_id, rating, level, region, seen))
        return table

    def seed(self, count=DEFAULT_SEED_PLAYERS, seed=0):
        """Insert ``count`` generated players; the same seed gives the same rows."""
        if count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        rng = random.Random(seed)
        rows = []
        for _ in range(count):
            name = f"{rng.choice(_NAME_PARTS[0])}{rng.choice(_NAME_PARTS[1])}"
            name = f"{name}{rng.randrange(10_000):04d}"
            # Ratings cluster around 1500 like a real ladder's.
            rating = min(max(round(rng.gauss(1500, 350)), 0), RATING_RANGE[1])
            level = rng.randint(*LEVEL_RANGE)
            region = rng.choice(REGIONS)
            ago = datetime.timedelta(seconds=rng.randrange(_SEED_WINDOW_SECONDS))
            last_seen = (_SEED_EPOCH - ago).isoformat()
            rows.append((name, rating, level, region, last_seen))
        self._insert(rows, replace=False)
        return count

    def import_csv(self, path, *, replace=True):
        """Import players from a CSV file and return an ImportReport.

        The first line must name the columns ``name, rating, level, region,
        last_seen`` (in any order; other columns are ignored).  A row with a
        missing or invalid value is skipped and reported with its line
        number; the others are inserted in one transaction, replacing the
        players already stored unless ``replace`` is false.  Raises
        ValueError if the header lacks a column.
        """
        report = ImportReport()
        rows = []
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise ValueError(
                    f"{path}: line 1: the header must name the columns "
                    f"{', '.join(CSV_COLUMNS)}; missing: {', '.join(missing)}"
                )
            for record in reader:
                try:
                    rows.append(_parse_csv_record(record))
                except ValueError as exc:
                    report.errors.append((reader.line_num, str(exc)))
        if not rows:
            raise ValueError(_no_valid_rows_message(path, report.errors))
        self._insert(rows, replace=replace)
        report.imported = len(rows)
        return report

    def _insert(self, rows, *, replace):
        with self._lock, self._db:
            if replace:
                self._db.execute("DELETE FROM players")
            self._db.executemany(
                "INSERT INTO players (name, rating, level, region, last_seen) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )


def _no_valid_rows_message(path, errors):
    """Return the error for a CSV file without one valid row, with its first errors."""
    if not errors:
        return f"{path}: no player rows after the header; nothing was imported"
    shown = [f"line {line}: {message}" for line, message in errors[:_MAX_LISTED_ERRORS]]
    unlisted = len(errors) - len(shown)
    if unlisted > 0:
        shown.append(f"and {count_noun(unlisted, 'more row', 'more rows')}")
    return (
        f"{path}: no valid player rows, so nothing was imported "
        f"({count_noun(len(errors), 'row')} skipped): {'; '.join(shown)}"
    )


def _parse_csv_record(record):
    """Validate one CSV record and return it as a row tuple, or raise ValueError."""
    if None in record:
        raise ValueError("more fields than the header names")
    values = {}
    for column in CSV_COLUMNS:
        value = record.get(column)
        if value is None:
            raise ValueError(f"{column} is missing")
        values[column] = value.strip()

    name = values["name"]
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ValueError(
            f"name must be 1 to {NAME_MAX_LENGTH} characters, got {name!r}"
        )
    rating = _parse_int_in_range("rating", values["rating"], RATING_RANGE)
    level = _parse_int_in_range("level", values["level"], LEVEL_RANGE)
    region = values["region"].lower()
    if region not in REGIONS:
        raise ValueError(
            f"region must be one of {', '.join(REGIONS)}, got {values['region']!r}"
        )
    last_seen = _parse_timestamp(values["last_seen"])
    return (name, rating, level, region, last_seen)


def _parse_int_in_range(column, text, bounds):
    low, high = bounds
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"{column} must be an integer from {low} to {high}, got {text!r}"
        ) from None
    if not low <= value <= high:
        raise ValueError(
            f"{column} must be an integer from {low} to {high}, got {value}"
        )
    return value


def _parse_timestamp(text):
    """Return an ISO 8601 UTC string for an ISO 8601 date-time (naive means UTC)."""
    # Python 3.10's fromisoformat does not accept a trailing "Z".
    iso_text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.datetime.fromisoformat(iso_text)
    except ValueError:
        raise ValueError(
            f"last_seen must be an ISO 8601 date and time, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).isoformat()
