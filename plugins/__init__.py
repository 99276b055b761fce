"""Built-in plugins of argilla-worker, registered through the same entry points as third-party ones."""
