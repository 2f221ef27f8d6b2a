"""Shared test setup: the pygamesvc pytest plugin, pytester, and --run-slow.

An installed pygamesvc registers its plugin through the pytest11 entry
point.  A source checkout with an in-place build has no entry point, so the
plugin is registered here; registering it twice would fail, hence the
check.  Tests marked slow run only with --run-slow.
"""

import sys

import pytest

pytest_plugins = ["pytester"]
if "pygamesvc.pytest_plugin" not in sys.modules:
    pytest_plugins.append("pygamesvc.pytest_plugin")


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (the full exit stress and the "
        "5-million-operation memory checks)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow; pass --run-slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
