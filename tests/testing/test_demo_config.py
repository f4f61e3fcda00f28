"""The demo's configuration runs every export exactly, through the real config loader."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from streamx import Config, Engine, load_config
from streamx.config import ExportSpec
from streamx.testing.demo import CORDIAL_KEY_ENV, SYMPLIFY_TOKEN_ENV, demo_config
from streamx.testing.harness import SimHarness
from streamx.testing.seeded import SeededProvider


@pytest.mark.asyncio
async def test_the_demo_configuration_publishes_every_export_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SimHarness(SeededProvider(rows=120), directory=tmp_path) as sims:
        info = {
            "symplify_base_url": sims.symplify.base_url,
            "symplify_customer_id": "5004",
            "symplify_token": sims.symplify.tokens["5004"],
            "cordial_base_url": sims.cordial.base_url,
            "cordial_api_key": sims.cordial.api_key,
            "landing": str(sims.landing),
        }
        monkeypatch.setenv(SYMPLIFY_TOKEN_ENV, info["symplify_token"])
        monkeypatch.setenv(CORDIAL_KEY_ENV, info["cordial_api_key"])
        text = demo_config(info, out=str(sims.out))
        assert info["symplify_token"] not in text and info["cordial_api_key"] not in text
        path = tmp_path / "streamx.toml"
        path.write_text(text)
        config = _pinned(load_config(path))
        async with Engine(config) as engine:
            results = await engine.run()
    assert [result.name for result in results] == [
        "symplify-opens",
        "symplify-clicks",
        "symplify-sent",
        "symplify-lists",
        "cordial-activity",
        "cordial-contacts",
        "cordial-trends",
    ]
    for result in results:
        sims.assert_exact(result, config)
    by_name = {result.name: result for result in results}
    assert by_name["cordial-activity"].files == 1  # 120 rows < records_per_file
    assert by_name["cordial-trends"].records > 0


def _pinned(config: Config) -> Config:
    """``days = N`` pinned to a fixed start/end, so the expected records are computed for the
    very window the export asked for (``days`` is resolved against the clock when it starts)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def pin(spec: ExportSpec) -> ExportSpec:
        if spec.days is None:
            return spec
        start = now - dt.timedelta(days=spec.days)
        iso = "%Y-%m-%dT%H:%M:%SZ"
        return dataclasses.replace(
            spec, days=None, start=start.strftime(iso), end=now.strftime(iso)
        )

    return dataclasses.replace(config, exports=tuple(pin(spec) for spec in config.exports))
