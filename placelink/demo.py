"""``placelink demo``: a synthetic town's agencies to linked, disclosure-controlled hot-spots.

Steps: generate the town and write each agency's CSV and column mapping; make a linkage secret,
node keys; register the OAuth clients (each gateway by its node key, private_key_jwt; an
analyst and an operator by client secrets) and a token-signing key; enrol the node keys in the
example task-force policy; make one signing key per DPO, name them in the policy and have each
DPO sign it; start the real linkage service (gunicorn, SQLite under DIR) on a loopback port,
trusting exactly those DPO keys (it verifies the approvals before it loads the policy); run one
gateway per agency, which takes a token and encodes under the policy and uploads over HTTP;
link; query hot-spots; resolve each agency's links locally to score linkage against the
synthetic truth; write hotspots.csv, report.html and dashboard.html (a static snapshot of the
task-force dashboard: the service's published answers for a table, a trend and the agency co-
occurrence matrix, nothing else).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml
from tqdm import tqdm

from gateway.node import NodeConfig, publish
from gateway.oauth_client import ClientCredentials, new_client_secret, token_url_for
from gateway.pseudonyms import PseudonymMap
from gateway.resolve import fetch_links, resolve_links
from gateway.schema import default_schema, default_schema_path
from keys import SigningKey, new_secret, save_signing_key, write_secret
from keys.errors import PlacelinkError
from linkage.clients import hash_client_secret
from linkage.dashboard_page import snapshot_page
from linkage.hotspots import DEFAULT_MEASURES
from linkage.quality import PairwiseQuality, pairwise_quality
from linkage.server import RunningService, start_service
from placelink.demo_node import DemoNode, NodeApiFacts
from placelink.report import render_report
from placelink.town import generate_town, write_town
from policies.approvals import PolicyTrust, make_approval, verify_approvals
from policies.linkage_schema import LinkageSchema
from policies.model import Policy, dump_policy, parse_policy

EXAMPLE_POLICY = "examples/task-force.yaml"


@dataclass
class DemoResult:
    out_dir: Path
    records: dict[str, int]
    link_summary: dict[str, Any]
    hotspots: list[dict[str, Any]]
    quality: PairwiseQuality
    seconds: float
    bytes_sent: int
    files: dict[str, Path] = field(default_factory=dict)
    policy_line: str = ""
    schema_line: str = ""
    node: NodeApiFacts | None = None
    audit_line: str = ""


def _enrolled_policy(
    node_keys: dict[str, SigningKey], schema_hash: str, today: dt.date
) -> dict[str, Any]:
    """The example policy with this run's node keys enrolled and dates around today."""
    text = resources.files("policies").joinpath(EXAMPLE_POLICY).read_text(encoding="utf-8")
    document: dict[str, Any] = copy.deepcopy(yaml.safe_load(text))
    document["linkage_schema"] = schema_hash
    for party in document["parties"]:
        if party["id"] in node_keys:
            party["node_key"] = node_keys[party["id"]].fingerprint
    document["parties"] = [
        p for p in document["parties"] if p["role"] != "provider" or p["id"] in node_keys
    ]
    if not document["effective_from"] <= today <= document["expires_on"]:
        document["effective_from"], document["expires_on"] = today, today + dt.timedelta(days=365)
    return document


def _dpo_signed(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Each DPO (one per contact address) gets a fresh key, is named in the policy and signs
    it. Returns the signed document and the DPO key fingerprints to trust."""
    dpo_keys = {party["dpo"]: SigningKey.generate() for party in document["parties"]}
    for party in document["parties"]:
        party["dpo_key"] = dpo_keys[party["dpo"]].fingerprint
    document["approvals"] = []
    unsigned = parse_policy(document)
    document["approvals"] = [make_approval(unsigned, key) for key in dpo_keys.values()]
    return document, [key.fingerprint for key in dpo_keys.values()]


def _schema_line(schema: LinkageSchema) -> str:
    """How names were encoded: the schema and its hardening (docs/attacks.md)."""
    salted = [f"{spec.name} ({', '.join(spec.salts)})" for spec in schema.fields if spec.salts]
    hardening = (
        "names stored as salted copies: " + "; ".join(salted) if salted else "names unsalted"
    )
    return (
        f"encoded under linkage schema {schema.name} v{schema.version} "
        f"(sha256 {schema.sha256[:12]}...), {hardening}"
    )


def _policy_line(policy: Policy) -> str:
    report = verify_approvals(policy)
    return (
        f"policy {policy.policy_id} v{policy.version} (sha256 {policy.policy_hash[:12]}...) "
        f"approved by {len({a.key for a in policy.approvals})} DPOs for "
        f"{len(report.approved)} parties; the linkage service verified it before loading"
    )


def _register_clients(
    keys_dir: Path, policy_id: str, node_keys: dict[str, SigningKey]
) -> tuple[Path, Path, dict[str, str]]:
    """The clients file, the service's token-signing key (unencrypted: a throwaway demo) and
    the analyst's and operator's secrets (kept in memory; the file holds only hashes)."""
    secrets = {"analyst": new_client_secret(), "operator": new_client_secret()}
    entries: list[dict[str, Any]] = [
        {"client_id": f"{agency}-gateway", "party": agency, "policies": [policy_id],
         "scopes": ["submit", "links:read"], "public_key": key.public_raw.hex()}
        for agency, key in node_keys.items()
    ]  # fmt: skip
    for client_id, party, scope in (("analyst", "task_force", "query:hotspots"),
                                    ("operator", "linkage", "admin")):  # fmt: skip
        hashed = hash_client_secret(secrets[client_id])
        entries.append({"client_id": client_id, "party": party, "policies": [policy_id],
                        "scopes": [scope], "secret_hash": hashed})  # fmt: skip
    clients = keys_dir / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": entries}, sort_keys=False), encoding="utf-8")
    signing = keys_dir / "oauth-signing.pem"
    save_signing_key(signing, SigningKey.generate(), passphrase=None, unencrypted_unsafe=True)
    return clients, signing, secrets


def _post(
    service: RunningService, path: str, token: str, body: dict[str, Any] | None = None
) -> Any:
    response = requests.post(
        f"{service.url}{path}",
        json=body or {},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    if not response.ok:
        problem = response.json()
        raise PlacelinkError(
            f"the linkage service refused {path}: {problem.get('title')}",
            fix=str(problem.get("detail", "")),
        )
    return response.json()


def _fresh_dirs(out: Path) -> dict[str, Path]:
    for stale in (
        "linkage.db",
        "linkage.db-wal",
        "linkage.db-shm",
        "gateways",
        "keys",
        "service.log",
        "service-audit.jsonl",
    ):
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    dirs = {"gateways": out / "gateways", "keys": out / "keys"}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def _write_hotspots_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["area", *[m.name for m in DEFAULT_MEASURES]])
        writer.writeheader()
        writer.writerows(rows)


def run_demo(out: Path, *, seed: int = 7, people: int = 3000, progress: bool = True) -> DemoResult:
    """Run the whole demo into ``out``; returns what it printed a summary of."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    dirs = _fresh_dirs(out)
    today = dt.date.today()
    town = generate_town(seed=seed, people=people)
    csvs = write_town(town, out)
    schema = default_schema()
    secret = new_secret()
    secret_path = dirs["keys"] / "linkage.secret"
    write_secret(secret, secret_path, passphrase=None, unencrypted_unsafe=True)
    node_keys = {agency: SigningKey.generate() for agency in csvs}
    document, trusted = _dpo_signed(_enrolled_policy(node_keys, schema.sha256, today))
    policy_path = out / "policy.yaml"
    dump_policy(document, policy_path)
    policy = parse_policy(document, where=str(policy_path))
    clients, signing, client_secrets = _register_clients(dirs["keys"], policy.policy_id, node_keys)
    service = start_service(
        database_url=f"sqlite:///{out / 'linkage.db'}",
        policy_paths=[policy_path],
        schema_paths=[default_schema_path()],
        log_path=out / "service.log",
        trusted_dpo_keys=trusted,
        clients_path=clients,
        oauth_signing_key=signing,
        oauth_key_unencrypted_unsafe=True,
    )
    token_url = token_url_for(service.url)
    gateways = {
        agency: ClientCredentials(token_url, f"{agency}-gateway", node_key=node_keys[agency])
        for agency in csvs
    }
    try:
        records, sent, node = {}, 0, None
        for agency in tqdm(csvs, desc="gateways publishing", unit="agency", disable=not progress):
            config = NodeConfig(
                agency,
                csvs[agency],
                out / "agencies" / f"{agency}.mapping.yaml",
                dirs["gateways"] / agency,
                service.url,
            )
            if node is None:  # the first agency publishes through its node's own API
                node = DemoNode(config, policy_path=policy_path, trusted=trusted, today=today,
                                secret_path=secret_path, node_key=node_keys[agency])  # fmt: skip
                published = node.publish()
                records[agency], sent = int(published["records"]), int(published["bytes_sent"])
                continue
            publication = publish(
                config,
                policy=policy,
                schema=schema,
                secret=secret,
                node_key=node_keys[agency],
                trust=PolicyTrust(frozenset(trusted)),
                today=today,
                auth=gateways[agency].headers,
            )
            records[agency] = len(publication.result.batch)
            sent += publication.bytes_sent
        operator = ClientCredentials(
            token_url, "operator", client_secret=client_secrets["operator"]
        )
        analyst = ClientCredentials(token_url, "analyst", client_secret=client_secrets["analyst"])
        summary = _post(
            service, f"/v1/policies/{policy.policy_id}/link-runs", operator.access_token()
        )
        answers = _hotspot_answers(service, policy.policy_id, analyst.access_token())
        rows = answers["table"]["rows"]
        predicted = _resolve_all(service, policy.policy_id, gateways, dirs["gateways"])
        node_facts = node.facts(published) if node is not None else None
    finally:
        service.stop()
        if node is not None:
            node.close()
    truth = {f"{agency}:{rid}": person for agency, rid, person in town.truth}
    quality = pairwise_quality(predicted, truth)
    _write_hotspots_csv(rows, out / "hotspots.csv")
    result = DemoResult(out, records, summary, rows, quality, time.monotonic() - started, sent)
    (out / "report.html").write_text(
        render_report(report_facts(result), rows, [m.name for m in DEFAULT_MEASURES]),
        encoding="utf-8",
    )
    (out / "dashboard.html").write_text(snapshot_page(answers), encoding="utf-8")
    result.files = {
        "hotspots": out / "hotspots.csv",
        "report": out / "report.html",
        "dashboard": out / "dashboard.html",
    }
    result.policy_line = _policy_line(policy)
    result.schema_line = _schema_line(schema)
    result.node = node_facts
    result.audit_line = _audit_line(service, dirs["gateways"], node_keys)
    return result


def _hotspot_answers(service: RunningService, policy_id: str, token: str) -> dict[str, Any]:
    """The published answers the demo shows: the default table, and for people known to 2+
    agencies the monthly trend and the agency co-occurrence matrix."""
    path = f"/v1/policies/{policy_id}/hotspots"
    table = {"kind": "table", "measures": [vars(m) for m in DEFAULT_MEASURES]}
    known_to_2 = {"min_agencies": 2}
    return {
        "table": _post(service, path, token, table),
        "trend": _post(service, path, token, {"kind": "trend", "filter": known_to_2}),
        "cooccurrence": _post(service, path, token, {"kind": "cooccurrence", "filter": known_to_2}),
    }


def _resolve_all(
    service: RunningService, policy_id: str, gateways: dict[str, ClientCredentials], state: Path
) -> dict[str, str]:
    """Each agency resolves its own links through its own pseudonym map (as its staff would),
    with its own gateway's token: no agency can read another's links."""
    predicted = {}
    for agency, credentials in gateways.items():
        links = fetch_links(service.url, policy_id, agency, token=credentials.access_token())
        local = resolve_links(links, PseudonymMap.load(state / agency / f"{agency}.ids"))
        predicted.update({f"{agency}:{rid}": entity for rid, entity in local.items()})
    return predicted


def report_facts(result: DemoResult) -> dict[str, Any]:
    link = result.link_summary
    return {
        "records per agency": ", ".join(f"{a} {n}" for a, n in result.records.items()),
        "records linked": link["records"],
        "entities": link["entities"],
        "entities known to 2+ agencies": link["multi_agency_entities"],
        "largest entity (records)": link["largest_cluster"],
        "areas": len(result.hotspots),
        "linkage F1 against the synthetic truth": f"{result.quality.f1:.4f}",
        "bytes uploaded": result.bytes_sent,
    }


def format_summary(result: DemoResult) -> str:
    """The readable summary printed on stdout."""
    link = result.link_summary
    top = sorted(result.hotspots, key=lambda r: -_as_number(r["known_to_3plus"]))[:5]
    lines = [
        f"placelink demo: {result.out_dir}",
        "records per agency: " + ", ".join(f"{a} {n}" for a, n in result.records.items()),
        result.policy_line,
        result.schema_line,
        f"linked {link['records']} records into {link['entities']} entities, "
        f"{link['multi_agency_entities']} of them known to 2+ agencies "
        f"({link['candidate_pairs']} candidate pairs, "
        f"largest entity {link['largest_cluster']} records)",
        f"linkage quality against the synthetic truth: precision {result.quality.precision:.4f}, "
        f"recall {result.quality.recall:.4f}, F1 {result.quality.f1:.4f}",
        result.node.line() if result.node else "",
        "top hot-spots (people known to 3+ agencies, published figures):",
        *[
            f"  {r['area']:<7} 3+ agencies {r['known_to_3plus']!s:>4}   2+ agencies "
            f"{r['known_to_2plus']!s:>4}   police & children's services "
            f"{r['police_and_childrens_services']!s:>4}"
            for r in top
        ],
        f"wrote {result.files.get('hotspots')} and {result.files.get('report')}",
        f"dashboard snapshot: {result.files.get('dashboard')} (open it in a browser; the live "
        "dashboard is served at /dashboard by the linkage service, see docs/analyst.md)",
        result.audit_line,
        f"done in {result.seconds:.1f} s",
    ]
    return "\n".join(lines)


def _audit_line(service: RunningService, gateways: Path, node_keys: dict[str, SigningKey]) -> str:
    """Both sides' audit logs verified, the service's against the checkpoints the gateways
    kept (docs/dpo.md#audit-trail)."""
    from policies.audit_events import SERVICE_CHECKPOINTS, read_checkpoints
    from policies.audit_store import FileLog
    from policies.audit_verify import verify_log

    held = [c for a in node_keys for c in read_checkpoints(gateways / a / SERVICE_CHECKPOINTS)]
    log = service.audit_log or Path("service-audit.jsonl")
    verdict = verify_log(
        FileLog(log).lines(), trusted_keys=frozenset({service.service_key}), held=held
    )
    gateways_ok = all(
        verify_log(
            FileLog(gateways / a / "audit.jsonl").lines(), trusted_keys=frozenset({k.fingerprint})
        ).ok
        for a, k in node_keys.items()
    )
    state = "OK" if verdict.ok and gateways_ok else "TAMPERED"
    return (
        f"audit logs {state}: service {verdict.entries} entries, "
        f"{verdict.checkpoints} checkpoints, {len(held)} held by the gateways "
        f"(placelink audit verify --log {log} --key {service.service_key})"
    )


def _as_number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
