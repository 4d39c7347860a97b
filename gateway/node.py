"""A gateway node's publication: encode the agency's records under the policy, sign, upload.

The node keeps its pseudonym map in its state folder; nothing identifying leaves it. The batch
is written to a temporary ``.clks`` file there and uploaded from it in chunks.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.pipeline import EncodeResult, context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.submit import prepare_file_submission, upload
from keys import LinkageSecret, SigningKey
from policies.approvals import PolicyTrust, check_approved
from policies.audit_events import GatewayAudit
from policies.clks import write_clks
from policies.decisions import check_upload
from policies.linkage_schema import LinkageSchema
from policies.model import Policy


@dataclass(frozen=True)
class NodeConfig:
    """One agency's node: who it is, what it reads, where it keeps state, where it sends."""

    source: str
    input_csv: Path
    mapping: Path
    state_dir: Path
    service_url: str


@dataclass
class Publication:
    result: EncodeResult
    response: dict[str, Any]
    bytes_sent: int
    batch_id: str = ""


def pseudonym_map_path(config: NodeConfig, epoch: int) -> Path:
    """One pseudonym map per key epoch, so that a rotation also renews the pseudonyms and the
    service cannot join an epoch's records to the next one's."""
    name = f"{config.source}.ids" if epoch == 0 else f"{config.source}.epoch{epoch}.ids"
    return config.state_dir / name


def pseudonym_map_paths(config: NodeConfig) -> list[Path]:
    """Every epoch's pseudonym map the node holds (the service may still answer with an
    earlier epoch's pseudonyms until a link run of the new epoch)."""
    found = [pseudonym_map_path(config, 0), *config.state_dir.glob(f"{config.source}.epoch*.ids")]
    return [path for path in found if path.is_file()]


def publish(
    config: NodeConfig,
    *,
    policy: Policy,
    schema: LinkageSchema,
    secret: LinkageSecret,
    node_key: SigningKey,
    trust: PolicyTrust,
    epoch: int = 0,
    today: dt.date | None = None,
    auth: Callable[[], Mapping[str, str]] | None = None,
) -> Publication:
    """Encode and upload the node's records; the pseudonym map is saved only after success.
    Nothing is read or sent under a policy that the trusted DPOs have not all approved.
    ``auth`` supplies the upload's access-token header (:mod:`gateway.oauth_client`)."""
    check_approved(policy, trust=trust)
    audit = GatewayAudit(config.state_dir, source=config.source, node_key=node_key)
    day = today or dt.date.today()
    context = context_for_policy(policy, schema, epoch=epoch, today=day)
    ids_path = pseudonym_map_path(config, epoch)
    pseudonyms = PseudonymMap.load(ids_path)
    result = encode_csv(
        config.input_csv,
        secret=secret,
        context=context,
        pseudonyms=pseudonyms,
        mapping_path=config.mapping,
        today=day,
    )
    check_upload(  # the same check the service makes: nothing leaves that the policy refuses
        policy,
        party=config.source,
        fields=[f.name for f in result.batch.fields],
        attributes=result.batch.attribute_names,
        recorder=audit.recorder(policy),
    )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.state_dir) as folder:
        body = Path(folder) / "batch.clks"  # streamed from disk, chunk by chunk
        with body.open("wb") as file:
            write_clks(result.batch, file)
        submission = prepare_file_submission(
            body, source=config.source, policy_hash=policy.policy_hash, node_key=node_key
        )
        response = upload(submission, config.service_url, auth=auth)
        sent = submission.body_length
    pseudonyms.save(ids_path)
    audit.published(policy, result.batch, submission, config.service_url, response)
    return Publication(
        result=result,
        response=response,
        bytes_sent=sent,
        batch_id=str(submission.manifest["batch_id"]),
    )
