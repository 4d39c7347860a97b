"""``placelink hotspots``: ask the linkage service a hot-spot query as an analyst.

The query goes to the service's API, so it is checked, disclosure-controlled, charged to the
analyst's privacy budget where the policy sets one, and recorded, exactly as from the
dashboard. The access token comes from the analyst's OAuth client credentials or a token
file (:mod:`placelink.commands.credentials`), never argv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from placelink.commands import Commands
from placelink.commands.credentials import access_token, add_credential_flags

URL_ENV = "PLACELINK_URL"


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def build_query(args: argparse.Namespace) -> dict[str, Any]:
    """The API's query from the command's options."""
    query_filter: dict[str, Any] = {
        "min_agencies": args.min_agencies,
        "all_of": _names(args.all_of),
        "none_of": _names(args.not_known_to),
        "flags": _names(args.flags),
        "since": args.since,
        "until": args.until,
    }
    return {"kind": args.kind, "by": args.by, "filter": query_filter}


def _print_table(answer: dict[str, Any]) -> None:
    label = "agency" if answer["kind"] == "cooccurrence" else "area"
    columns = answer["columns"]
    width = max([len(label), *(len(str(r[label])) for r in answer["rows"])]) + 2
    widths = [max(8, len(c) + 2) for c in columns]
    print(label.ljust(width) + "".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    rows = answer["rows"] + ([answer["total"]] if answer.get("total") else [])
    for row in rows:
        cells = "".join(str(row[c]).rjust(w) for c, w in zip(columns, widths, strict=True))
        print(str(row[label]).ljust(width) + cells)


def _hotspots(args: argparse.Namespace) -> int:
    import requests

    from keys.errors import InputError, PlacelinkError

    url = f"{args.url.rstrip('/')}/v1/policies/{args.policy}/hotspots"
    headers = {"Authorization": f"Bearer {access_token(args, args.url)}"}
    try:
        response = requests.post(
            url, json=build_query(args), headers=headers, timeout=60,
            params={"format": "csv"} if args.csv else None,
        )  # fmt: skip
    except requests.RequestException as exc:
        raise InputError(
            f"cannot reach the linkage service ({type(exc).__name__})", fix="check --url"
        ) from None
    if not response.ok:
        problem = response.json() if "json" in response.headers.get("Content-Type", "") else {}
        raise PlacelinkError(
            f"the linkage service refused the query: {problem.get('title', response.status_code)}",
            fix=str(problem.get("detail", "")),
        )
    if args.csv:
        sys.stdout.write(response.text)
        return 0
    answer = response.json()
    print(f"query #{answer['query_id']}: {answer['disclosure']['rule']}", file=sys.stderr)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _print_table(answer)
    return 0


def register(commands: Commands) -> None:
    hotspots = commands.add_parser("hotspots", help="ask the linkage service a hot-spot query")
    add = hotspots.add_argument
    add("--policy", required=True, help="policy id the query is asked under")
    add("--url", default=os.environ.get(URL_ENV, "http://127.0.0.1:8000"), help="service URL")
    add_credential_flags(hotspots)
    add("--kind", choices=["table", "trend", "cooccurrence"], default="table")
    add("--by", default="area", help="grouping attribute the policy releases (area)")
    add("--min-agencies", type=int, default=1, help="known to at least N agencies")
    add("--all-of", help="known to every one of these agencies (comma-separated)")
    add("--not-known-to", help="and to none of these agencies (comma-separated)")
    add("--flags", help="carrying every one of these policy-declared flags")
    add("--since", help="first month of the window (YYYY-MM)")
    add("--until", help="last month of the window (YYYY-MM)")
    output = hotspots.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the API's JSON answer")
    output.add_argument("--csv", action="store_true", help="published figures as CSV")
    hotspots.set_defaults(handler=_hotspots)
