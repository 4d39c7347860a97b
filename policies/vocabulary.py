"""The fixed words of the policy format: roles, categories, transforms, generalisations,
actions and constraints. Anything outside these lists is refused (fail closed): a rule with
an action or constraint this version does not understand must never be silently ignored."""

from __future__ import annotations

import re

TOP_LEVEL_KEYS = (
    "policy_id",
    "version",
    "status",
    "title",
    "summary",
    "effective_from",
    "expires_on",
    "review",
    "parties",
    "purpose",
    "lawful_basis",
    "dpia",
    "linkage_schema",
    "data_items",
    "permissions",
    "prohibitions",
    "obligations",
    "disclosure_control",
    "retention",
    "security",
    "approvals",
    "tests",
)
STATUSES = ("draft", "active", "suspended", "retired")
ROLES = ("provider", "recipient", "linkage_service")
CATEGORIES = ("personal", "special", "criminal_offence")
TRANSFORMS = ("encode", "generalise", "drop")
# generalisation -> the fields it may apply to (the gateway implements exactly these)
GENERALISATIONS: dict[str, tuple[str, ...]] = {
    "postcode_sector": ("postcode",),
    "postcode_district": ("postcode",),
    "month": ("date_of_birth", "event_date"),
    "year": ("date_of_birth", "event_date"),
    # a yes/no attribute (open case, ASB incident, missed school) from an agency's own column;
    # never from an identifier
    "flag": (),
}
IDENTIFIER_FIELDS = (
    "given_name", "family_name", "date_of_birth", "sex", "postcode", "address", "nhs_number",
)  # fmt: skip
# action -> what it means, in the words explain uses
ACTIONS: dict[str, str] = {
    "upload": "send keyed encodings and generalised attributes to the linkage service",
    "link": "link encoded records into entities",
    "aggregate": "compute counts over linked entities",
    "view_hotspots": "see disclosure-controlled hot-spot counts",
    "view_links": "receive its own records' entity links (to resolve them locally)",
    "view_records": "see record-level data",
    "reidentify": "try to identify a person from encodings or counts",
    "export": "copy data outside the service",
    "audit_log": "keep a tamper-evident log of what was sent and asked",
    "delete_after_retention": "delete data when its retention period ends",
    "report_breach": "report a personal data breach to the other parties within 24 hours",
}
OBLIGATION_ACTIONS = ("audit_log", "delete_after_retention", "report_breach")
RULE_ACTIONS = tuple(a for a in ACTIONS if a not in OBLIGATION_ACTIONS)
CONSTRAINTS = ("by",)  # view_hotspots/aggregate: the attributes a query may group by
ANY_ASSIGNEE = "any"
REQUIRED_APPROVER_ROLES = ("provider", "linkage_service")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FINGERPRINT_PATTERN = re.compile(r"^ed25519:[0-9a-f]{64}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
DURATION_PATTERN = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$")
