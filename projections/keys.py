"""The Redis key layout, documented in docs/explanation/key-layout.md: the only place that spells keys and the names
stored inside them.

Every read-model key lives under a generation, `<prefix>:<generation>:...`;
the small key `<prefix>:live` names the generation the API serves, so a
rebuild fills a new generation beside the live one and switches in one SET.
Every key of one customer carries the hash tag `{orgId:customerId}`, so a
customer lives in one Redis Cluster slot and its writes can be one script.
Parts that come from events are percent-encoded: no `:`, `{` or `}` inside.
"""

import zlib
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import quote

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from projections.identity import IndexKey

FIRST_GENERATION = 1
# Index hashes per (org, source, account, identifier type): up to about 500,000 identifiers of one type
# they stay within Redis's packed-hash limit (128 entries); beyond it a bucket becomes a plain hash
# (about 70 bytes an identifier). Changing it changes the layout: a rebuild.
INDEX_BUCKETS = 4096


@lru_cache(maxsize=4096)  # sources and accounts: a few, met on every profile event
def _part(text: str) -> str:
    return quote(text, safe="")


def position_name(topic: str, partition: int) -> str:
    """A partition's name in the positions hash and in a customer's watermarks: `<topic>:<partition>`."""
    return f"{topic}:{partition}"


def source_member(source: str, account_id: str) -> str:
    """A member of the org's sources set: `SOURCE|accountId`."""
    return f"{source}|{account_id}"


def source_of_member(member: bytes) -> tuple[str, str]:
    source, _, account_id = member.decode().partition("|")
    return source, account_id


class Keys:
    def __init__(self, prefix: str = "pv", generation: int = FIRST_GENERATION) -> None:
        self.prefix = f"{prefix}:{generation}"
        self.generation = generation
        self.meta = MetaKeys(prefix)

    def customer(self, org_id: int, customer_id: int) -> str:
        """STRING: `topic:partition=offset,...` (last applied offsets), a newline, the dedup window (its
        length, 4 bytes, then per hour the 8-byte keys of the eventIds applied in it), the state (MessagePack)."""
        return f"{self.customers_of(org_id)}{customer_id}}}"

    def customer_slot(self, org_id: int, customer_id: int) -> int:
        """The cluster slot of the customer's keys (the same in every generation: the hash tag decides);
        what the applied channel's messages name."""
        return key_slot(self.customer(org_id, customer_id).encode())

    def customers_of(self, org_id: int) -> str:
        """What the keys of an org's customers start with (the lookup script appends `<id>}`)."""
        return f"{self.prefix}:c:{{{org_id}:"

    def customer_id_of(self, key: bytes | str) -> tuple[int, int]:
        """(orgId, customerId) of a customer key: its hash tag."""
        text = key.decode() if isinstance(key, bytes) else key
        org_id, _, customer_id = text[text.rindex("{") + 1 : -1].partition(":")
        return int(org_id), int(customer_id)

    def customer_pattern(self) -> str:
        """SCAN pattern of every customer key of this generation."""
        return f"{self.prefix}:c:*"

    def identifier(self, key: IndexKey) -> tuple[str, str]:
        """(HASH, field): the identifier's value in one of INDEX_BUCKETS hashes of its org, source, account
        and type; the field holds `customerId:claimTime,...` (ms), every customer listing it, and the
        latest claim resolves. Small hashes are stored packed (listpack): about 50 bytes an identifier,
        against about 140 for a key of its own."""
        bucket = zlib.crc32(key.value.encode()) % INDEX_BUCKETS
        return (
            f"{self.prefix}:i:{{{key.orgId}:{_part(key.source)}:{_part(key.accountId)}:{key.type}:{bucket}}}",
            key.value,
        )

    def card(self, org_id: int, card_number: str) -> tuple[str, str]:
        """(HASH, field): a card number in one of INDEX_BUCKETS hashes of its org (cards are org-wide, on
        no source); the field holds `customerId:claimTime,...` (ms) of its holders, `customerId:D` for a
        holder whose card is DELETED."""
        bucket = zlib.crc32(card_number.encode()) % INDEX_BUCKETS
        return f"{self.prefix}:k:{{{org_id}:{bucket}}}", card_number

    def identifier_pattern(self) -> str:
        """SCAN pattern of every identifier index hash of this generation."""
        return f"{self.prefix}:i:*"

    def card_pattern(self) -> str:
        """SCAN pattern of every card index hash of this generation."""
        return f"{self.prefix}:k:*"

    def sources(self, org_id: int) -> str:
        """SET: `SOURCE|accountId` of every profile seen in the org (for source=ALL); see source_member."""
        return f"{self.prefix}:s:{{{org_id}}}"

    def positions(self) -> str:
        """HASH: position_name -> next offset to consume; Redis holds every effect below it."""
        return f"{self.prefix}:positions"

    def kinds(self) -> dict[str, str]:
        """What each kind of per-customer key starts with (the memory benchmark sorts keys by it)."""
        claim = IndexKey(orgId=1, source="INSTORE", accountId="", type="mobile", value="1")
        examples = {
            "customer state": self.customer(1, 1),
            "identifier index": self.identifier(claim)[0],
            "card index": self.card(1, "1")[0],
        }
        return {kind: key.split("{", 1)[0] for kind, key in examples.items()}

    def scratch(self, name: str) -> str:
        """A key of this generation that is not read-model (a benchmark's)."""
        return f"{self.prefix}:scratch:{name}"


class MetaKeys:
    """Keys outside any generation: which one is live, and the rebuild's hand-over (projections.generations)."""

    def __init__(self, prefix: str = "pv") -> None:
        self.prefix = prefix

    def live(self) -> str:
        """STRING: the live generation's number (also published on this channel when it changes)."""
        return f"{self.prefix}:live"

    def applied(self) -> str:
        """CHANNEL: a projector wrote customers (applied_message: the generation and the customers' slots):
        readers waiting for an event of a customer in one of those slots (afterEventId) look again."""
        return f"{self.prefix}:applied"

    def generations(self) -> str:
        """HASH: generation -> JSON (state, created, switched)."""
        return f"{self.prefix}:generations"

    def handover(self) -> str:
        """STRING with a lease (TTL): the generation a rebuild is handing over to."""
        return f"{self.prefix}:handover"

    def paused(self, generation: int) -> str:
        """HASH: position_name -> position, for each partition whose projector paused for it."""
        return f"{self.prefix}:handover:{generation}:paused"

    def rate_limit(self, client_id: str) -> str:
        """HASH: a client's shared token bucket (tokens left, when last counted, in Redis's clock); one key,
        one cluster slot (service.limits)."""
        return f"{self.prefix}:rl:{{{_part(client_id)}}}"

    def generation_pattern(self, generation: int) -> str:
        return f"{self.prefix}:{generation}:*"


_LISTED_SLOTS = 1000  # up to this many, a message lists the slots (2 bytes each); more: a bitmap of all


def applied_message(generation: int, slots: Iterable[int]) -> bytes:
    """The applied channel's message: `<generation>\n`, then `L` and the written customers' slots (2 bytes
    each) or `B` and a bitmap of the 16,384 slots (2 KiB), whichever is smaller."""
    unique = sorted(set(slots))
    if len(unique) <= _LISTED_SLOTS:
        return b"%d\nL" % generation + b"".join(slot.to_bytes(2, "big") for slot in unique)
    bitmap = bytearray(REDIS_CLUSTER_HASH_SLOTS // 8)
    for slot in unique:
        bitmap[slot >> 3] |= 0x80 >> (slot & 7)
    return b"%d\nB" % generation + bytes(bitmap)


def applied_slots(message: bytes) -> Callable[[int], bool] | None:
    """Whether an applied message names a slot; None when it does not say (anything may have been written)."""
    _, _, body = message.partition(b"\n")
    kind, payload = body[:1], body[1:]
    if kind == b"L" and len(payload) % 2 == 0:
        listed = {int.from_bytes(payload[i : i + 2], "big") for i in range(0, len(payload), 2)}
        return listed.__contains__
    if kind == b"B" and len(payload) == REDIS_CLUSTER_HASH_SLOTS // 8:
        return lambda slot: bool(payload[slot >> 3] & (0x80 >> (slot & 7)))
    return None
