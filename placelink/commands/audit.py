"""``placelink audit verify | report | checkpoint``: the DPO's proof of what happened.

``verify`` checks a hash-chained audit log (a gateway's ``audit.jsonl``, or the service's log
exported from ``GET /v1/audit/entries``) against the keys trusted to sign its checkpoints, and
against checkpoints held from earlier (``--checkpoints``: the service's, as a gateway keeps them);
exit 0 when intact, 1 naming the first bad entry. ``report`` says what left the agency and what
was asked of the linkage service under each policy since a date; it verifies every log first
(as ``verify``, against the same ``--key`` list) and reports nothing from a log that does not
verify (exit 1, the same TAMPERED line). ``checkpoint`` signs a gateway log's head now with the
node key (passphrase from PLACELINK_NODE_PASSPHRASE).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from placelink.commands import Commands

if TYPE_CHECKING:
    from policies.audit_verify import Finding

NODE_PASSPHRASE_ENV = "PLACELINK_NODE_PASSPHRASE"  # noqa: S105 (a variable name)


def _trusted(keys: list[str]) -> frozenset[str]:
    """Fingerprints as given, or computed from a hex raw public key."""
    from keys.errors import InputError
    from keys.signing import FINGERPRINT_PREFIX, fingerprint

    found = set()
    for key in keys:
        if re.fullmatch(FINGERPRINT_PREFIX + "[0-9a-f]{64}", key):
            found.add(key)
            continue
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise InputError(
                "--key is neither a fingerprint nor a hex Ed25519 public key",
                fix="pass ed25519:<64 hex> or the 64 hex digits of the public key",
            )
        found.add(fingerprint(raw))
    return frozenset(found)


def _verify(args: argparse.Namespace) -> int:
    from policies.audit_events import read_checkpoints
    from policies.audit_store import FileLog
    from policies.audit_verify import verify_log

    log = Path(args.log)
    if not log.exists():
        print(f"error: no audit log at {log}", file=sys.stderr)
        return 1
    held = read_checkpoints(Path(args.checkpoints)) if args.checkpoints else []
    verdict = verify_log(FileLog(log).lines(), trusted_keys=_trusted(args.key), held=held)
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    elif verdict.first_bad is None:
        print(
            f"OK: {verdict.entries} entries, {verdict.checkpoints} checkpoints, "
            f"{len(held)} held checkpoints matched; head {verdict.head}"
        )
        if verdict.unanchored:
            print(
                f"note: the last {verdict.unanchored} entries are after the last checkpoint",
                file=sys.stderr,
            )
    else:
        print(_tampered(verdict.first_bad))
    return 0 if verdict.ok else 1


def _tampered(bad: Finding) -> str:
    return f"TAMPERED: first bad entry seq {bad.seq} (line {bad.line}): {bad.problem}: {bad.detail}"


def _require_intact(logs: list[str], keys: list[str]) -> None:
    """Each log verifies (the checklist of ``audit verify``) before a report believes it."""
    from keys.errors import InputError
    from policies.audit_store import FileLog
    from policies.audit_verify import verify_log

    trusted = _trusted(keys)
    for name in logs:
        log = Path(name)
        if not log.exists():
            raise InputError(f"no audit log at {log}", fix="name an audit log that exists")
        verdict = verify_log(FileLog(log).lines(), trusted_keys=trusted)
        if verdict.first_bad is not None:
            raise InputError(
                f"{log}: {_tampered(verdict.first_bad)}; nothing is reported",
                fix=f"see placelink audit verify --log {log} --key ...; pass the key of every "
                "log's checkpoint signer with --key",
            )


def _report(args: argparse.Namespace) -> int:
    from policies.audit_report import audit_report, render_report
    from policies.audit_store import FileLog

    since = dt.date.fromisoformat(args.since)
    _require_intact(args.log, args.key)
    report = audit_report([FileLog(Path(p)).entries() for p in args.log], since=since)
    print(json.dumps(report, indent=2) if args.json else render_report(report))
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    from keys import load_signing_key, passphrase_from_environment
    from keys.errors import InputError
    from policies.audit import AuditLog
    from policies.audit_store import FileLog

    backend = FileLog(Path(args.log))
    entries = backend.entries()
    if not entries:
        raise InputError(f"the audit log {args.log} is empty", fix="name a gateway's audit.jsonl")
    key = load_signing_key(
        Path(args.node_key),
        passphrase=passphrase_from_environment(NODE_PASSPHRASE_ENV),
        unencrypted_unsafe=args.unencrypted_unsafe,
    )
    made = AuditLog(backend, actor=str(entries[-1]["actor"]), signer=key).checkpoint()
    print(json.dumps(made.to_json() if made else None, indent=2))
    return 0


def _add_key_flag(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--key", action="append", required=True, help=text)


def register(commands: Commands) -> None:
    audit = commands.add_parser("audit", help="verify and report on audit logs (docs/dpo.md)")
    verbs = audit.add_subparsers(dest="verb", required=True)
    verify = verbs.add_parser("verify", help="check a log's chain and checkpoints")
    verify.add_argument("--log", required=True, help="the audit log (JSON Lines)")
    _add_key_flag(verify, "a key trusted to sign its checkpoints (fingerprint); repeatable")
    verify.add_argument("--checkpoints", help="checkpoints held from earlier (JSON Lines)")
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.set_defaults(handler=_verify)
    report = verbs.add_parser("report", help="what left the agency and what was asked")
    report.add_argument("--log", action="append", required=True, help="an audit log; repeatable")
    _add_key_flag(report, "a key trusted to sign the logs' checkpoints (fingerprint); repeatable")
    report.add_argument("--since", required=True, help="first day to include (YYYY-MM-DD)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(handler=_report)
    checkpoint = verbs.add_parser("checkpoint", help="sign a gateway log's head now")
    checkpoint.add_argument("--log", required=True, help="the gateway's audit.jsonl")
    checkpoint.add_argument("--node-key", required=True, help="the node's signing key file")
    checkpoint.add_argument(
        "--unencrypted-unsafe", action="store_true", help="accept an unencrypted node key"
    )
    checkpoint.set_defaults(handler=_checkpoint)


def record_key_event(args: argparse.Namespace, **facts: object) -> None:
    """Append a key event (``keys secret new|split|combine``, ``keys rotate``, ``keys node
    new``) to the audit log named by ``--audit-log``, if one is; the gateway's next
    checkpoint (at its next publication) anchors it."""
    from policies.audit import AuditLog
    from policies.audit_store import FileLog

    if not getattr(args, "audit_log", None):
        return
    event = "_".join(str(p) for p in (args.what, getattr(args, "verb", None)) if p)
    log = AuditLog(FileLog(Path(args.audit_log)), actor="keys-cli", signer=None)
    log.append("key_event", {"event": event, **facts})
