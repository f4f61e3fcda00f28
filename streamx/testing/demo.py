"""The demo's configuration: a mixed set of exports against a running ``streamx sim``.

``scripts/demo`` starts the simulators (``streamx sim --ready-file``), writes this configuration
next to the output and runs it with ``streamx run``. The credentials are the simulators' public
demo values; they still travel through environment variables, exactly as real ones must.

    python -m streamx.testing.demo READY_FILE CONFIG_FILE --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

SYMPLIFY_TOKEN_ENV = "STREAMX_DEMO_SYMPLIFY_TOKEN"
CORDIAL_KEY_ENV = "STREAMX_DEMO_CORDIAL_KEY"

EXPORTS = """
[[exports]]
name = "symplify-opens"
account = "symplify-demo"
stream = "opens"
period = "LAST_DAY"

[[exports]]
name = "symplify-clicks"
account = "symplify-demo"
stream = "clicks"
period = "LAST_WEEK"

[[exports]]
name = "symplify-sent"
account = "symplify-demo"
stream = "sent"
period = "LAST_3_DAYS"

[[exports]]
name = "symplify-lists"
account = "symplify-demo"
stream = "lists"
period = "LAST_2_WEEKS"

[[exports]]
name = "cordial-activity"
account = "cordial-demo"
stream = "contact_activity"
days = 2
options = { exportType = "json" }

[[exports]]
name = "cordial-contacts"
account = "cordial-demo"
stream = "contacts"
options = { exportType = "csv" }

[[exports]]
name = "cordial-trends"
account = "cordial-demo"
stream = "audience_trends"
days = 7
options = { audiences = ["opened_last_30_days", "clicked_last_30_days"] }
"""


def demo_config(info: dict[str, Any], *, out: str) -> str:
    """The TOML of the demo: one account per simulator, seven exports, output in ``out``.

    Cordial activity comes as gzipped JSON lines split into several chunk files
    (``records_per_file``), contacts as gzipped CSV; both land in the simulator's directory.
    """
    return f"""# written by scripts/demo for the simulators started by `streamx sim`
[engine]
concurrency = 4
poll_interval = 0.2
poll_interval_max = 1.0

[output]
dir = {_toml(out)}

[accounts.symplify-demo]
vendor = "symplify"
base_url = {_toml(info["symplify_base_url"])}
customer_id = {_toml(info["symplify_customer_id"])}
token_env = "{SYMPLIFY_TOKEN_ENV}"

[accounts.cordial-demo]
vendor = "cordial"
base_url = {_toml(info["cordial_base_url"])}
api_key_env = "{CORDIAL_KEY_ENV}"
records_per_file = 4000
max_transfers = 2

[accounts.cordial-demo.landing]
type = "local"
dir = {_toml(info["landing"])}
{EXPORTS}"""


def _toml(value: str) -> str:
    return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ready_file", help="the JSON written by `streamx sim --ready-file`")
    parser.add_argument("config_file", help="where to write the TOML")
    parser.add_argument("--out", required=True, help="output directory of the exports")
    args = parser.parse_args(argv)
    info = orjson.loads(Path(args.ready_file).read_bytes())
    Path(args.config_file).write_text(demo_config(info, out=str(Path(args.out).resolve())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
