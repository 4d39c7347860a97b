"""Sharing policies: the model, canonical hashes, the linkage schema, the .clks layout and
the enforcement decisions that both the gateway and the linkage service take.

Public surface: :func:`policies.model.load_policy` (structure, every problem at once with its
line), :func:`policies.approvals.load_trusted_policy` (plus status, dates and DPO approvals),
:func:`policies.rules.decide` (prohibition wins, default deny; a :class:`~policies.rules.Decision`
names policy id, version hash and deciding rules), :func:`policies.lint.lint_file`, and the
explain, diff and golden-test modules behind ``placelink policy ...``.

Whom to trust (decided here, also in docs/dpo.md): each party names its DPO's key fingerprint
(``parties[].dpo_key``); a version is approved when the DPO of every provider and of the
linkage service has signed its hash (recipients may sign, need not). A verifier that acts on a
policy also pins the DPO keys it trusts (``PolicyTrust``, the service's
``PLACELINK_TRUSTED_DPO_KEYS``); an empty trust list fails closed, and only the explicitly
named ``allow_unsigned_policies_unsafe`` (tests) skips the check.
"""
