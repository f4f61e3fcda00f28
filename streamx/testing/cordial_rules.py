"""What an export request to the Cordial fake must be, and the error each violation gets.

``POST contactactivityexport`` / ``contactexports`` / ``audiencetrendsexport`` validate the body as
the docs and the OpenAPI subset describe (:class:`ExportRules`); a valid one becomes a job. Errors
are ``{error: true, errorKey, message}``: 400 for destination errors (and every error of
contactexports, whose only documented error status is 400), 406 for export configuration errors,
415 for a body that is neither JSON nor form-urlencoded (forms use PHP brackets,
``destination[type]=s3``; :func:`parse_form`). The documented messages are used wherever the docs
give one.

Destinations ``aws``, ``ftp``, ``sftp``, ``s3``, ``gcs`` and ``azureblob`` are valid requests; a
simulator extension, ``local``, is accepted only when the simulator has a ``local_root``. An
``sftp`` destination may name a ``savedKey`` the simulator knows in place of a password.

Undocumented choices: activity exports that select ``message-sent`` must name
``selected_message_type`` (every documented example does); ``name`` allows underscores (the docs'
examples use them; the rule is Laravel's alpha_dash).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from streamx.testing.cordial_http import CordialError
from streamx.testing.provider import CordialEndpoint, as_boolean, as_count, parse_time

DESTINATION_TYPES = ("aws", "ftp", "sftp", "s3", "gcs", "azureblob")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RulesContext(Protocol):
    """What the rules read from the simulator: some answers depend on its configuration."""

    @property
    def local_root(self) -> Path | None: ...

    @property
    def saved_keys(self) -> Mapping[str, str | Path]: ...

    def audience_exists(self, name: str) -> bool: ...


class ExportRules:
    """Validation of one export request, with the status each kind of error gets."""

    def __init__(self, endpoint: CordialEndpoint, sim: RulesContext) -> None:
        self.endpoint = endpoint
        self.sim = sim
        self.config_status = 400 if endpoint == "contactexports" else 406

    def config(self, message: str) -> CordialError:
        return CordialError(self.config_status, message)

    def check(self, body: dict[str, Any]) -> None:
        self._export_type(body)
        self._name(body)
        self._destination(body.get("destination"))
        if "confirmEmail" in body and not _EMAIL.match(str(body["confirmEmail"])):
            raise CordialError(400, "The confirm email must be a valid email address.")
        for flag in ("showHeader", "compress", "showAllProperties"):
            if flag in body and as_boolean(body[flag]) is None:
                raise self.config(f"The {flag} field must be true or false.")
        if "limitRecordsPerFile" in body and as_count(body["limitRecordsPerFile"]) is None:
            raise self.config("Incorrect format for 'limitRecordsPerFile'")
        if self.endpoint == "contactactivityexport":
            self._activity(body)
        elif self.endpoint == "contactexports":
            self._contacts(body)
        else:
            self._trends(body)

    def _export_type(self, body: dict[str, Any]) -> None:
        allowed = ("csv",) if self.endpoint == "audiencetrendsexport" else ("csv", "json", "txt")
        value = body.get("exportType")
        if value is None:
            if self.endpoint == "contactexports":
                return
            raise self.config("Field 'exportType' should be specified")
        if not isinstance(value, str) or value.lower() not in allowed:
            raise self.config("The selected export type is invalid.")
        delimiter = body.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise self.config("Incorrect format for 'delimiter'")

    def _name(self, body: dict[str, Any]) -> None:
        name = body.get("name")
        if name is None or name == "":
            if self.endpoint == "audiencetrendsexport":
                raise self.config("Field 'name' should be provided.")
            if self.endpoint == "contactactivityexport":
                raise self.config("Field 'name' should be specified")
            return
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.config("The name may only contain letters, numbers, dashes and underscores.")

    def _destination(self, destination: Any) -> None:
        if not isinstance(destination, dict) or not destination.get("type"):
            raise CordialError(400, "The destination.type field is required.")
        kind = str(destination["type"]).lower()
        allowed = (*DESTINATION_TYPES, "local") if self.sim.local_root else DESTINATION_TYPES
        if kind not in allowed:
            raise CordialError(400, "The selected destination.transport is invalid.")
        for name in _required_destination_fields(kind, destination):
            if destination.get(name) in (None, ""):
                if name == "password":
                    raise CordialError(400, "Parameter password is not set")
                raise CordialError(
                    400, f"The destination.{name.replace('_', ' ')} field is required."
                )
        if kind in ("sftp", "ftp") and as_count(destination["port"]) is None:
            raise CordialError(400, "The destination.port must be an integer.")
        saved = destination.get("savedKey")
        if kind == "sftp" and saved and str(saved) not in self.sim.saved_keys:
            raise CordialError(400, f"SSH key with such Name/ID: {saved} does not exist.")

    def _activity(self, body: dict[str, Any]) -> None:
        self._timeframe(body)
        single, many = body.get("selected_action_name"), body.get("selected_action_names")
        if single is not None and many is not None:
            raise self.config(
                "Please use only one from existing filters 'selected_action_name' OR "
                "'selected_action_names'"
            )
        if single is not None and (not isinstance(single, str) or not single):
            raise self.config("Incorrect format for 'selected_action_name'")
        if many is not None and not _strings(many):
            raise self.config("Incorrect format for 'selected_action_names'")
        self._message_type(body, [single] if single else list(many or ()))
        if body.get("selected_audience_key") and body.get("selected_contact"):
            raise self.config(
                "Please use only one from existing filters 'selected_audience_key' OR "
                "'selected_contact'"
            )
        audience = body.get("selected_audience_key")
        if audience and not self.sim.audience_exists(str(audience)):
            raise self.config(f"Audience with name {audience} does not exist.")
        for name in ("additionalJsonlFields", "contactFields"):
            if name in body and not _strings(body[name]):
                raise self.config(f"Incorrect format for '{name}'.")
        self._column_headers(body)

    def _message_type(self, body: dict[str, Any], actions: list[str]) -> None:
        kind = body.get("selected_message_type")
        if kind is None:
            if "message-sent" in actions:
                raise self.config("Field 'selected_message_type' should be specified")
            return
        if kind not in ("batch", "automation"):
            raise self.config("The selected selected message type is invalid.")

    def _column_headers(self, body: dict[str, Any]) -> None:
        headers = body.get("columnHeaders")
        if headers is None:
            return
        if headers == []:
            raise CordialError(400, "The columns field is required.")
        valid = isinstance(headers, list) and all(
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("label", ""), str)
            for item in headers
        )
        if not valid:
            raise self.config("Incorrect format for 'columnHeaders'")

    def _contacts(self, body: dict[str, Any]) -> None:
        if "fields" in body and not _strings(body["fields"], allow_empty=True):
            raise self.config("The fields must be an array.")
        lists = body.get("lists", [])
        if not isinstance(lists, list) or not all(
            isinstance(item, (str, int)) and not isinstance(item, bool) for item in lists
        ):
            raise self.config("The lists must be an array.")
        audience = body.get("audience-key")
        if audience and not self.sim.audience_exists(str(audience)):
            raise self.config(f"Audience with name: '{audience}' does not exist.")

    def _trends(self, body: dict[str, Any]) -> None:
        audiences = body.get("audiences")
        if not audiences:
            raise self.config("Field 'audiences' should be provided.")
        if not _strings(audiences):
            raise self.config("Incorrect format for 'audiences'")
        self._timeframe(body)
        for audience in audiences:
            if not self.sim.audience_exists(audience):
                raise self.config(f"Audience '{audience}' does not exist.")

    def _timeframe(self, body: dict[str, Any]) -> None:
        start, end = body.get("selected_timeframe_start"), body.get("selected_timeframe_end")
        if not start or not end:
            raise self.config(
                "Both fields 'selected_timeframe_start' and 'selected_timeframe_end' should be "
                "present."
            )
        bounds = []
        for name, value in (("selected_timeframe_start", start), ("selected_timeframe_end", end)):
            moment = parse_time(value)
            if moment is None:
                raise self.config(f"The '{name}' is invalid. ISO-8601 is a recommended format.")
            bounds.append(moment)
        if bounds[1] < bounds[0]:
            raise self.config(
                "'selected_timeframe_end' cannot be in past in comparison with "
                "'selected_timeframe_start'"
            )


def _required_destination_fields(kind: str, destination: Mapping[str, Any]) -> tuple[str, ...]:
    if kind in ("sftp", "ftp"):
        secret = () if kind == "sftp" and destination.get("savedKey") else ("password",)
        return ("server", "port", "username", *secret, "path")
    if kind == "s3":
        return ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region", "path")
    if kind == "gcs":
        return ("gcs_bucket", "path")
    if kind == "azureblob":
        return ("account", "container", "path")
    if kind == "local":
        return ("path",)
    return ()


def _strings(value: Any, *, allow_empty: bool = False) -> bool:
    return (
        isinstance(value, list)
        and (allow_empty or bool(value))
        and all(isinstance(item, str) and item for item in value)
    )


def parse_form(pairs: MultiDictProxy[str]) -> dict[str, Any]:
    """PHP-style bracket notation (``destination[type]=s3``, ``lists[]=a``,
    ``columnHeaders[0][name]=email``) into nested data, as Cordial's PHP backend reads forms."""
    data: dict[str, Any] = {}
    for key, value in pairs.items():
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node: Any = data
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            fresh: Any = value if last else ([] if parts[index + 1] == "[]" else {})
            if isinstance(node, list):
                node.append(fresh)
                node = node[-1]
            elif last:
                node[part] = value
            else:
                node = node.setdefault(part, fresh)
    return cast(dict[str, Any], _listify(data))


def _listify(node: Any) -> Any:
    """Dicts keyed ``0, 1, ...`` (indexed form keys) become lists."""
    if isinstance(node, list):
        return [_listify(item) for item in node]
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request body as data, from JSON or a PHP-style form (the two types Cordial takes)."""
    media = request.content_type
    if media == "application/x-www-form-urlencoded":
        return parse_form(await request.post())  # type: ignore[arg-type]
    if media != "application/json":
        raise CordialError(
            415,
            "Unsupported Media Type: Content-Type header must be application/json or "
            "application/x-www-form-urlencoded.",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise CordialError(400, f"Malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise CordialError(400, "The request body must be a JSON object.")
    return body


__all__ = ["DESTINATION_TYPES", "ExportRules", "RulesContext", "parse_form", "read_body"]
