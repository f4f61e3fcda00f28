"""Mapping plans: the compiled fast path must equal the interpreter, and caches stay bounded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.codecs.base import Row
from streamx.exceptions import RowError
from streamx.normalize.base import ExportContext
from streamx.normalize.plan import (
    COMPILE_AFTER,
    Plan,
    PlanCache,
    Slot,
    compile_plan,
    interpret,
    make_plan,
)
from streamx.normalize.record_id import id_text
from streamx.normalize.timestamps import to_utc_rfc3339

HOSTILE_KEYS = [
    "a'b",
    'a"b',
    "a\\",
    "line\nbreak",
    "'); import os; os._exit(1) #",
    "{data}",
    "\udc80",
    "",
    "named",
    "attributes",
]


def _upper(raw: Any) -> str | None:
    if raw == "bad":
        raise RowError("bad value")
    return raw.upper() if isinstance(raw, str) else None


_CONVERTS = st.sampled_from([id_text, _upper, to_utc_rfc3339])
_KEYS = st.one_of(st.sampled_from(HOSTILE_KEYS), st.text(max_size=6))
_VALUES = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["", "bad", "2017-03-13T22:48:40+0000", "1394636797030"]),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def plans_and_rows(draw: st.DrawFn) -> tuple[tuple[Slot, ...], tuple[str, ...], dict[str, Any]]:
    keys = draw(st.lists(_KEYS, unique=True, max_size=10))
    fields = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=len(keys)))
    slots: list[Slot] = []
    rest: list[str] = []
    for field in ("a", "b", "c", "d"):
        mine = tuple(k for k, f in zip(keys, fields, strict=False) if f == field)
        if mine and draw(st.booleans()):
            slots.append(Slot(field, mine, draw(_CONVERTS), draw(st.booleans())))
        else:
            rest.extend(mine)
    data = {key: draw(_VALUES) for key in keys}
    return tuple(slots), tuple(rest), data


def _outcome(run: Any, data: dict[str, Any]) -> Any:
    try:
        named, attributes = run(data)
    except RowError as exc:
        return ("error", exc.reason)
    return (list(named.items()), attributes)


@settings(max_examples=400, deadline=None)
@given(plans_and_rows())
def test_compiled_plan_equals_interpreter(case: tuple[Any, ...]) -> None:
    slots, rest, data = case
    compiled = compile_plan(slots, rest)
    expected = _outcome(lambda d: interpret(slots, rest, d), data)
    assert _outcome(compiled, data) == expected


def test_rules_on_one_row() -> None:
    slots = (
        Slot("record_id", ("_id",)),
        Slot("occurred_at", ("time", "ats"), to_utc_rfc3339, True),
        Slot("message_id", ("bmID", "mdtID")),
        Slot("url", ("rl",), id_text, True),
    )
    data = {
        "x": "",
        "_id": 7,
        "time": "",
        "ats": "2017-03-13T22:48:40+0000",
        "bmID": "",
        "mdtID": "m",
        "rl": "https://u/",
    }
    for run in (lambda d: interpret(slots, ("x",), d), compile_plan(slots, ("x",))):
        named, attributes = run(data)
        assert list(named.items()) == [
            ("record_id", "7"),
            ("occurred_at", "2017-03-13T22:48:40.000Z"),
            ("message_id", "m"),
            ("url", "https://u/"),
        ]
        assert attributes == {
            "x": "",
            "time": "",
            "ats": "2017-03-13T22:48:40+0000",
            "rl": "https://u/",
        }


def test_hostile_keys_compile_without_injection() -> None:
    slots = (Slot("a", tuple(HOSTILE_KEYS[:5])), Slot("b", (HOSTILE_KEYS[5],), _upper, True))
    rest = tuple(HOSTILE_KEYS[6:])
    data = {key: f"v{n}" for n, key in enumerate(HOSTILE_KEYS)}
    named, attributes = compile_plan(slots, rest)(data)
    assert named == {"a": "v0", "b": "V5"}
    assert attributes == {key: data[key] for key in HOSTILE_KEYS if key != HOSTILE_KEYS[0]}


def test_row_error_names_the_column_in_both_paths() -> None:
    slots = (Slot("a", ("col'x",), _upper),)
    for run in (lambda d: interpret(slots, (), d), compile_plan(slots, ())):
        with pytest.raises(RowError, match='column "col\'x": bad value'):
            run({"col'x": "bad"})


def test_plan_switches_to_the_compiled_function_when_hot() -> None:
    plan = make_plan(["k", "v"], lambda key: ("email", 0) if key == "k" else None)
    first = plan.run
    outputs = [plan.run({"k": str(n), "v": n}) for n in range(COMPILE_AFTER + 5)]
    assert plan.run is not first
    assert outputs == [({"email": str(n)}, {"v": n}) for n in range(COMPILE_AFTER + 5)]


def test_make_plan_refuses_fields_outside_the_schema() -> None:
    with pytest.raises(ValueError, match="campaign"):
        make_plan(["k"], lambda key: ("campaign", 0))


def test_make_plan_orders_slots_by_schema_and_keys_by_priority() -> None:
    table = {"t": ("occurred_at", 0), "e2": ("email", 1), "e1": ("email", 0), "r": ("record_id", 0)}
    plan = make_plan(["e2", "x", "t", "e1", "r"], table.get)
    assert [(slot.field, slot.keys) for slot in plan.slots] == [
        ("record_id", ("r",)),
        ("occurred_at", ("t",)),
        ("email", ("e1", "e2")),
    ]
    assert plan.rest == ("x",)


def _ctx(stream: str = "s", labels: dict[str, str] | None = None) -> ExportContext:
    return ExportContext("cordial", stream, "a", "e", labels or {})


def test_plan_cache_is_bounded_and_keyed_by_labels() -> None:
    built: list[tuple[str, ...]] = []

    def build(ctx: ExportContext, keys: tuple[str, ...]) -> Plan:
        built.append(keys)
        return make_plan(keys, lambda key: None)

    cache = PlanCache(build, limit=8)
    ctx = _ctx()
    for n in range(50):
        cache.get(Row(1, {f"k{n}": 1}), ctx)
    assert sum(map(len, cache._plans.values())) <= 8
    same = Row(1, {"a": 1})
    assert cache.get(same, ctx) is cache.get(Row(2, {"a": 2}), ctx)
    before = len(built)
    cache.get(same, _ctx(labels={"a": "cID"}))
    cache.get(same, _ctx(stream="other"))
    assert len(built) == before + 2
    cache.get(same, _ctx())  # an equal context (another object) finds the plans already built
    assert len(built) == before + 2
