"""Shared test setup: make sure the pygamesvc pytest plugin is active.

An installed pygamesvc registers the plugin through its pytest11 entry
point.  Running from a source checkout (the in-place build) has no entry
point, so the plugin is registered here; registering it twice would fail,
hence the check.
"""

import sys

if "pygamesvc.pytest_plugin" not in sys.modules:
    pytest_plugins = ["pygamesvc.pytest_plugin"]
