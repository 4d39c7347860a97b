"""What a DPO reads: from audit logs, what left the agency and what was asked of the service.

:func:`audit_report` reads the entries of one or more logs (a gateway's, the service's export)
since a date and sums them per policy:

- **left the agency** (``publication`` entries, per gateway and policy version): batches,
  records, the encoded fields and attributes sent, key epochs, bytes and destinations;
- **asked of the linkage service** (service entries, per policy): hot-spot queries by kind and
  decision with the privacy budget spent and how many analysts asked; uploads accepted and
  refused (by problem type); link runs; policy decisions by action and outcome;
- **key events**: revocations and epoch retirements, with their time.

It reports counts and names only, as the log holds nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any


def _day(entry: Mapping[str, Any]) -> dt.date | None:
    try:
        return dt.datetime.fromisoformat(str(entry["time"])).date()
    except (KeyError, ValueError):
        return None


def _policy_key(entry: Mapping[str, Any]) -> str:
    version = entry.get("policy_version")
    return f"{entry.get('policy_id') or '(no policy)'}" + (f" v{version}" if version else "")


def _left(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    sent: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["kind"] != "publication":
            continue
        payload = entry["payload"]
        row = sent.setdefault(
            f"{entry['actor']} under {_policy_key(entry)}",
            {
                "batches": 0,
                "records": 0,
                "bytes": 0,
                "fields": set(),
                "attributes": set(),
                "epochs": set(),
                "destinations": set(),
            },
        )
        row["batches"] += 1
        row["records"] += int(payload.get("records") or 0)
        row["bytes"] += int(payload.get("bytes") or 0)
        row["fields"].update(payload.get("fields") or [])
        row["attributes"].update(payload.get("attributes") or [])
        row["epochs"].add(payload.get("epoch"))
        row["destinations"].add(payload.get("destination"))
    return {
        name: {k: sorted(v, key=str) if isinstance(v, set) else v for k, v in row.items()}
        for name, row in sorted(sent.items())
    }


def _asked(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    asked: dict[str, dict[str, Any]] = {}
    for entry in entries:
        kind, payload = entry["kind"], entry["payload"]
        if kind not in ("query", "submission", "link_run", "decision"):
            continue
        if kind == "decision" and not entry["actor"].startswith("linkage"):
            continue  # a gateway's own checks are in "left the agency"
        row = asked.setdefault(
            _policy_key(entry),
            {
                "queries": Counter(),
                "epsilon_spent": 0.0,
                "analysts": set(),
                "uploads": Counter(),
                "link_runs": Counter(),
                "decisions": Counter(),
            },
        )
        if kind == "query":
            row["queries"][f"{payload.get('query_kind')} {payload.get('decision')}"] += 1
            row["epsilon_spent"] += float(payload.get("epsilon") or 0.0)
            row["analysts"].add(payload.get("analyst"))
        elif kind == "submission":
            outcome = payload.get("outcome")
            problem = payload.get("problem")
            row["uploads"][f"{outcome} ({problem})" if problem else str(outcome)] += 1
        elif kind == "link_run":
            row["link_runs"]["ran" if payload.get("status") == 201 else "refused"] += 1
        else:
            row["decisions"][f"{payload.get('action')} {payload.get('outcome')}"] += 1
    return {
        name: {
            **row,
            **{
                k: dict(sorted(row[k].items()))
                for k in ("queries", "uploads", "link_runs", "decisions")
            },
            "analysts": len(row["analysts"] - {None}),
        }
        for name, row in sorted(asked.items())
    }


def audit_report(logs: Iterable[Iterable[Mapping[str, Any]]], *, since: dt.date) -> dict[str, Any]:
    """The report over every entry dated ``since`` or later, in the given logs."""
    entries = [e for log in logs for e in log if (_day(e) or dt.date.min) >= since]
    events = [
        {"time": e["time"], "actor": e["actor"], "policy": _policy_key(e), **e["payload"]}
        for e in entries
        if e["kind"] == "key_event"
    ]
    return {
        "since": since.isoformat(),
        "entries": len(entries),
        "left_the_agency": _left(entries),
        "asked_of_the_service": _asked(entries),
        "key_events": events,
    }


def render_report(report: Mapping[str, Any]) -> str:
    """The report as plain text for a DPO."""
    lines = [f"Audit report since {report['since']} ({report['entries']} entries)", ""]
    lines.append("What left the agency:")
    for name, row in report["left_the_agency"].items() or {}:
        lines.append(
            f"  {name}: {row['batches']} batches, {row['records']} records, "
            f"{row['bytes']} bytes, epochs {_join(row['epochs'])}"
        )
        lines.append(f"    encoded fields: {_join(row['fields'])}")
        lines.append(f"    attributes: {_join(row['attributes'])}")
        lines.append(f"    sent to: {_join(row['destinations'])}")
    if not report["left_the_agency"]:
        lines.append("  nothing")
    lines += ["", "What was asked of the linkage service:"]
    for name, row in report["asked_of_the_service"].items():
        lines.append(f"  {name}:")
        lines.append(
            f"    hot-spot queries: {_counts(row['queries'])}; "
            f"{row['analysts']} analysts; epsilon spent {row['epsilon_spent']:g}"
        )
        lines.append(f"    uploads: {_counts(row['uploads'])}")
        lines.append(f"    link runs: {_counts(row['link_runs'])}")
        lines.append(f"    policy decisions: {_counts(row['decisions'])}")
    if not report["asked_of_the_service"]:
        lines.append("  nothing")
    lines += ["", "Key events:"]
    for event in report["key_events"]:
        what = ", ".join(f"{k} {v}" for k, v in event.items() if k not in ("time", "actor"))
        lines.append(f"  {event['time']} {event['actor']}: {what}")
    if not report["key_events"]:
        lines.append("  none")
    return "\n".join(lines)


def _join(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values) or "none"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts.items()) or "none"
