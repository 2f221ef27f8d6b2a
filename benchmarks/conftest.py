"""Register the pygamesvc pytest plugin for a source checkout.

The same guard as tests/conftest.py: an installed pygamesvc registers the
plugin through its entry point, and registering it twice would fail.  With
the plugin, each benchmark's extra_info gets allocs_per_op.
"""

import sys

if "pygamesvc.pytest_plugin" not in sys.modules:
    pytest_plugins = ["pygamesvc.pytest_plugin"]


def pytest_configure(config):
    # theine (a benchmark peer) starts a maintenance thread on import that
    # runs until the process exits; it is not a leak of the code under test.
    config.addinivalue_line("leak_check_ignore", "*(_maintance)")
