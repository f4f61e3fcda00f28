"""Secrets in presigned URLs, userinfo, echoed headers and S3 error bodies never survive."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamx.redact import REDACTED, redact_text, redact_url

SYMPLIFY_URL = (
    "https://carma-filetransfer.s3-eu-west-1.amazonaws.com/result/5004/3232465_result.json"
    "?Expires=1403187484&AWSAccessKeyId=AKIAJNJRZJQCQ3W66YIQ&Signature=FWZp8noVyxcOflH27k2W7MuNcmM%3D"
)
SIGV4_URL = (
    "https://bucket.s3.amazonaws.com/exports/a.csv.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FQoGZXIvYXdzEJr&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)
SECRETS = [
    "AKIAJNJRZJQCQ3W66YIQ",
    "FWZp8noVyxcOflH27k2W7MuNcmM",
    "1403187484",
    "AKIDEXAMPLE",
    "0123456789abcdef0123456789abcdef",
    "FQoGZXIvYXdzEJr",
]


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def test_symplify_presigned_url_keeps_host_and_path() -> None:
    red = redact_url(SYMPLIFY_URL)
    assert_clean(red)
    assert red == (
        "https://carma-filetransfer.s3-eu-west-1.amazonaws.com/result/5004/3232465_result.json"
        f"?Expires={REDACTED}&AWSAccessKeyId={REDACTED}&Signature={REDACTED}"
    )


def test_sigv4_url_keeps_non_secret_params() -> None:
    red = redact_url(SIGV4_URL)
    assert_clean(red)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in red
    assert "X-Amz-SignedHeaders=host" in red
    assert red.startswith("https://bucket.s3.amazonaws.com/exports/a.csv.gz?")


def test_param_names_are_case_insensitive_and_fragment_kept() -> None:
    red = redact_url("https://h/p?x-amz-signature=abc&SIGNATURE=def&keep=1#frag")
    assert red == f"https://h/p?x-amz-signature={REDACTED}&SIGNATURE={REDACTED}&keep=1#frag"


def test_url_without_secrets_is_unchanged() -> None:
    url = "https://api.cordial.io/v2/jobs/123?fields=a%2Cb&x=1"
    assert redact_url(url) == url
    assert redact_url("not a url") == "not a url"


def test_userinfo_password_redacted() -> None:
    assert redact_url("sftp://alice:hunter2@host:22/x") == f"sftp://alice:{REDACTED}@host:22/x"
    # Cordial style: the API key is the user name with an empty password.
    assert redact_url("https://APIKEY123:@api.cordial.io/v2/") == (
        f"https://{REDACTED}:@api.cordial.io/v2/"
    )
    assert redact_url("https://bob@host/p") == "https://bob@host/p"


def test_redact_text_finds_urls_inside_messages() -> None:
    text = f"Cannot fetch '{SYMPLIFY_URL}': 403 Forbidden; retry {SIGV4_URL}."
    red = redact_text(text)
    assert_clean(red)
    assert red.startswith("Cannot fetch 'https://carma-filetransfer")
    assert "403 Forbidden; retry https://bucket.s3.amazonaws.com/exports/a.csv.gz?" in red


def test_redact_text_handles_bare_query_strings_and_headers() -> None:
    red = redact_text(
        "GET /result/1.json?Signature=abc%2Fdef&x=1 Authorization: Basic QUJDOg== "
        "{'X-Carma-Authentication-Token': 'tok-123'} password=pw1"
    )
    for secret in ("abc%2Fdef", "QUJDOg==", "tok-123", "pw1"):
        assert secret not in red
    assert "x=1" in red


def test_redact_text_s3_error_body_elements() -> None:
    body = (
        "<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIAJNJRZJQCQ3W66YIQ"
        "</AWSAccessKeyId><StringToSign>GET\n\n\n1403187484\n/b/k</StringToSign>"
        "<SignatureProvided>FWZp8noVyxcOflH27k2W7MuNcmM=</SignatureProvided></Error>"
    )
    red = redact_text(body)
    assert_clean(red)
    assert "<Code>SignatureDoesNotMatch</Code>" in red


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=127),
        min_size=8,
        max_size=40,
    ),
    name=st.sampled_from(["Signature", "X-Amz-Signature", "X-Amz-Credential", "AWSAccessKeyId"]),
    prefix=st.sampled_from(["", "error: ", "url=", "(", "'"]),
)
def test_any_signature_value_is_removed(secret: str, name: str, prefix: str) -> None:
    url = f"https://h.example/k?a=1&{name}={secret}&b=2"
    expected = f"https://h.example/k?a=1&{name}={REDACTED}&b=2"
    assume(secret not in expected)
    assert redact_url(url) == expected
    assert redact_text(f"{prefix}{url} and more") == f"{prefix}{expected} and more"
    # Redaction is idempotent.
    assert redact_text(redact_text(url)) == redact_text(url)


def test_aws_credential_pairs_in_free_text_are_redacted() -> None:
    text = (
        "profile: aws_secret_access_key=wJalrXUtnFEMI/K7MDENG aws_session_token=FQoGZXIvYXdzEJr "
        "secret_access_key=abc123 passphrase=hunter2 region=eu-north-1"
    )
    out = redact_text(text)
    for secret in ("wJalrXUtnFEMI/K7MDENG", "FQoGZXIvYXdzEJr", "abc123", "hunter2"):
        assert secret not in out
    assert "region=eu-north-1" in out
