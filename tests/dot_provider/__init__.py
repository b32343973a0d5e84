"""A small django-oauth-toolkit (DOT) project run as a second, independent OpenID provider by the
e2e tier (tests/e2e/conftest_dot.py): the library is tested against a provider nobody here wrote.

Everything configurable comes from the environment (``DOT_*``), so one process serves one test run.
"""
