"""Write a small set of realistic sample export files (the demo's input).

``python -m streamx.testing.sample DIR [--rows N] [--seed S]`` writes, into DIR:
a gzipped Cordial contact-activity CSV in two chunk files, a Cordial contacts CSV with list
columns, an audience-trends CSV, a Symplify opens result as a JSON array, and a JSON-lines
activity file holding two deliberately broken lines (to show the quarantine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os

from streamx.testing import data
from streamx.testing.files import encode_chunks, write_file


def write_samples(directory: str, *, rows: int = 5000, seed: int = 7) -> list[str]:
    """Write the sample files; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    window = data.Window.days_back(1)
    activity = data.cordial_activity_rows(seed, rows=rows, window=window)
    half = rows // 2
    paths = []
    for number, chunk in enumerate((itertools.islice(activity, half), activity), 1):
        path = os.path.join(directory, f"activity-{number}.csv.gz")
        write_file(
            path, encode_chunks(chunk, "csv", columns=data.ACTIVITY_CSV_COLUMNS), compress=True
        )
        paths.append(path)
    contacts = os.path.join(directory, "contacts.csv")
    write_file(contacts, encode_chunks(data.cordial_contact_rows(seed, rows=rows // 5), "csv"))
    trends = os.path.join(directory, "audience-trends.csv")
    days = [dt.date(2026, 10, 25) + dt.timedelta(days=offset) for offset in range(7)]
    write_file(trends, encode_chunks(data.cordial_audience_trend_rows(seed, days=days), "csv"))
    opens = os.path.join(directory, "3232465_result.json")
    rows_iter = data.symplify_rows(seed, export_type="OPENS", rows=rows // 2, window=window)
    write_file(opens, encode_chunks(rows_iter, "json_array"))
    broken = os.path.join(directory, "activity-broken.jsonl")
    _write_broken_jsonl(broken, seed)
    return [*paths, contacts, trends, opens, broken]


def _write_broken_jsonl(path: str, seed: int) -> None:
    window = data.Window.days_back(1)
    good = list(encode_chunks(data.cordial_activity_rows(seed, rows=8, window=window), "jsonl"))
    lines = b"".join(good).splitlines(keepends=True)
    lines.insert(3, b'{"cID": "truncated row", "action": \n')
    lines.insert(6, b'{"cID": "x", "action": "open", "time": "yesterday-ish"}\n')
    with open(path, "wb") as handle:
        handle.writelines(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for path in write_samples(args.directory, rows=args.rows, seed=args.seed):
        print(path)


if __name__ == "__main__":
    main()
