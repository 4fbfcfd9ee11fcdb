"""Root conftest: the validation plugin, also when entry-point autoloading is off.

The plugin registers itself through the ``pytest11`` entry point of the installed
package; naming it here makes ``pytest`` from the checkout find the options even
with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` (pytest skips an already loaded one).
"""

pytest_plugins = ("pmt_core.pytest_plugin",)
