"""What the app keeps between requests, and how: shared, single-flight, encrypted.

- :mod:`.cache`: every access to the shared cache (errors become ``CacheUnavailable``: an outage,
  never a 500), and ``SealedView`` for entries that must be trusted when read back;
- :mod:`.singleflight`: one worker asks the provider, the others wait for its sealed answer;
- :mod:`.encryption`: Fernet boxes for client secrets in the database and for tokens at rest.

May import: :mod:`django_duo_oidc.conf` and :mod:`django_duo_oidc.core` only (and Django's cache).
"""
