"""Plugins the worker tests load through ``plugin_modules``, as a third-party package would be."""
