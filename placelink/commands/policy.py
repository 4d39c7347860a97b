"""``placelink policy ...``: lint, explain, diff, sign, verify and test a sharing policy.

Results go to stdout; exit 1 when a check fails (findings, missing approvals, failing or no
golden tests), 2 on usage errors. Key passphrases come from an environment variable, never argv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from keys.errors import ConfigError, InputError
from placelink.commands import Commands

PASSPHRASE_ENV = "PLACELINK_DPO_PASSPHRASE"  # noqa: S105 (a variable name, not a password)
REQUEST_KEYS = ("action", "party", "data_item", "by", "purpose")


def _today(args: argparse.Namespace) -> dt.date:
    if not getattr(args, "today", None):
        return dt.date.today()
    try:
        return dt.date.fromisoformat(args.today)
    except ValueError:
        raise InputError("--today is not a date", fix="write it as YYYY-MM-DD") from None


def _lint(args: argparse.Namespace) -> int:
    from policies.lint import lint_file

    everything = []
    for name in args.files:
        findings = lint_file(Path(name), today=_today(args))
        everything += findings
        if not args.json:
            for finding in findings:
                print(finding.format())
            summary = f"{len(findings)} finding(s)" if findings else "ok, no findings"
            print(f"{name}: {summary}", file=sys.stderr)
    if args.json:
        print(json.dumps([vars(f) for f in everything], indent=2))
    return 1 if everything else 0


def parse_request(pairs: list[str]) -> dict[str, str]:
    """``action=upload party=police data_item=nhs_number`` -> a request mapping."""
    request: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in REQUEST_KEYS or not value:
            raise InputError(
                f"--request part {key!r} is not KEY=VALUE with a known key",
                fix=f"use {', '.join(REQUEST_KEYS)}, e.g. action=upload party=police",
            )
        request[key] = value
    if "action" not in request or "party" not in request:
        raise InputError("--request needs action= and party=", fix="add both")
    return request


def _explain(args: argparse.Namespace) -> int:
    from policies.explain import explain_decision, explain_policy
    from policies.explain_render import to_html, to_markdown
    from policies.model import Request, load_policy
    from policies.rules import decide

    policy = load_policy(Path(args.file))
    if args.request:
        decision = decide(policy, Request(**parse_request(args.request)))
        if args.json:
            fields = {"allowed": decision.allowed, "rules": list(decision.rules)}
            fields |= {"reason": decision.reason, "policy_id": decision.policy_id}
            print(json.dumps({**fields, "policy_hash": decision.policy_hash}, indent=2))
        else:
            print(explain_decision(policy, decision))
        return 0
    sections = explain_policy(policy, today=_today(args))
    text = to_html(sections) if args.format == "html" else to_markdown(sections)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from policies.diff import diff_policies, format_diff
    from policies.model import load_policy

    old, new = load_policy(Path(args.old)), load_policy(Path(args.new))
    result = diff_policies(old, new)
    print(json.dumps(vars(result), indent=2) if args.json else format_diff(result, old, new))
    return 0


def _passphrase(args: argparse.Namespace) -> str | None:
    value = os.environ.get(args.passphrase_env)
    if value is None and not args.unencrypted_unsafe:
        raise ConfigError(
            f"the environment variable {args.passphrase_env} is not set",
            fix=f"export {args.passphrase_env}=... (read it with `read -s`), never on the "
            "command line",
        )
    return None if args.unencrypted_unsafe else value


def _sign(args: argparse.Namespace) -> int:
    from keys import load_signing_key
    from policies.approval_file import sign_policy_file
    from policies.lint import lint_file

    key = load_signing_key(
        Path(args.key), passphrase=_passphrase(args), unencrypted_unsafe=args.unencrypted_unsafe
    )
    findings = [
        f
        for f in lint_file(Path(args.file), today=dt.date.today())
        if f.code not in ("unsigned", "bad-signature")
    ]
    if findings:
        print(
            f"warning: `placelink policy lint` reports {len(findings)} other finding(s) in "
            f"{args.file}; read them before you sign",
            file=sys.stderr,
        )
    policy_hash = sign_policy_file(Path(args.file), key)
    print(f"signed {args.file} (policy hash {policy_hash}) with {key.fingerprint}")
    return 0


def _trusted(args: argparse.Namespace) -> frozenset[str] | None:
    keys = list(args.trust or [])
    if args.trust_file:
        text = Path(args.trust_file).read_text(encoding="utf-8")
        keys += [line.split("#")[0].strip() for line in text.splitlines()]
    keys = [k for k in keys if k]
    return frozenset(keys) if keys or args.trust_file else None


def _verify(args: argparse.Namespace) -> int:
    from policies.approvals import required_approvers, verify_approvals
    from policies.model import load_policy

    policy = load_policy(Path(args.file))
    trusted = _trusted(args)
    report = verify_approvals(policy, trusted=trusted)
    print(f"{args.file}: policy {policy.policy_id} {policy.version}, hash {policy.policy_hash}")
    for party in required_approvers(policy):
        state = "approved" if party.id in report.approved else "NOT approved"
        print(f"  {party.id:<20} {state:<13} dpo_key {party.dpo_key or '(none)'}")
    for index, problem in report.bad:
        print(f"  approvals[{index}]: {problem}")
    if trusted is None:
        print(
            "note: keys checked against the policy's own dpo_key entries; pass --trust or "
            "--trust-file to pin the DPO keys you trust",
            file=sys.stderr,
        )
    today = dt.date.today()
    in_force = policy.status == "active" and policy.effective_from <= today <= policy.expires_on
    print(
        f"  status {policy.status}, {policy.effective_from} to {policy.expires_on}: "
        f"{'in force' if in_force else 'NOT in force'} today"
    )
    print("verified" if report.complete else "NOT verified")
    return 0 if report.complete else 1


def _test(args: argparse.Namespace) -> int:
    from policies.golden import run_golden_tests
    from policies.model import load_policy

    results = run_golden_tests(load_policy(Path(args.file)))
    for result in results:
        print(result.describe())
    failed = sum(not r.passed for r in results)
    print(
        f"{len(results)} golden test(s), {failed} failed" + (" (none ran)" if not results else "")
    )
    return 1 if failed or not results else 0


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-env",
        default=PASSPHRASE_ENV,
        help=f"environment variable holding the key passphrase (default {PASSPHRASE_ENV})",
    )
    parser.add_argument(
        "--unencrypted-unsafe",
        action="store_true",
        help="the key file is not encrypted (tests and throwaway keys only)",
    )


def register(commands: Commands) -> None:
    policy = commands.add_parser("policy", help="read, lint, explain, diff, sign, test policies")
    verbs = policy.add_subparsers(dest="verb", required=True)
    lint = verbs.add_parser("lint", help="every problem of a policy file, with line and fix")
    lint.add_argument("files", nargs="+", help="policy YAML files")
    lint.add_argument("--json", action="store_true", help="findings as JSON")
    lint.add_argument("--today", help="check dates as of this day (YYYY-MM-DD)")
    lint.set_defaults(handler=_lint)
    explain = verbs.add_parser("explain", help="the policy in plain English, or one decision")
    explain.add_argument("file", help="policy YAML file")
    explain.add_argument("--format", choices=("md", "html"), default="md", help="md or html")
    explain.add_argument("--output", help="write here instead of stdout")
    explain.add_argument(
        "--request",
        nargs="+",
        metavar="KEY=VALUE",
        help="decide one request, e.g. action=upload party=police data_item=sex",
    )
    explain.add_argument("--json", action="store_true", help="the decision as JSON")
    explain.add_argument("--today", help="as of this day (YYYY-MM-DD)")
    explain.set_defaults(handler=_explain)
    _register_changes(verbs)


def _register_changes(verbs: Commands) -> None:
    """diff, sign, verify and test: the commands about versions and approvals."""
    diff = verbs.add_parser("diff", help="what a new version newly allows or forbids")
    diff.add_argument("old", help="the signed version in force")
    diff.add_argument("new", help="the proposed version")
    diff.add_argument("--json", action="store_true", help="machine-readable")
    diff.set_defaults(handler=_diff)
    sign = verbs.add_parser("sign", help="add your DPO approval of this version")
    sign.add_argument("file", help="policy YAML file (only its approvals block is rewritten)")
    sign.add_argument("--key", required=True, help="DPO key file (placelink keys dpo new)")
    _key_options(sign)
    sign.set_defaults(handler=_sign)
    verify = verbs.add_parser("verify", help="check every required DPO approved this version")
    verify.add_argument("file", help="policy YAML file")
    verify.add_argument(
        "--trust",
        action="append",
        metavar="FINGERPRINT",
        help="a DPO key fingerprint you trust (repeat)",
    )
    verify.add_argument("--trust-file", help="file of trusted fingerprints, one a line")
    verify.set_defaults(handler=_verify)
    test = verbs.add_parser("test", help="run the policy's golden allow/deny cases")
    test.add_argument("file", help="policy YAML file")
    test.set_defaults(handler=_test)
