"""A command, endpoint or setting that the docs do not mention is one nobody will find."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from linkage.app import api
from linkage.audit_routes import audit_api
from linkage.auth_routes import auth_api
from linkage.dashboard import dashboard
from linkage.hotspot_routes import hotspot_api
from linkage.ops_routes import ops_api
from linkage.upload_routes import uploads_api
from placelink.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(
    p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *ROOT.glob("docs/*.md")]
)


def _commands(parser: argparse.ArgumentParser, prefix: str = "placelink") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found += _commands(sub, f"{prefix} {name}")
    return found


@pytest.mark.parametrize("command", _commands(build_parser()))
def test_every_command_is_documented(command: str) -> None:
    assert command in DOCS


def _rules() -> list[str]:
    from flask import Flask

    app = Flask("probe")
    blueprints = (api, auth_api, hotspot_api, dashboard, audit_api, ops_api, uploads_api)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return [
        rule.rule.replace("<policy_id>", "<id>")
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in {b.name for b in blueprints}
    ]


@pytest.mark.parametrize("rule", _rules())
def test_every_endpoint_is_documented(rule: str) -> None:
    assert rule in (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "setting",
    [
        "PLACELINK_DATABASE_URL",
        "PLACELINK_POLICIES",
        "PLACELINK_SCHEMAS",
        "PLACELINK_TRUSTED_DPO_KEYS",
        "PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE",
        "PLACELINK_CLIENTS",
        "PLACELINK_OAUTH_SIGNING_KEY",
        "PLACELINK_OAUTH_KEY_PASSPHRASE",
        "PLACELINK_OAUTH_KEY_UNENCRYPTED_UNSAFE",
        "PLACELINK_OAUTH_ISSUER",
        "PLACELINK_OAUTH_JWKS",
        "PLACELINK_OAUTH_AUDIENCE",
        "PLACELINK_TOKEN_LIFETIME",
        "PLACELINK_AUDIT_LOG",
        "PLACELINK_SERVICE_KEY",
        "PLACELINK_SERVICE_KEY_PASSPHRASE",
        "PLACELINK_DATABASE_URL_FILE",
        "PLACELINK_METRICS_TOKEN_SHA256",
        "PLACELINK_MIGRATE_ON_START",
        "PLACELINK_LOG_LEVEL",
        "PROMETHEUS_MULTIPROC_DIR",
    ],
)
def test_every_setting_is_documented(setting: str) -> None:
    assert setting in (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "setting", ["PLACELINK_CLIENT_ID", "PLACELINK_CLIENT_SECRET", "PLACELINK_TOKEN"]
)
def test_every_client_setting_is_documented(setting: str) -> None:
    assert setting in DOCS


@pytest.mark.parametrize(
    "gone", ["PLACELINK_TOKEN_SHA256", "PLACELINK_ADMIN_TOKEN_SHA256", "PLACELINK_ADMIN_TOKEN="]
)
def test_removed_settings_are_not_documented(gone: str) -> None:
    assert gone not in DOCS


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    block = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert block == [
        "pip install -e . && placelink demo",
        "pip install -e '.[dev]' && python -m pytest",
    ]
    assert "pip install -e '.[dev]' && python -m pytest" in (ROOT / ".ci" / "run").read_text()


def _node_settings() -> list[str]:
    """Every PLACELINK_* variable the node API's code or its gunicorn config reads."""
    import re

    sources = ["gateway/node_settings.py", "gateway/staff_access.py",
               "deploy/gateway.gunicorn.conf.py"]  # fmt: skip
    text = "".join((ROOT / p).read_text(encoding="utf-8") for p in sources)
    found = set(re.findall(r"PLACELINK_[A-Z0-9_]*[A-Z0-9]", text)) - {"PLACELINK_NODE"}
    return sorted(found | {f"{name}_FILE" for name in found if name.endswith("_PASSPHRASE")})


@pytest.mark.parametrize("setting", _node_settings())
def test_every_node_setting_is_documented(setting: str) -> None:
    assert f"`{setting}`" in (ROOT / "docs" / "agency-it.md").read_text(encoding="utf-8")


def _node_endpoints() -> list[str]:
    from flask import Flask

    from gateway.app import node_api

    app = Flask("probe")
    app.register_blueprint(node_api)
    return sorted(
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("node_api.")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    )


@pytest.mark.parametrize("endpoint", _node_endpoints())
def test_every_node_endpoint_is_documented(endpoint: str) -> None:
    assert f"`{endpoint}`" in (ROOT / "docs" / "agency-it.md").read_text(encoding="utf-8")
