"""The Cordial fake accepts every documented example and rejects documented errors as documented."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from multidict import MultiDict, MultiDictProxy
from sim_helpers import poll_json

from streamx.testing import CordialSim, ManualClock, StaticRows
from streamx.testing.cordial_http import basic_authorization
from streamx.testing.cordial_rules import parse_form

# The example requests of cordial-contactactivityexport.txt, verbatim.
ACTIVITY_EXAMPLES: list[dict[str, Any]] = [
    {"name": "activities_batch_march25", "exportType": "csv", "destination": {"type": "aws"},
     "showHeader": True, "selected_timeframe_start": "2019-03-24T00:00:00.000Z",
     "selected_timeframe_end": "2019-03-25T23:59:59.999Z", "selected_message_type": "batch",
     "selected_action_name": "message-sent", "compress": False,
     "confirmEmail": "msmith@example.com"},
    {"name": "batch-30days", "exportType": "csv", "destination": {"type": "ftp",
     "server": "ftp.example.com", "port": 21, "username": "cordial@example.com",
     "password": "cordial", "path": "./"}, "showHeader": True,
     "selected_timeframe_start": "2019-03-24T00:00:00.000Z",
     "selected_timeframe_end": "2019-03-25T23:59:59.999Z",
     "selected_action_names": ["message-sent", "open", "click"],
     "selected_message_type": "batch", "compress": False, "confirmEmail": "msmith@example.com"},
    {"name": "activities_batch_march25", "exportType": "csv", "destination": {"type": "s3",
     "aws_access_key_id": "A1234567890", "aws_secret_access_key": "B1234567890",
     "aws_bucket": "my_bucket", "aws_region": "us-west-2", "path": "folder"}, "showHeader": True,
     "selected_timeframe_start": "2019-03-24T00:00:00.000Z",
     "selected_timeframe_end": "2019-03-25T23:59:59.999Z", "selected_message_type": "batch",
     "selected_action_name": "message-sent", "compress": False,
     "confirmEmail": "msmith@example.com"},
    {"name": "activities_batch_march25", "exportType": "csv", "destination": {"type": "gcs",
     "gcs_bucket": "bucketname", "path": "/contactactivities"}, "columnHeaders": [
     {"name": "action", "label": "Action"}, {"name": "email", "label": "Contact Email"},
     {"name": "cID", "label": "Contact ID"}], "showHeader": True,
     "selected_timeframe_start": "2019-03-24T00:00:00.000Z",
     "selected_timeframe_end": "2019-03-25T23:59:59.999Z", "selected_message_type": "batch",
     "selected_action_name": "message-sent", "compress": False,
     "confirmEmail": "msmith@example.com"},
    {"name": "bounce-30days", "exportType": "json", "destination": {"type": "ftp",
     "server": "ftp.example.com", "port": 21, "username": "username@example.com",
     "password": "password", "path": "./"},
     "selected_timeframe_start": "2018-02-01T00:00:00.000Z",
     "selected_timeframe_end": "2018-02-27T23:59:59.999Z", "selected_action_name": "bounce",
     "showAllProperties": False, "compress": False, "confirmEmail": "msmith@example.com",
     "columnHeaders": [{"name": "_id", "label": "_id"}, {"name": "action", "label": "action"},
     {"name": "email", "label": "email"}, {"name": "cID", "label": "cID"},
     {"name": "bmID", "label": "msID"}, {"name": "mcID", "label": "mcID"},
     {"name": "mdtID", "label": "mdtID"}, {"name": "time", "label": "time"},
     {"name": "first", "label": "first"}, {"name": "message_name", "label": "message_name"},
     {"name": "system_properties.bt", "label": "system_properties_bt"},
     {"name": "system_properties.link", "label": "system_properties_link_key"},
     {"name": "system_properties.rl", "label": "system_properties_redirect_link"},
     {"name": "properties.custom_per_client_and_not_required",
      "label": "properties_custom_per_client_and_not_required"}]},
]  # fmt: skip

# cordial-contactexports.txt
CONTACT_EXAMPLES: list[dict[str, Any]] = [
    {"exportType": "csv", "name": "contactExport", "destination": {"type": "aws"},
     "showHeader": True, "confirmEmail": "msmith@example.com"},
    {"exportType": "csv", "name": "contactExport", "destination": {"type": "sftp",
     "server": "example.com", "port": "21", "username": "username", "password": "password",
     "path": "/"}, "showHeader": True, "fields": ["channels.email.address", "first_name"],
     "confirmEmail": "msmith@example.com"},
    {"exportType": "csv", "name": "myExportFilename", "destination": {"type": "s3",
     "aws_access_key_id": "A1234567890", "aws_secret_access_key": "B1234567890",
     "aws_bucket": "my_bucket", "aws_region": "us-west-2", "path": "folder"}, "showHeader": True,
     "audience-key": "30_day_engaged", "fields": ["channels.email.address",
     "channels.email.subscribeStatus"], "lists": ["monthly_newsletter", "first_name"],
     "confirmEmail": "msmith@example.com"},
    {"exportType": "csv", "name": "contactExport", "destination": {"type": "gcs",
     "gcs_bucket": "bucketname", "path": "/contactexports"}, "showHeader": True,
     "audience-key": "engaged-march", "confirmEmail": "emsmith@example.com"},
]  # fmt: skip

# cordial-audiencetrendsexport.txt
_TRENDS = {
    "name": "audiencetrends",
    "exportType": "csv",
    "selected_timeframe_start": "2021-07-16",
    "selected_timeframe_end": "2021-08-16",
    "audiences": ["audience1", "audience2"],
}
TRENDS_EXAMPLES: list[dict[str, Any]] = [
    {**_TRENDS, "destination": {"type": "aws"}},
    {**_TRENDS, "destination": {"type": "sftp", "server": "example.com", "port": "21",
     "username": "username", "password": "password", "path": "/"}},
    {**_TRENDS, "destination": {"type": "s3", "aws_access_key_id": "A1234567890",
     "aws_secret_access_key": "B1234567890", "aws_bucket": "my_bucket",
     "aws_region": "us-west-2", "path": "folder"}},
    {**_TRENDS, "destination": {"type": "gcs", "gcs_bucket": "bucketname",
     "path": "/audiencetrendsexport"}},
]  # fmt: skip

EXAMPLES = (
    [("contactactivityexport", body) for body in ACTIVITY_EXAMPLES]
    + [("contactexports", body) for body in CONTACT_EXAMPLES]
    + [("audiencetrendsexport", body) for body in TRENDS_EXAMPLES]
)


@pytest_asyncio.fixture
async def sim(clock: ManualClock) -> AsyncIterator[CordialSim]:
    audiences = {"audience1", "audience2", "30_day_engaged", "engaged-march"}
    async with CordialSim(clock=clock, audiences=audiences) as running:
        yield running


async def _post(
    sim: CordialSim, session: aiohttp.ClientSession, endpoint: str, body: Any
) -> tuple[int, Any]:
    async with session.post(
        f"{sim.base_url}/{endpoint}", json=body, headers=sim.auth_headers
    ) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("endpoint", "body"), EXAMPLES)
@pytest.mark.asyncio
async def test_documented_example_is_accepted(
    sim: CordialSim, session: aiohttp.ClientSession, endpoint: str, body: dict[str, Any]
) -> None:
    status, answer = await _post(sim, session, endpoint, body)
    assert status == 200, answer
    assert list(answer) == ["jobId"]
    job = sim.job(answer["jobId"])
    assert job["status"] == "Scheduled"
    assert job["jobName"] == {"contactactivityexport": "ExportEvents",
                              "contactexports": "ExportContacts",
                              "audiencetrendsexport": "ExportAudienceTrends"}[endpoint]  # fmt: skip


def _changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy with ``a.b`` set to ``value`` (``...`` deletes it)."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = changed
    for parent in parents:
        node = node[parent]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return changed


ACT, CON, TRE = ACTIVITY_EXAMPLES[2], CONTACT_EXAMPLES[2], TRENDS_EXAMPLES[2]
BOTH_ACTIONS = ("Please use only one from existing filters 'selected_action_name' OR "
                "'selected_action_names'")  # fmt: skip
PAST_END = ("'selected_timeframe_end' cannot be in past in comparison with "
            "'selected_timeframe_start'")  # fmt: skip
BOTH_TIMES = ("Both fields 'selected_timeframe_start' and 'selected_timeframe_end' should be "
              "present.")  # fmt: skip

ERROR_CASES = [
    # destination errors: 400 everywhere
    ("contactactivityexport", _changed(ACT, "destination", ...), 400,
     "The destination.type field is required."),
    ("audiencetrendsexport", _changed(TRE, "destination.type", ...), 400,
     "The destination.type field is required."),
    ("contactactivityexport", _changed(ACT, "destination.type", "dropbox"), 400,
     "The selected destination.transport is invalid."),
    ("contactactivityexport", _changed(ACT, "destination.aws_access_key_id", ...), 400,
     "The destination.aws access key id field is required."),
    ("contactactivityexport", _changed(ACT, "destination.aws_secret_access_key", ...), 400,
     "The destination.aws secret access key field is required."),
    ("audiencetrendsexport", _changed(TRE, "destination.aws_bucket", ...), 400,
     "The destination.aws bucket field is required."),
    ("contactexports", _changed(CON, "destination.aws_region", ...), 400,
     "The destination.aws region field is required."),
    ("contactexports", _changed(CONTACT_EXAMPLES[1], "destination.username", ...), 400,
     "The destination.username field is required."),
    ("contactexports", _changed(CONTACT_EXAMPLES[1], "destination.password", ...), 400,
     "Parameter password is not set"),
    ("contactactivityexport", _changed(ACTIVITY_EXAMPLES[1], "destination.path", ...), 400,
     "The destination.path field is required."),
    ("contactactivityexport", _changed(ACT, "confirmEmail", "not-an-email"), 400,
     "The confirm email must be a valid email address."),
    ("contactexports", _changed(CONTACT_EXAMPLES[1], "destination.savedKey", "wrong"), 400,
     "SSH key with such Name/ID: wrong does not exist."),
    ("contactactivityexport", _changed(ACT, "columnHeaders", []), 400,
     "The columns field is required."),
    # export configuration errors: 406 (contactactivityexport, audiencetrendsexport)
    ("contactactivityexport", _changed(ACT, "exportType", ...), 406,
     "Field 'exportType' should be specified"),
    ("contactactivityexport", _changed(ACT, "exportType", "xml"), 406,
     "The selected export type is invalid."),
    ("contactactivityexport", _changed(ACT, "selected_action_names", ["open"]), 406, BOTH_ACTIONS),
    ("contactactivityexport", _changed(ACTIVITY_EXAMPLES[1], "selected_action_names", "open"),
     406, "Incorrect format for 'selected_action_names'"),
    ("contactactivityexport", _changed(ACT, "selected_message_type", ...), 406,
     "Field 'selected_message_type' should be specified"),
    ("contactactivityexport", _changed(ACT, "selected_timeframe_end", "2019-03-01T00:00:00Z"),
     406, PAST_END),
    ("contactactivityexport", _changed(ACT, "selected_timeframe_start", "yesterday"), 406,
     "The 'selected_timeframe_start' is invalid. ISO-8601 is a recommended format."),
    ("contactactivityexport", _changed(ACT, "selected_timeframe_end", ...), 406, BOTH_TIMES),
    ("contactactivityexport", {**ACT, "selected_audience_key": "vip", "selected_contact": "x@y.z"},
     406, "Please use only one from existing filters 'selected_audience_key' OR "
     "'selected_contact'"),
    ("contactactivityexport", {**ACT, "additionalJsonlFields": "a,b"}, 406,
     "Incorrect format for 'additionalJsonlFields'."),
    ("contactactivityexport", _changed(ACT, "name", "march 25!"), 406,
     "The name may only contain letters, numbers, dashes and underscores."),
    ("contactactivityexport", {**ACT, "limitRecordsPerFile": -5}, 406,
     "Incorrect format for 'limitRecordsPerFile'"),
    ("audiencetrendsexport", _changed(TRE, "audiences", ...), 406,
     "Field 'audiences' should be provided."),
    ("audiencetrendsexport", _changed(TRE, "name", ...), 406, "Field 'name' should be provided."),
    ("audiencetrendsexport", _changed(TRE, "selected_timeframe_start", ...), 406, BOTH_TIMES),
    ("audiencetrendsexport", _changed(TRE, "selected_timeframe_end", "2021-08-32"), 406,
     "The 'selected_timeframe_end' is invalid. ISO-8601 is a recommended format."),
    ("audiencetrendsexport", _changed(TRE, "selected_timeframe_end", "2021-07-01"), 406, PAST_END),
    ("audiencetrendsexport", _changed(TRE, "audiences", ["fakeAudience"]), 406,
     "Audience 'fakeAudience' does not exist."),
    ("audiencetrendsexport", _changed(TRE, "exportType", "json"), 406,
     "The selected export type is invalid."),
    # contactexports: every error is a 400
    ("contactexports", _changed(CON, "exportType", "xml"), 400,
     "The selected export type is invalid."),
    ("contactexports", _changed(CON, "audience-key", "fakeAudience"), 400,
     "Audience with name: 'fakeAudience' does not exist."),
    ("contactexports", _changed(CON, "fields", "email"), 400, "The fields must be an array."),
    ("contactexports", _changed(CON, "name", "my/export"), 400,
     "The name may only contain letters, numbers, dashes and underscores."),
]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "body", "status", "message"), ERROR_CASES)
@pytest.mark.asyncio
async def test_documented_error_cases(
    sim: CordialSim,
    session: aiohttp.ClientSession,
    endpoint: str,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    got, answer = await _post(sim, session, endpoint, body)
    assert (got, answer) == (
        status,
        {"error": True, "errorKey": "GENERIC_ERROR_KEY", "message": message},
    )


@pytest.mark.asyncio
async def test_unsupported_media_type_is_415(
    sim: CordialSim, session: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/contactexports"
    headers = {"Content-Type": "text/plain", **sim.auth_headers}
    async with session.post(url, data=b"{}", headers=headers) as response:
        assert response.status == 415
        answer = await response.json()
    assert answer["error"] is True
    assert answer["errorKey"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "application/json" in answer["message"]


@pytest.mark.asyncio
async def test_form_urlencoded_body_with_brackets(
    clock: ManualClock, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    form = [
        ("exportType", "csv"),
        ("name", "contactExport"),
        ("destination[type]", "local"),
        ("destination[path]", "forms"),
        ("showHeader", "1"),
        ("fields[]", "email"),
        ("fields[]", "first_name"),
        ("lists[]", "vip"),
    ]
    rows = [{"email": "a@example.com", "first_name": "Åsa", "vip": "1", "other": "x"}]
    async with CordialSim(clock=clock, local_root=tmp_path, provider=StaticRows(rows)) as sim:
        url = f"{sim.base_url}/contactexports"
        async with session.post(url, data=form, headers=sim.auth_headers) as response:
            assert response.status == 200, await response.text()
            job_id = (await response.json())["jobId"]
        clock.advance(60)
        job = await poll_json(
            session,
            f"{sim.base_url}/jobs/{job_id}",
            lambda job: job["status"] == "Done",
            headers=sim.auth_headers,
        )
    assert job["metadata"]["lists"] == ["vip"]
    written = (tmp_path / "forms" / "contactExport.csv").read_bytes().decode()
    assert written == "email,first_name,vip\r\na@example.com,Åsa,1\r\n"


def test_form_brackets_parse_like_php() -> None:
    form = MultiDict(
        [
            ("destination[type]", "s3"),
            ("lists[]", "a"),
            ("lists[]", "b"),
            ("columnHeaders[1][name]", "email"),
            ("columnHeaders[0][name]", "cID"),
            ("columnHeaders[0][label]", "Contact"),
        ]
    )
    assert parse_form(MultiDictProxy(form)) == {
        "destination": {"type": "s3"},
        "lists": ["a", "b"],
        "columnHeaders": [{"name": "cID", "label": "Contact"}, {"name": "email"}],
    }


@pytest.mark.asyncio
async def test_malformed_json_is_400(sim: CordialSim, session: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/json", **sim.auth_headers}
    async with session.post(
        f"{sim.base_url}/contactexports", data=b"{nope", headers=headers
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] is True


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": basic_authorization("wrong-key")}, {"Authorization": "Bearer x"}],
)
@pytest.mark.asyncio
async def test_missing_or_wrong_api_key_is_401(
    sim: CordialSim, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    for method, path in (("POST", "contactexports"), ("GET", "jobs"), ("GET", "jobs/x")):
        async with session.request(
            method, f"{sim.base_url}/{path}", json=CONTACT_EXAMPLES[0], headers=headers
        ) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
            assert (await response.json())["error"] is True


@pytest.mark.asyncio
async def test_rate_limit_headers_and_429(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    async with CordialSim(clock=clock, rate_limit=2) as sim:
        seen = []
        for _ in range(3):
            async with session.get(f"{sim.base_url}/jobs", headers=sim.auth_headers) as response:
                seen.append((response.status, response.headers["X-Rate-Limit-Remaining"]))
                last = response
        assert seen == [(200, "1"), (200, "0"), (429, "0")]
        assert int(last.headers["Retry-After"]) > 0
        assert int(last.headers["X-Rate-Limit-Reset"]) > clock.wall()
        clock.advance(60)
        async with session.get(f"{sim.base_url}/jobs", headers=sim.auth_headers) as response:
            assert response.status == 200
