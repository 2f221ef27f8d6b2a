"""The ``demo`` subcommand: options and the run sequence.

This module imports only the standard library at import time, so
``python -m pygamesvc --help`` works without the ``demo`` extra installed.
"""

import argparse
import logging
import sqlite3
import sys
import threading

from pygamesvc.demo.text import count_noun

__all__ = ["add_demo_arguments", "run_demo"]

log = logging.getLogger("pygamesvc.demo")

DEFAULT_PORT = 8000
DEFAULT_DB = "pygamesvc-demo.db"
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 256
MAX_LOAD_SECONDS = 24 * 3600


def _port(text):
    value = _integer("port", text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535, got {value}")
    return value


def _positive_int(name, maximum=None):
    def parse(text):
        value = _integer(name, text)
        if value < 1:
            raise argparse.ArgumentTypeError(
                f"{name} must be a positive integer, got {value}"
            )
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"{name} must be at most {maximum}, got {value}"
            )
        return value

    return parse


def _integer(name, text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name} must be an integer, got {text!r}"
        ) from None


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"load duration must be a number of seconds, got {text!r}"
        ) from None
    if not 0 < value <= MAX_LOAD_SECONDS:
        raise argparse.ArgumentTypeError(
            "load duration must be greater than 0 and at most "
            f"{MAX_LOAD_SECONDS} seconds, got {text}"
        )
    return value


def add_demo_arguments(parser):
    """Add the demo subcommand's options to an argparse parser."""
    from pygamesvc.demo.service import MAX_PAGE_SIZE
    from pygamesvc.demo.storage import DEFAULT_SEED_PLAYERS

    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"TCP port to listen on; 0 picks a free port (default: {DEFAULT_PORT}, "
        "or a free port with --load)",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help="SQLite database file, created if missing; ':memory:' keeps "
        "nothing on disk (default: %(default)s in the current directory)",
    )
    parser.add_argument(
        "--players",
        metavar="FILE.csv",
        help="import players from this CSV file, replacing those in the "
        "database; its header names the columns name,rating,level,region,"
        "last_seen. Without it, an empty database is seeded with "
        f"{DEFAULT_SEED_PLAYERS:,} generated players.",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int("workers"),
        default=None,
        metavar="N",
        help="number of WorkerPool threads computing matchmaking scores "
        "(default: the number of CPUs, at most 8)",
    )
    parser.add_argument(
        "--no-request-metrics",
        dest="request_metrics",
        action="store_false",
        help="serve without the HTTP request metrics middleware, to measure "
        "its cost; the pygamesvc_* and process series stay",
    )
    parser.add_argument(
        "--load",
        type=_seconds,
        metavar="SECONDS",
        help="start the service, drive it over HTTP on 127.0.0.1 for this "
        "many seconds with a mix of listings, lookups and matches, print "
        "a summary and exit",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int("concurrency", MAX_CONCURRENCY),
        default=None,
        metavar="N",
        help="with --load only: number of concurrent HTTP clients, each with one "
        f"keep-alive connection (default: {DEFAULT_CONCURRENCY}, "
        f"at most {MAX_CONCURRENCY})",
    )
    parser.epilog = (
        f"GET /players returns at most {MAX_PAGE_SIZE} players a page. "
        "SIGINT or SIGTERM stops the service after in-flight requests finish."
    )
    # run_demo reports option combinations that argparse cannot check through
    # usage_error, so they look like every other usage error.
    parser.set_defaults(func=run_demo, usage_error=parser.error)


def _configure_logging():
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_demo(args):
    """Run the demo service (or load mode) until it stops; return its exit status.

    Exits with status 2 through ``args.usage_error`` for an invalid
    combination of options.
    """
    if args.concurrency is not None and args.load is None:
        # Serving without --load has no clients to size, so the option
        # would be ignored without this error.
        args.usage_error("--concurrency needs --load")
    if args.concurrency is None:
        args.concurrency = DEFAULT_CONCURRENCY
    if args.load and not is_loopback(args.host):
        args.usage_error(
            "load mode sends traffic to the loopback interface only; "
            f"--host must be a loopback address, got {args.host!r}"
        )
    _configure_logging()
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(
            f"pygamesvc demo: error: {exc.name} is not installed; "
            "install the demo extra: pip install 'pygamesvc[demo]'",
            file=sys.stderr,
        )
        return 2

    from pygamesvc.demo.server import ShutdownSignals

    signals = ShutdownSignals()
    signals.install()
    try:
        return _serve(args, signals)
    finally:
        signals.restore()


def _serve(args, signals):
    """Start the service, serve until a shutdown request, close everything."""
    import uvicorn

    from pygamesvc.demo.app import create_app
    from pygamesvc.demo.server import DemoServer, bind_socket
    from pygamesvc.demo.service import PlayerService

    port = args.port
    if port is None:
        port = 0 if args.load else DEFAULT_PORT
    service = PlayerService(args.db, players_csv=args.players, workers=args.workers)
    try:
        service.start()
    except (OSError, ValueError) as exc:
        print(f"pygamesvc demo: error: {exc}", file=sys.stderr)
        service.stop()
        return 1
    except sqlite3.Error as exc:
        # PlayerStore turns failures to open the file into DatabaseOpenError
        # (an OSError); this catches later ones, such as a locked database.
        print(
            f"pygamesvc demo: error: SQLite database {args.db}: {exc}", file=sys.stderr
        )
        service.stop()
        return 1
    try:
        sock = bind_socket(args.host, port)
    except OSError as exc:
        print(
            f"pygamesvc demo: error: cannot listen on {args.host}:{port}: {exc}",
            file=sys.stderr,
        )
        service.stop()
        return 1

    load_thread = None
    try:
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(service, request_metrics=args.request_metrics),
            host=args.host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
        server = DemoServer(config)
        signals.attach(server)
        if args.load:
            from pygamesvc.demo.load import start_load_thread

            stop_load = threading.Event()
            signals.on_shutdown.append(stop_load.set)
            load_thread = start_load_thread(
                server, service, args.host, port, args.load, args.concurrency, stop_load
            )
        log.info(
            "serving %s on http://%s:%d",
            count_noun(service.total, "player"),
            _url_host(args.host),
            port,
        )
        server.run(sockets=[sock])
    finally:
        sock.close()
        service.stop()
    if load_thread is not None:
        load_thread.join()
        load_thread.print_summary(sys.stdout)
    if signals.received is not None:
        log.info("stopped by %s", signals.received)
    return 0


def is_loopback(host):
    """Return whether ``host`` is a loopback or wildcard listen address."""
    return host in ("localhost", "0.0.0.0", "::", "::1") or host.startswith("127.")


def _url_host(host):
    return f"[{host}]" if ":" in host else host
