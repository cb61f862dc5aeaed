"""Fixtures of the unit tests."""

import pytest

import service.auth as auth


@pytest.fixture
def counted(monkeypatch):
    """The passwords verify_password checks (hashing is what the caches and the throttle save)."""
    calls = []
    real = auth.verify_password

    def counting(password_hash, password):
        calls.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", counting)
    return calls
