"""Shared test setup: the pygamesvc pytest plugin and pytester.

An installed pygamesvc registers its plugin through the pytest11 entry
point.  A source checkout with an in-place build has no entry point, so the
plugin is registered here; registering it twice would fail, hence the
check.
"""

import sys

pytest_plugins = ["pytester"]
if "pygamesvc.pytest_plugin" not in sys.modules:
    pytest_plugins.append("pygamesvc.pytest_plugin")
