"""Tests of odradek.testing itself: they use the plugin's fixtures.

The plugin is loaded by its `pytest11` entry point once the package is installed; in a checkout
whose installed metadata predates the entry point, run with `-p odradek.testing.plugin`.
"""

from __future__ import annotations

import pytest

# pytester's in-process runs drop the modules they imported when they end. The broker's
# handlers register themselves in odradek.server.registry on import; were the registry dropped
# and imported again while the handlers package stayed reachable from its parent package, a
# later run would start a broker that knows no API. Importing the broker here keeps it whole.
import odradek.server.node  # noqa: F401

PLUGIN = "odradek.testing.plugin"


@pytest.fixture(autouse=True)
def _plugin_loaded(request: pytest.FixtureRequest) -> None:
    if not request.config.pluginmanager.hasplugin(PLUGIN):
        pytest.skip(f"the {PLUGIN} plugin is not loaded (install the package or use -p {PLUGIN})")


def pytest_configure(config: pytest.Config) -> None:
    # The plugin's own tests run pytest inside pytest; pytester is not loaded by default and a
    # conftest below the root may not use `pytest_plugins`.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
