"""Duo's 40-character Web SDK secrets make PyJWT warn (InsecureKeyLengthWarning) on every HS512 call
the SDK makes; the mfa module silences exactly that message, nothing wider. Checked in a fresh
interpreter: pytest replaces the warning filters around each test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import django
django.setup()
import django_duo_oidc.mfa.duo  # installs the filter
import jwt
jwt.encode({"a": 1}, "x" * 40, algorithm="HS512")
jwt.encode({"a": 1}, "y" * 41, algorithm="HS512")
"""


def test_only_the_40_byte_sha512_warning_is_silenced() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "40 bytes long" not in done.stderr
    assert "41 bytes long" in done.stderr  # a key of another length still warns
