"""The ledger's page cursors: opaque, URL-safe, signed with a key every API process derives alike; and the
setting's bounds."""

import pytest
from pydantic import ValidationError

from runtime.settings import Settings
from service.cursors import Cursor, Cursors, cursor_key

CURSOR = Cursor(org_id=100737, customer_id=2**63 - 1, seq=12, program_id=973)


def test_a_cursor_round_trips_and_is_url_safe():
    cursors = Cursors(cursor_key(Settings()))
    text = cursors.encode(CURSOR)
    assert cursors.decode(text) == CURSOR
    assert len(text) == 60 and text.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize("position", [0, 10, 30, 59])
def test_any_changed_character_is_refused(position):
    cursors = Cursors(b"key")
    text = cursors.encode(CURSOR)
    changed = text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1 :]
    assert cursors.decode(changed) is None


@pytest.mark.parametrize("text", ["", "x", "=" * 60, "a" * 59, "a" * 61, "a" * 5000, "é" * 60])
def test_anything_else_is_refused(text):
    assert Cursors(b"key").decode(text) is None


def test_the_key_is_the_same_for_the_same_settings_and_another_key_refuses_the_cursor():
    with_secret = Settings(ledger_cursor_secret="s" * 40)
    assert cursor_key(with_secret) == cursor_key(Settings(ledger_cursor_secret="s" * 40))
    assert len({cursor_key(s) for s in (with_secret, Settings(jwt_secret="j" * 40), Settings())}) == 3
    made = Cursors(cursor_key(with_secret)).encode(CURSOR)
    assert Cursors(cursor_key(Settings())).decode(made) is None


@pytest.mark.parametrize("entries", [-1, 1001])
def test_ledger_entries_outside_0_to_1000_are_refused(entries):
    with pytest.raises(ValidationError, match="ledger_entries"):
        Settings(ledger_entries=entries)
    assert Settings(ledger_entries=0).ledger_entries == 0
