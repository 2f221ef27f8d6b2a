"""Command-line arguments that load the pygamesvc plugin in pytester runs.

An installed pygamesvc registers the plugin through its pytest11 entry
point, and loading it a second time with -p raises "Plugin already
registered".  A source checkout with an in-place build has no entry point,
so there the plugin must be named with -p.
"""

from importlib.metadata import entry_points

PLUGIN_MODULE = "pygamesvc.pytest_plugin"


def _entry_point_loads_plugin():
    return any(ep.value == PLUGIN_MODULE for ep in entry_points(group="pytest11"))


LOAD_PLUGIN = () if _entry_point_loads_plugin() else ("-p", PLUGIN_MODULE)
