"""A gateway node's publication: encode the agency's records under the policy, sign, upload.

The node keeps its pseudonym map in its state folder; nothing identifying leaves it. Before a
byte is sent, the signed batch and the map with its new pseudonyms are made a *pending
publication* in the state folder (:mod:`gateway.pending`); the batch is uploaded from there in
chunks, and once the service has stored it the map is promoted and the pending files removed.

A publication that finds one pending (the last was killed, or the service was unreachable)
resumes it instead of encoding anew: the same signed batch, the same batch id, from the offset
the service holds; the pending publication is then the whole of this publication (outcome
``resumed``): the extract is not read again, the next publication sends it. A pending batch the
service calls too old to open (it never received it whole, so it never stored it) is dropped,
its pseudonyms kept, and the extract published afresh. Any other refusal of a pending batch
stops the publication with :class:`gateway.pending.PendingRefused`: it is resumed once the
cause is fixed, or dropped on request (``discard_pending``; its pseudonyms are kept). A
pseudonym once drawn is never drawn again, so no record reaches the service under two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.faults import fault_point
from gateway.pending import (
    DISCARD_FIX,
    PendingPublication,
    PendingRefused,
    find_pending,
    finish,
    save_pending,
    write_batch,
)
from gateway.pipeline import EncodeResult, context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.records import FieldReport
from gateway.submit import (
    ServiceUnreachable,
    Submission,
    SubmissionExpired,
    chunk_bytes_from_environment,
    prepare_file_submission,
    upload,
)
from keys import LinkageSecret, SigningKey
from keys.errors import PlacelinkError
from policies.approvals import PolicyTrust, check_approved
from policies.audit_events import GatewayAudit
from policies.clks import EncodedBatch, load_clks
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
    bytes_sent: int  # the batch's size (a resumed upload sent only what the service lacked)
    batch_id: str = ""
    pending: str = ""  # what became of a pending publication: resumed, expired or discarded


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
    discard_pending: bool = False,
) -> Publication:
    """Resume the node's pending publication if it has one, else encode and upload its
    records; the pseudonym map is promoted only once the service stored the batch. Nothing is
    read or sent under a policy that the trusted DPOs have not all approved. ``auth``
    supplies the upload's access-token header (:mod:`gateway.oauth_client`);
    ``discard_pending`` drops a pending publication first (its pseudonyms are kept)."""
    check_approved(policy, trust=trust)
    audit = GatewayAudit(config.state_dir, source=config.source, node_key=node_key)
    sending = _Sending(config, policy, audit, auth, chunk_bytes_from_environment())
    pending, note = find_pending(config.state_dir, config.source), ""
    if pending is not None and discard_pending:
        finish(pending)
        note = "discarded"
    elif pending is not None:
        resumed = _resume(sending, pending)
        if resumed is not None:
            return resumed
        finish(pending)  # never stored, and now never will be: its pseudonyms are kept
        note = "expired"
    day = today or dt.date.today()
    result, pseudonyms = _encode(config, policy, schema, secret, epoch, day, audit)
    pending, submission = _pending_submission(config, result, pseudonyms, policy, node_key, epoch)
    response = _send_new(sending, pending, submission, result.batch)
    return Publication(result, response, submission.body_length, pending.batch_id, note)


def _encode(
    config: NodeConfig, policy: Policy, schema: LinkageSchema, secret: LinkageSecret,
    epoch: int, day: dt.date, audit: GatewayAudit,
) -> tuple[EncodeResult, PseudonymMap]:  # fmt: skip
    context = context_for_policy(policy, schema, epoch=epoch, today=day)
    pseudonyms = PseudonymMap.load(pseudonym_map_path(config, epoch))
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
    return result, pseudonyms


def _pending_submission(
    config: NodeConfig, result: EncodeResult, pseudonyms: PseudonymMap, policy: Policy,
    node_key: SigningKey, epoch: int,
) -> tuple[PendingPublication, Submission]:  # fmt: skip
    """Sign the batch and make it the node's pending publication (on disk, durably)."""
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # sent from disk, chunk by chunk
    body = write_batch(config.state_dir, config.source, result.batch)
    submission = prepare_file_submission(
        body, source=config.source, policy_hash=policy.policy_hash, node_key=node_key
    )
    counts = {
        name: {"valid": r.valid, "invalid": r.invalid, "missing": r.missing,
               "unverified": r.unverified}
        for name, r in result.report.items()
    }  # fmt: skip
    pending = save_pending(
        submission, pseudonyms, target=pseudonym_map_path(config, epoch), field_counts=counts
    )
    fault_point("after-pending-saved")
    return pending, submission


@dataclass(frozen=True)
class _Sending:
    config: NodeConfig
    policy: Policy
    audit: GatewayAudit
    auth: Callable[[], Mapping[str, str]] | None
    chunk_bytes: int

    def store(
        self, pending: PendingPublication, submission: Submission, batch: EncodedBatch
    ) -> dict[str, Any]:
        """Upload (or resume) the pending batch; once stored, record it and promote its map.
        An unreachable service leaves it pending, to be resumed by the next publication."""
        url = self.config.service_url
        try:
            response = upload(submission, url, auth=self.auth, chunk_bytes=self.chunk_bytes)
        except ServiceUnreachable as exc:
            raise ServiceUnreachable(
                f"{exc.message}; the signed batch stays pending and the next publication "
                "resumes it",
                fix=exc.fix,
            ) from None
        fault_point("after-commit")
        self.audit.published(self.policy, batch, submission, url, response)
        finish(pending)
        return response


def _send_new(
    sending: _Sending, pending: PendingPublication, submission: Submission, batch: EncodedBatch
) -> dict[str, Any]:
    """A batch signed just now: a refusal means nothing of it was stored, so it is dropped
    (its pseudonyms kept) and the refusal raised as it came."""
    try:
        return sending.store(pending, submission, batch)
    except ServiceUnreachable:
        raise
    except PlacelinkError:
        finish(pending)
        raise


def _resume(sending: _Sending, pending: PendingPublication) -> Publication | None:
    """Send the pending batch as it was signed; None when the service calls it too old to
    open (never stored). Any other refusal stops here: PendingRefused, it stays pending."""
    if pending.manifest.get("policy_hash") != sending.policy.policy_hash:
        raise PendingRefused(
            f"the pending publication (batch {pending.batch_id}) was signed under another "
            "version of the policy than the node's",
            fix="restore that policy file and publish again to resume it, or " + DISCARD_FIX,
        )
    submission = pending.submission()
    batch = load_clks(pending.body_path.read_bytes())
    try:
        response = sending.store(pending, submission, batch)
    except SubmissionExpired:
        return None
    except ServiceUnreachable:
        raise
    except PlacelinkError as exc:
        raise PendingRefused(
            f"the pending publication (batch {pending.batch_id}) cannot be resumed: {exc.message}",
            fix="fix what it names and publish again to resume it, or " + DISCARD_FIX,
        ) from None
    report = {
        name: FieldReport(valid=c.get("valid", 0), invalid=c.get("invalid", 0),
                          missing=c.get("missing", 0), unverified=c.get("unverified", 0))
        for name, c in pending.field_counts.items()
    }  # fmt: skip
    result = EncodeResult(batch, report, sending.config.source)
    return Publication(result, response, submission.body_length, pending.batch_id, "resumed")
