"""deploy/ names real things. Docker cannot run here, so what can be checked is: the gunicorn
config serves the linkage app as documented; the compose file, the systemd units and the
Dockerfile name commands that exist (console scripts, importable entry points, `placelink`
subcommands that parse), settings the code reads, and files that are in the repository or are
documented mounts; the image runs as a non-root user on a slim base; and `systemd-analyze
verify` accepts the units (where systemd is installed)."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from policies.model import dump_policy
from tests.policy_keys import enrolled_document, example_trust

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("placelink-*"))
BIN = Path(sys.executable).parent  # where `pip install` put the console scripts
# Host folders the operator creates beside the compose file (git-ignored, in the guide).
MOUNTS = ("./config", "./secrets", "./agencies")
# Settings that belong to other programs: the postgres image, systemd.
FOREIGN_SETTINGS = {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE",
                    "CREDENTIALS_DIRECTORY", "MAINPID", "PYTHONDONTWRITEBYTECODE",
                    "PYTHONUNBUFFERED"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gunicorn_config_serves_the_documented_entry_point(tmp_path: Path) -> None:
    port = _free_port()
    policy_path = tmp_path / "policy.yaml"  # the signed example, dated around today
    dump_policy(enrolled_document({}, today=dt.date.today()), policy_path)
    env = dict(os.environ)
    env.update(
        PLACELINK_BIND=f"127.0.0.1:{port}",
        PLACELINK_WORKERS="1",
        PLACELINK_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        PLACELINK_POLICIES=str(policy_path),
        PLACELINK_TRUSTED_DPO_KEYS=",".join(sorted(example_trust().trusted_dpo_keys)),
    )
    env.pop("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", None)
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
               "linkage.app:app_from_environment()"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except requests.RequestException:
                time.sleep(0.2)
        assert answer is not None and answer.json() == {"status": "ok"}
        denied = requests.post(f"http://127.0.0.1:{port}/v1/policies/x/link-runs", timeout=5)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"]  # no token
        assert denied.headers["Content-Type"] == "application/problem+json"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _compose() -> dict[str, object]:
    document: dict[str, object] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def _unit(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every line of a systemd unit (keys may repeat)."""
    entries, section = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            entries.append((section, key, value))
    return entries


def _commands() -> list[list[str]]:
    """Every command line the compose file, the units and the Dockerfile run."""
    found = []
    for service in _compose()["services"].values():  # type: ignore[attr-defined]
        if "command" in service:
            found.append(list(service["command"]))
    for unit in UNITS:
        for _, key, value in _unit(unit):
            if key in {"ExecStart", "ExecStartPre"}:
                words = shlex.split(value.replace("$$", "$"))
                if words[:2] == ["/bin/sh", "-c"]:
                    words = shlex.split(words[2].split("exec ", 1)[1])
                found.append(words)
    cmd = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert cmd is not None
    found.append(yaml.safe_load(cmd.group(1)))
    return found


def _in_repo(path: str) -> Path:
    """A path inside the image or on the host, mapped to the repository file it comes from."""
    return DEPLOY / Path(path).name


def test_the_compose_file_runs_the_service_its_database_and_three_gateways() -> None:
    services = _compose()["services"]
    assert {"linkage", "postgres", "migrate"} <= set(services)  # type: ignore[arg-type]
    gateways = [name for name in services if name.startswith("gateway-")]  # type: ignore[attr-defined]
    assert len(gateways) == 3
    sources = {services[g]["environment"]["PLACELINK_NODE_SOURCE"] for g in gateways}  # type: ignore[index]
    assert len(sources) == 3


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c)[:60])
def test_every_command_named_exists(command: list[str]) -> None:
    program = Path(command[0]).name
    if program in {"sh", "kill"}:
        assert Path(command[0]).is_absolute() or shutil.which(program)
        return
    assert (BIN / program).exists(), f"{program} is not a console script placelink installs"
    if program == "placelink":
        words = [w for w in command[1:] if not w.startswith("-")][:2]
        result = subprocess.run([str(BIN / "placelink"), *words, "--help"], capture_output=True)
        assert result.returncode == 0, f"placelink {' '.join(words)} does not exist"
    if program == "gunicorn":
        config = command[command.index("-c") + 1]
        assert _in_repo(config).exists(), f"{config} comes from no file in deploy/"
        module, call = command[-1].removesuffix("()").split(":")
        assert callable(getattr(importlib.import_module(module), call))


def _settings_named() -> set[str]:
    files = [*DEPLOY.glob("*.example"), *UNITS, DEPLOY / "compose.yaml", DEPLOY / "Dockerfile"]
    text = "\n".join(p.read_text() for p in files)
    named = set(re.findall(r"\b(?:PLACELINK|PROMETHEUS|POSTGRES)_[A-Z0-9_]+\b", text))
    return named | (set(re.findall(r"\$\$?\{?([A-Z][A-Z0-9_]+)", text)) & FOREIGN_SETTINGS)


def _code_text() -> str:
    sources = [p for d in ("linkage", "gateway", "policies", "keys", "placelink")
               for p in (ROOT / d).rglob("*.py")]  # fmt: skip
    return "\n".join(p.read_text() for p in [*sources, *DEPLOY.glob("*.conf.py")])


@pytest.mark.parametrize("setting", sorted(_settings_named()))
def test_every_setting_named_is_read_by_the_code(setting: str) -> None:
    if setting in FOREIGN_SETTINGS:
        return
    if setting == "PROMETHEUS_MULTIPROC_DIR":  # read by prometheus_client; we name it too
        assert "PROMETHEUS_MULTIPROC_DIR" in _code_text()
        return
    code = _code_text()
    read = f'"{setting}"' in code
    if not read and setting.endswith("_FILE"):  # read as f"{NAME}_FILE" beside NAME
        read = f'"{setting.removesuffix("_FILE")}"' in code and '_FILE"' in code
    assert read, f"no code reads {setting}"


def test_every_linkage_setting_is_in_the_env_example_and_the_guide() -> None:
    example = (DEPLOY / "linkage.env.example").read_text()
    guide = (ROOT / "docs" / "operator.md").read_text()
    app = (ROOT / "linkage" / "app.py").read_text() + (ROOT / "linkage" / "migrate.py").read_text()
    read = set(re.findall(r'"(PLACELINK_[A-Z0-9_]+)"', app))
    for config in (DEPLOY / "gunicorn.conf.py", ROOT / "policies" / "gunicorn_settings.py"):
        read |= set(re.findall(r'"(PLACELINK_[A-Z0-9_]+)"', config.read_text()))
    assert read >= {"PLACELINK_DATABASE_URL_FILE", "PLACELINK_METRICS_TOKEN_SHA256",
                    "PLACELINK_BIND", "PLACELINK_WORKERS", "PLACELINK_LOG_LEVEL"}  # fmt: skip
    for setting in read:
        assert setting in example, f"{setting} is missing from deploy/linkage.env.example"
        assert setting in guide, f"{setting} is missing from docs/operator.md"


def test_every_file_the_compose_file_names_exists_or_is_a_documented_mount() -> None:
    compose, guide = _compose(), (ROOT / "docs" / "operator.md").read_text()
    hosts = [s["file"] for s in compose["secrets"].values()]  # type: ignore[attr-defined]
    for service in compose["services"].values():  # type: ignore[attr-defined]
        hosts += [v.split(":", 1)[0] for v in service.get("volumes", []) if v.startswith(".")]
        hosts += [f"{f}.example" for f in service.get("env_file", [])]
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
    for host in hosts:
        mount = next((m for m in MOUNTS if host == m or host.startswith(m + "/")), None)
        if mount is None:
            assert (DEPLOY / host).exists(), f"{host} is neither in deploy/ nor a mount"
        else:
            assert f"deploy/{mount[2:]}/" in guide, f"{mount} is not in docs/operator.md"
            assert f"deploy/{mount[2:]}/" in (ROOT / ".gitignore").read_text()


def test_every_file_the_units_and_dockerfile_name_exists() -> None:
    for unit in UNITS:
        for _, key, value in _unit(unit):
            if key == "EnvironmentFile":
                assert (DEPLOY / f"{Path(value).name}.example").exists(), value
            if key == "Unit":
                assert (DEPLOY / "systemd" / value).exists(), value
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert list(ROOT.glob(source)), f"the Dockerfile copies {source}, which is missing"


def test_the_image_is_slim_runs_as_a_user_and_bakes_in_no_secret() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert set(re.findall(r"^FROM (\S+)", dockerfile, re.M)) == {"python:3.11-slim"}
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n.*healthz", dockerfile, re.M)
    assert "gunicorn.conf.py" in re.findall(r"^CMD (.*)$", dockerfile, re.M)[-1]
    assert "[fast]" in dockerfile
    secrets = re.findall(r"^(?:ENV|ARG)\b.*(?:TOKEN|PASSWORD|SECRET|PASSPHRASE)", dockerfile, re.M)
    assert secrets == []


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # optional: the checks above do not need systemd
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS:  # against this installation's console scripts, not /opt/placelink
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/placelink/bin", str(BIN)))
    units = [str(tmp_path / u.name) for u in UNITS]
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "placelink" not in result.stderr, result.stderr
