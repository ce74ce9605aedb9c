"""What several test files share, importable as ``helpers`` (``pythonpath = ["tests"]`` in pyproject.toml)."""
