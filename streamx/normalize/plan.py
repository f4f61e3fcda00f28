"""Mapping plans: decide once per header which source key feeds which record field.

Every row of a CSV file has the same keys, and JSON rows of one export have few distinct key
sets, so a normalizer's work is split in two: building a :class:`Plan` (names, labels,
priorities; once per distinct key tuple, cached by :class:`PlanCache`) and running it on each row
(:meth:`Plan.run`). The rules a plan applies are the lossless rules of docs/schema.md:

- a source key listed in a :class:`Slot` feeds that record field; the first key of the slot
  with a usable value wins, and any other non-empty value stays in ``attributes`` under its key;
- an empty string or null in a slot key means "absent": the field is omitted, nothing is kept;
- a slot with ``keep=True`` transforms its value (timestamps, event types) or copies it out of
  free-form event data, so its source keys are always kept verbatim in ``attributes`` as well
  (empty or not, winner or not);
- every key not in a slot goes to ``attributes`` unchanged, empty strings and nulls included.

Speed: a plan first runs in :func:`interpret` (a loop over its slots). Once it has served
:data:`COMPILE_AFTER` rows it is compiled into straight-line Python (one function per key
tuple, no loops, no tuple unpacking), which halves the per-row cost on a million-row CSV while
a JSON export with ever-changing key sets never pays for compiling a plan used once. Both paths
apply the same rules; the tests hold them to identical output.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final, Generic, NamedTuple, TypeVar

from streamx.codecs.base import Row
from streamx.exceptions import RowError
from streamx.normalize.base import ExportContext
from streamx.normalize.record_id import id_text
from streamx.records import FIELDS

#: Turns a raw source value into the field's value; ``None`` means "not usable here" (the raw
#: value then stays in attributes). Raises RowError for a value that is present but wrong.
Convert = Callable[[Any], Any]
Split = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]

#: Rows a plan serves through the interpreter before it is compiled.
COMPILE_AFTER: Final = 16
_TEXT: Final[tuple[Convert, bool]] = (id_text, False)


class Slot(NamedTuple):
    """One record field and the source keys that can feed it, best first."""

    field: str
    keys: tuple[str, ...]
    convert: Convert = id_text
    keep: bool = False


class Plan:
    """How one key tuple maps: ``slots`` in schema field order, ``rest`` straight to attributes.

    ``plan.run(data)`` returns ``(named fields, attributes)``; it is an instance attribute that
    starts as the counting interpreter and is replaced by the compiled function once hot.
    """

    __slots__ = ("_uses", "rest", "run", "slots")

    def __init__(self, slots: tuple[Slot, ...], rest: tuple[str, ...]) -> None:
        self.slots = slots
        self.rest = rest
        self._uses = 0
        self.run: Split = self._warm_up

    def _warm_up(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        self._uses += 1
        if self._uses >= COMPILE_AFTER:
            self.run = compile_plan(self.slots, self.rest)
        return interpret(self.slots, self.rest, data)


def make_plan(
    keys: Iterable[str],
    slot_of: Callable[[str], tuple[str, int] | None],
    specs: Mapping[str, tuple[Convert, bool]] | None = None,
) -> Plan:
    """Group ``keys`` into slots: ``slot_of(key)`` gives ``(field, priority)`` or ``None``.

    ``specs`` holds a field's converter and keep flag when not plain text (:func:`id_text`).
    Slots follow the schema field order; keys of one slot are ordered by priority, then by their
    position in the row.
    """
    grouped: dict[str, list[tuple[int, int, str]]] = {}
    rest: list[str] = []
    for position, key in enumerate(keys):
        target = slot_of(key)
        if target is None:
            rest.append(key)
        else:
            grouped.setdefault(target[0], []).append((target[1], position, key))
    unknown = set(grouped) - set(FIELDS)
    if unknown:  # a mapping table bug; dropping those keys would lose data silently
        raise ValueError(f"not schema v1 fields: {sorted(unknown)}")
    specs = specs or {}
    slots = tuple(
        Slot(field, tuple(key for *_, key in sorted(grouped[field])), *specs.get(field, _TEXT))
        for field in FIELDS
        if field in grouped
    )
    return Plan(slots, tuple(rest))


def interpret(
    slots: tuple[Slot, ...], rest: tuple[str, ...], data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a plan on one row by looping over its slots (the reference semantics)."""
    attributes = {key: data[key] for key in rest}
    named: dict[str, Any] = {}
    for field, keys, convert, keep in slots:
        for key in keys:
            raw = data[key]
            if keep:
                attributes[key] = raw
            if raw is None or raw == "":
                continue
            if field not in named:
                try:
                    value = convert(raw)
                except RowError as exc:
                    raise RowError(f"column {key!r}: {exc.reason}") from None
                if value is not None:
                    named[field] = value
                    continue
            if not keep:
                attributes[key] = raw
    return named, attributes


def compile_plan(slots: tuple[Slot, ...], rest: tuple[str, ...]) -> Split:
    """The same mapping as :func:`interpret`, as one straight-line function.

    Keys and field names enter the source only through ``repr()``, which always yields a valid
    string literal, so a hostile header cannot inject code.
    """
    env: dict[str, Any] = {"RowError": RowError}
    items = ", ".join(f"{key!r}: data[{key!r}]" for key in rest)
    lines = ["def run(data):", f"    attributes = {{{items}}}", "    named = {}"]
    for number, (field, keys, convert, keep) in enumerate(slots):
        env[f"convert{number}"] = convert
        for position, key in enumerate(keys):
            body = _key_lines(field, key, number, convert is id_text, keep, position > 0)
            lines.extend(_indent(body))
    lines.append("    return named, attributes")
    exec(compile("\n".join(lines), "<streamx plan>", "exec"), env)
    run: Split = env["run"]
    return run


def _key_lines(field: str, key: str, number: int, text: bool, keep: bool, later: bool) -> list[str]:
    """The statements for one source key of a slot (``later``: not the slot's first key)."""
    lines = [f"raw = data[{key!r}]"]
    if keep:
        lines.append(f"attributes[{key!r}] = raw")
    lines.append('if raw is not None and raw != "":')
    body = _value_lines(field, key, number, text, keep)
    if not later:
        return lines + _indent(body)
    if keep:
        return [*lines, f"    if {field!r} not in named:", *_indent(body, 2)]
    return [
        *lines,
        f"    if {field!r} in named:",
        f"        attributes[{key!r}] = raw",
        "    else:",
        *_indent(body, 2),
    ]


def _value_lines(field: str, key: str, number: int, text: bool, keep: bool) -> list[str]:
    """Map one present value; without ``keep`` an unusable value goes to attributes."""
    if text:  # id_text inlined: str as is, int as decimal text, anything else unusable
        lines = [
            "if type(raw) is str:",
            f"    named[{field!r}] = raw",
            "elif type(raw) is int:",
            f"    named[{field!r}] = str(raw)",
        ]
    else:
        reason = f"column {key!r}: "
        lines = [
            "try:",
            f"    value = convert{number}(raw)",
            "except RowError as exc:",
            f"    raise RowError({reason!r} + exc.reason) from None",
            "if value is not None:",
            f"    named[{field!r}] = value",
        ]
    if not keep:
        lines += ["else:", f"    attributes[{key!r}] = raw"]
    return lines


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return ["    " * levels + line for line in lines]


def record(
    ctx: ExportContext, kind: str, record_id: str, named: dict[str, Any], attributes: dict[str, Any]
) -> dict[str, Any]:
    """A schema v1 record; ``named`` must already be in schema field order (plans keep it so)."""
    return {
        "source": ctx.source,
        "stream": ctx.stream,
        "kind": kind,
        "account": ctx.account,
        "export_id": ctx.export_id,
        "record_id": record_id,
        **named,
        "attributes": attributes,
    }


def insert_ordered(named: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """``named`` plus ``field``, keeping schema field order (for values found after the plan)."""
    named[field] = value
    return {name: named[name] for name in FIELDS if name in named}


P = TypeVar("P")


class PlanCache(Generic[P]):
    """Plans by (source, stream, column labels, row keys), bounded so memory never grows.

    The plans of the last context are looked up by row keys alone (a CSV file's rows, and most
    of a JSON file's, hit the last plan); the context's own key (with its sorted column
    labels) is only built when the context changes. Safe to share between threads: the last
    context and its plans are swapped as one tuple, and a race at worst builds a plan twice.
    """

    def __init__(self, build: Callable[[ExportContext, tuple[str, ...]], P], limit: int = 512):
        self._build = build
        self._limit = limit
        self._plans: dict[Hashable, dict[tuple[str, ...], P]] = {}
        self._count = 0
        self._last: tuple[ExportContext | None, dict[tuple[str, ...], P]] = (None, {})

    def get(self, row: Row, ctx: ExportContext) -> P:
        """The plan for this row's keys under ``ctx`` (built on first sight)."""
        keys = tuple(row.data)
        last_ctx, plans = self._last
        if last_ctx is not ctx:
            plans = self._plans_of(ctx)
        plan = plans.get(keys)
        if plan is None:
            plan = self._build(ctx, keys)
            if self._count >= self._limit:
                self._plans.clear()
                self._count = 0
                plans = self._plans_of(ctx)
            plans[keys] = plan
            self._count += 1
        return plan

    def _plans_of(self, ctx: ExportContext) -> dict[tuple[str, ...], P]:
        ctx_key = (ctx.source, ctx.stream, tuple(sorted(ctx.column_labels.items())))
        plans = self._plans.setdefault(ctx_key, {})
        self._last = (ctx, plans)
        return plans
