"""Command line: ``python -m pygamesvc demo`` or the ``pygamesvc`` script."""

import argparse
import sys

from pygamesvc.demo.cli import add_demo_arguments


def build_parser():
    parser = argparse.ArgumentParser(
        prog="pygamesvc",
        description="Native worker pool, TTL cache, metrics and test tooling "
        "for Python game servers.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the reference game service",
        description="Run the reference game service: players in SQLite, "
        "listings and lookups through the cache, matchmaking on the "
        "WorkerPool, Prometheus metrics at /metrics.",
    )
    add_demo_arguments(demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
