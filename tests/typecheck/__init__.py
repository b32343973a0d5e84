"""Files that use the public API as a site would, checked by mypy (``[tool.mypy] files``), not run."""
