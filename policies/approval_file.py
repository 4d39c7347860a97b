"""Writing approvals into a policy file without touching the rest of it.

A DPO's policy file is written by people, with comments and a layout they chose; signing must
not reformat it. Only the ``approvals:`` block is rewritten: from its key's line up to the next
top-level key (or the end of the file). Approvals are outside the policy hash, so this never
changes what was signed.
"""

from __future__ import annotations

from pathlib import Path

from keys import SigningKey
from keys.errors import PolicyError
from policies.approvals import make_approval
from policies.located import LocatedDocument, load_located
from policies.model import policy_from_located

APPROVAL_FIELDS = ("key", "dpo", "public_key", "signature")


def render_approvals(approvals: list[dict[str, str]]) -> str:
    """The ``approvals:`` block as YAML text, one entry per DPO key, sorted by key."""
    if not approvals:
        return "approvals: []\n"
    lines = ["approvals:  # DPO signatures over the policy hash: `placelink policy sign`"]
    for approval in sorted(approvals, key=lambda a: a["key"]):
        for position, name in enumerate(APPROVAL_FIELDS):
            value = approval.get(name, "")
            lead = "  - " if position == 0 else "    "
            lines.append(f'{lead}{name}: "{value}"')
    return "\n".join(lines) + "\n"


def _block_span(located: LocatedDocument) -> tuple[int, int]:
    """0-based [start, end) line span of the top-level approvals block."""
    top = sorted(
        line for path, line in located.lines.items() if len(path) == 1 and path != ("approvals",)
    )
    start = located.lines.get(("approvals",))
    if start is None:
        raise PolicyError(
            f"{located.where}: there is no top-level approvals key",
            fix="add `approvals: []` to the policy",
        )
    end = next((line for line in top if line > start), None)
    lines = located.text.splitlines(keepends=True)
    return start - 1, (end - 1) if end else len(lines)


def replace_approvals(located: LocatedDocument, approvals: list[dict[str, str]]) -> str:
    """The file's text with its approvals block replaced."""
    start, end = _block_span(located)
    lines = located.text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join([*lines[:start], render_approvals(approvals), *lines[end:]])


def sign_policy_file(path: Path, key: SigningKey) -> str:
    """Add (or replace) ``key``'s approval of the file's current version; returns the hash."""
    located = load_located(path)
    policy = policy_from_located(located)
    if key.fingerprint not in {p.dpo_key for p in policy.parties}:
        raise PolicyError(
            f"{path}: the signing key is no party's dpo_key",
            fix="add the key's fingerprint as dpo_key of the DPO's parties first "
            "(`placelink keys dpo new` prints it), or use the DPO's own key",
        )
    kept = [
        raw for raw in (policy.document.get("approvals") or []) if raw.get("key") != key.fingerprint
    ]
    text = replace_approvals(located, [*kept, make_approval(policy, key)])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return policy.policy_hash
