"""The dedup window (EVENTS.md "Duplicates"): the eventIds a customer applied recently, so that a
re-published event is applied once. Kept inside the customer's stored value: 8 bytes per eventId (a key
from its BLAKE2b digest), grouped by the hour it was applied in, whole hours dropped when they leave the
window, so an eventId is remembered for the window and at most an hour more."""

import struct
from hashlib import blake2b

from projections.state import CorruptValue

HOUR_MS = 3_600_000
KEY_BYTES = 8
_GROUP = struct.Struct(">IH")  # an hour (since the epoch) and how many keys follow


def dedup_key(event_id: str) -> bytes:
    """A false match would skip a new event: against a window of 1,000 eventIds, 1 chance in 10^16."""
    return blake2b(event_id.encode(), digest_size=KEY_BYTES).digest()


class DedupWindow:
    """Immutable: `added` returns a new window (the planner's `before` stays what Redis holds)."""

    __slots__ = ("_hours",)

    def __init__(self, hours: dict[int, bytes] | None = None):
        self._hours = hours or {}  # hour -> its keys, concatenated

    def __contains__(self, key: bytes) -> bool:
        """A search of the concatenated keys (a window holds tens of them: cheaper than building a set)."""
        for raw in self._hours.values():
            at = raw.find(key)
            while at >= 0:
                if at % KEY_BYTES == 0:
                    return True
                at = raw.find(key, at + 1)
        return False

    def __len__(self) -> int:
        return sum(len(raw) for raw in self._hours.values()) // KEY_BYTES

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DedupWindow) and self._hours == other._hours

    def __repr__(self) -> str:
        return f"DedupWindow({ {hour: len(raw) // KEY_BYTES for hour, raw in self._hours.items()} })"

    def added(self, keys: list[bytes], now_ms: int, window_ms: int) -> "DedupWindow":
        """This window with `keys` applied now, and without the hours that left the window."""
        hour, since = now_ms // HOUR_MS, (now_ms - window_ms) // HOUR_MS
        hours = (
            self._hours
            if min(self._hours, default=since) >= since
            else {h: raw for h, raw in self._hours.items() if h >= since}
        )
        if not keys:
            return self if hours is self._hours else DedupWindow(hours)
        return DedupWindow({**hours, hour: hours.get(hour, b"") + b"".join(keys)})

    def encode(self) -> bytes:
        return b"".join(_GROUP.pack(hour, len(raw) // KEY_BYTES) + raw for hour, raw in self._hours.items())

    @classmethod
    def decode(cls, raw: bytes) -> "DedupWindow":
        """CorruptValue when the groups do not fill `raw` exactly."""
        hours, at = {}, 0
        while at < len(raw):
            if at + _GROUP.size > len(raw):
                raise CorruptValue(f"dedup window: a group header cut short at byte {at}")
            hour, count = _GROUP.unpack_from(raw, at)
            at += _GROUP.size + KEY_BYTES * count
            if at > len(raw):
                raise CorruptValue(f"dedup window: the keys of hour {hour} cut short")
            hours[hour] = raw[at - KEY_BYTES * count : at]
        return cls(hours)
