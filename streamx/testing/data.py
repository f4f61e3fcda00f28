"""Deterministic, realistic vendor rows, generated lazily from a seed.

The same ``(seed, stream, account, export)`` always yields the same rows, so a test can regenerate
what a simulated export contained and compare streamx's output record for record. Rows are produced
one at a time (nothing is materialized), so a multi-gigabyte export costs constant memory.

Values are chosen to exercise parsers and normalizers the way real exports do: unicode names,
commas, doubled quotes and newlines inside fields, custom properties, ids in the vendors' formats.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CORDIAL_ACTIONS = ("message-sent", "open", "click", "optout", "bounce", "complaint")
CUSTOM_ACTIONS = ("browse", "cart", "order", "wishlist-add")
FIRST_NAMES = ("Åsa", "Björn", "Zoë", "José", "Anaïs", "Łukasz", "美咲", "Ngọc", "O'Brien", "Mary")
LAST_NAMES = ("Lindqvist", "Nuñez", "Smith, Jr.", "Müller", 'van "Dutch" Berg', "山田", "Øster")
SUBJECTS = (
    'Big "Spring" sale, 20% off',
    "Your weekly digest\nwith highlights",
    "Nyheter från oss 🎉",
    "Plain subject",
    'Quote "inside", comma, and\r\nCRLF',
)
DOMAINS = ("example.com", "example.org", "mail.example.net", "exempel.se")
LISTS = ("monthly_newsletter", "weekly_specials", "vip", "nyhetsbrev")
AUDIENCES = ("opened_last_30_days", "clicked_last_30_days", "purchased_last_30_days")
ENTITY_ID_FIELDS = {
    "LISTS": "listId",
    "CAMPAIGNS": "campaignId",
    "MESSAGES": "messageId",
    "PROJECTS": "projectId",
}
#: Every column an activity row from :func:`cordial_activity_rows` can have, flattened for CSV.
ACTIVITY_CSV_COLUMNS = (
    "cID", "_id", "action", "time", "email", "bmID", "mcID", "mdtID", "first", "message_name",
    "properties.url", "properties.bounceType", "properties.reason", "properties.sku",
    "properties.price", "system_properties.ua", "system_properties.ip",
)  # fmt: skip
SYMPLIFY_EVENT_EXPORTS = ("OPENS", "SENT", "CLICKS", "HARD_BOUNCES", "SOFT_BOUNCES", "OPTOUTS")


@dataclass(frozen=True, slots=True)
class Window:
    """The period an export covers; generated timestamps fall inside it."""

    start: dt.datetime
    end: dt.datetime

    @classmethod
    def days_back(cls, days: int, *, now: dt.datetime | None = None) -> Window:
        end = now or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        return cls(end - dt.timedelta(days=days), end)


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.blake2b("\x1f".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _hex_id(rng: random.Random, length: int = 24) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def _email(rng: random.Random, index: int) -> str:
    first = rng.choice(("anna", "bo", "chen", "dana", "eve", "finn", "gus", "hana"))
    return f"{first}.{index}@{rng.choice(DOMAINS)}"


def _moment(rng: random.Random, window: Window) -> dt.datetime:
    span_ms = int((window.end - window.start).total_seconds() * 1000)
    return window.start + dt.timedelta(milliseconds=rng.randrange(max(span_ms, 1)))


def cordial_time(moment: dt.datetime) -> str:
    """Cordial's documented activity time form: ``2017-03-13T22:48:40+0000``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def cordial_activity_rows(
    seed: int, *, rows: int, window: Window, account: str = "demo"
) -> Iterator[dict[str, Any]]:
    """Contact-activity rows keyed by Cordial field names, with nested properties."""
    rng = _rng(seed, "cordial.contact_activity", account)
    for index in range(rows):
        action = rng.choice(CORDIAL_ACTIONS) if rng.random() < 0.9 else rng.choice(CUSTOM_ACTIONS)
        row: dict[str, Any] = {
            "cID": _hex_id(rng),
            "_id": _hex_id(rng),
            "action": action,
            "time": cordial_time(_moment(rng, window)),
            "email": _email(rng, index),
        }
        if action in CORDIAL_ACTIONS:
            bm = f"{rng.randrange(1, 500)}:{_hex_id(rng, 17)}:ot"
            row |= {"bmID": bm, "mcID": f"{bm}:{rng.randrange(1, 9)}", "mdtID": _hex_id(rng)}
            row["message_name"] = rng.choice(SUBJECTS)
        row["first"] = rng.choice(FIRST_NAMES)
        row["properties"] = _activity_properties(rng, action)
        row["system_properties"] = {
            "ua": "Mozilla/5.0 (X11; Linux)",
            "ip": f"192.0.2.{index % 250}",
        }
        yield row


def _activity_properties(rng: random.Random, action: str) -> dict[str, Any]:
    if action == "click":
        return {"url": f"https://shop.example.com/p/{rng.randrange(10**6)}?utm=a,b"}
    if action == "bounce":
        soft = rng.random() < 0.5
        return {"bounceType": "soft" if soft else "hard", "reason": "550 5.1.1 user unknown"}
    if action in CUSTOM_ACTIONS:
        return {"sku": f"SKU-{rng.randrange(10**5)}", "price": round(rng.uniform(1, 500), 2)}
    return {}


def cordial_contact_rows(
    seed: int, *, rows: int, lists: tuple[str, ...] = LISTS, account: str = "demo"
) -> Iterator[dict[str, Any]]:
    """Contact rows: channels.email.*, attributes and one 1/0 column per list."""
    rng = _rng(seed, "cordial.contacts", account)
    for index in range(rows):
        row: dict[str, Any] = {
            "id": _hex_id(rng),
            "channels.email.address": _email(rng, index),
            "channels.email.subscribeStatus": rng.choice(("subscribed", "unsubscribed", "none")),
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": rng.choice(LAST_NAMES),
            "lastModified": cordial_time(_moment(rng, Window.days_back(90))),
        }
        for name in lists:
            row[name] = "1" if rng.random() < 0.4 else "0"
        yield row


def cordial_audience_trend_rows(
    seed: int, *, days: list[dt.date], audiences: tuple[str, ...] = AUDIENCES, account: str = "demo"
) -> Iterator[dict[str, Any]]:
    """One row per audience, one column per day (the documented trends layout)."""
    rng = _rng(seed, "cordial.audience_trends", account)
    for audience in audiences:
        row: dict[str, Any] = {"audience": audience}
        for day in days:
            row[day.isoformat()] = str(rng.randrange(0, 250_000))
        yield row


def symplify_rows(
    seed: int, *, export_type: str, rows: int, window: Window, customer_id: str = "5004"
) -> Iterator[dict[str, Any]]:
    """Statistics-export rows for one Symplify exportType (the format is undocumented)."""
    rng = _rng(seed, "symplify", export_type, customer_id)
    for index in range(rows):
        if export_type in SYMPLIFY_EVENT_EXPORTS:
            yield _symplify_event(rng, export_type, index, window)
        else:
            yield _symplify_entity(rng, export_type, index, window)


def _symplify_event(
    rng: random.Random, export_type: str, index: int, window: Window
) -> dict[str, Any]:
    moment = _moment(rng, window)
    row: dict[str, Any] = {
        "eventId": str(rng.randrange(10**9, 10**10)),
        "contactId": str(rng.randrange(10**6, 10**8)),
        "email": _email(rng, index),
        "campaignId": str(rng.randrange(1000, 99999)),
        "messageId": str(rng.randrange(10**5, 10**7)),
        "messageType": rng.choice(("EMAIL", "SMS")),
        "timestamp": int(moment.timestamp() * 1000),
    }
    if export_type == "CLICKS":
        row["linkTarget"] = f"https://www.example.se/kampanj?id={rng.randrange(999)}&lang=sv"
    if export_type.endswith("BOUNCES"):
        row["bounceReason"] = rng.choice(("mailbox full", "user unknown", "blocked, spam"))
    return row


def _symplify_entity(
    rng: random.Random, export_type: str, index: int, window: Window
) -> dict[str, Any]:
    key = {
        "LISTS": "listId",
        "CAMPAIGNS": "campaignId",
        "MESSAGES": "messageId",
        "PROJECTS": "projectId",
    }
    return {
        key.get(export_type, "id"): str(10_000 + index),
        "name": f"{rng.choice(SUBJECTS)} #{index}",
        "created": int(_moment(rng, window).timestamp() * 1000),
        "size": rng.randrange(0, 10**6),
    }


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects to dotted keys, the way Cordial's CSV files name them."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
