"""Fake Duo servers for the tests: processes that check what Duo checks, driven by Duo's own SDKs."""
