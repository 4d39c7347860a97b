"""The gateway node's API for real: the linkage service under gunicorn (start_service), the
police node's API under gunicorn (``placelink gateway serve``), both on loopback. A publish is
triggered over HTTP and shows in the publication log; the other agencies publish; the service
links; the node resolves the links to the police's own record IDs, and they agree with the
synthetic truth. Two gunicorn workers and another process share one publication lock."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gateway.node import NodeConfig, publish
from gateway.pseudonyms import PseudonymMap
from gateway.publications import publication_lock
from gateway.resolve import fetch_links, resolve_links
from gateway.schema import default_schema, default_schema_path
from linkage.server import RunningService, start_service
from policies.model import load_policy
from tests.node_world import (
    POLICY_ID,
    NodeWorld,
    RunningNode,
    build_node_world,
    start_node_api,
)
from tests.oauth_clients import credentials, gateway_client_id, write_oauth_files
from tests.policy_keys import example_trust

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    world: NodeWorld
    service: RunningService
    node: RunningNode

    def node_call(self, method: str, path: str, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, f"{self.node.url}{path}", headers=headers, timeout=120)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("nodeapi")
    world = build_node_world(folder, people=400, service_url="http://127.0.0.1:9")
    service = start_service(
        database_url=f"sqlite:///{folder / 'linkage.db'}", policy_paths=[world.policy_path],
        schema_paths=[default_schema_path()], log_path=folder / "service.log",
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
        **write_oauth_files(folder / "oauth", world.node_keys).service_kwargs(),
    )  # fmt: skip
    world.env["PLACELINK_NODE_SERVICE_URL"] = service.url
    try:
        node = start_node_api(world, folder / "node.log")
    except BaseException:
        service.stop()
        raise
    try:
        yield Running(world, service, node)
    finally:
        node.stop()
        service.stop()


def _publish_the_other_agencies(running: Running) -> None:
    world = running.world
    for agency in world.town.agency_rows:
        if agency == world.source:
            continue
        csv_path, mapping = world.agency_files(agency)
        config = NodeConfig(agency, csv_path, mapping, world.folder / "others", running.service.url)
        publish(config, policy=load_policy(world.policy_path), schema=default_schema(),
                secret=world.secret, node_key=world.node_keys[agency], trust=example_trust(),
                today=dt.date.today(), auth=credentials(running.service.url,
                gateway_client_id(agency), world.node_keys[agency]).headers)  # fmt: skip


def test_publish_list_link_and_resolve_over_http(running: Running) -> None:
    world = running.world
    assert running.node_call("GET", "/readyz", None).json()["status"] == "ready"
    published = running.node_call("POST", "/v1/publications", world.operator_token)
    assert published.status_code == 201, published.text
    police_ids = {row["ref"] for row in world.town.agency_rows["police"]}
    assert published.json()["records"] == len(police_ids)
    listed = running.node_call("GET", "/v1/publications", world.staff_token).json()
    entry = listed["publications"][0]
    assert entry["publication_id"] == published.json()["publication_id"]
    assert entry["outcome"] == "published" and entry["service_response"]["records"] == len(
        police_ids)  # fmt: skip
    assert [rid for rid in police_ids if rid in str(listed)] == []

    _publish_the_other_agencies(running)
    link_run = requests.post(
        f"{running.service.url}/v1/policies/{POLICY_ID}/link-runs",
        headers=credentials(running.service.url, "admin").headers(),
        timeout=300,
    )
    assert link_run.status_code == 201, link_run.text

    answer = running.node_call("GET", f"/v1/links?policy={POLICY_ID}", world.staff_token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ours = {link["record_id"]: link["entity_id"] for link in body["links"]}
    assert set(ours) == police_ids and body["unresolved"] == 0
    _assert_agrees_with_the_truth(running, ours)
    one = next(iter(sorted(ours)))
    single = running.node_call("GET", f"/v1/links?record_id={one}", world.staff_token).json()
    assert [x["record_id"] for x in single["links"]] == [one] and single["records"] == len(ours)


def _assert_agrees_with_the_truth(running: Running, police: dict[str, str]) -> None:
    """Police records of people health also knows share the health record's entity: a wrong
    resolution (record IDs shuffled) would agree almost never."""
    others = running.world.folder / "others"
    health_gateway = credentials(
        running.service.url, "health-gateway", running.world.node_keys["health"]
    )
    links = fetch_links(
        running.service.url, POLICY_ID, "health", token=health_gateway.access_token()
    )
    health = resolve_links(links, PseudonymMap.load(others / "health.ids"))
    person = {(a, r): p for a, r, p in running.world.town.truth}
    by_person = {person["health", r]: e for r, e in health.items()}
    shared = [(e, by_person[person["police", r]]) for r, e in police.items()
              if person["police", r] in by_person]  # fmt: skip
    assert len(shared) >= 10
    agree = sum(ours == theirs for ours, theirs in shared) / len(shared)
    assert agree >= 0.9


def test_two_processes_never_publish_at_once(running: Running) -> None:
    """The test process holds the node's lock (as a CLI publish would): the workers refuse."""
    world = running.world
    with publication_lock(world.state_dir):
        answers = [running.node_call("POST", "/v1/publications", world.operator_token)
                   for _ in range(4)]  # fmt: skip
    assert {a.status_code for a in answers} == {409}
    assert answers[0].headers["Content-Type"] == "application/problem+json"
    assert answers[0].json()["type"].endswith("/publication-in-progress")


def test_the_node_denies_by_default(running: Running) -> None:
    for method, path in (("GET", "/v1/publications"), ("POST", "/v1/publications"),
                         ("GET", "/v1/links")):  # fmt: skip
        answer = running.node_call(method, path, None)
        assert answer.status_code == 401
        assert answer.json()["type"].endswith("/unauthorized")
    staff_publish = running.node_call("POST", "/v1/publications", running.world.staff_token)
    assert staff_publish.status_code == 403


def test_the_deploy_config_serves_the_documented_entry_point(running: Running) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | running.world.env | {"PLACELINK_BIND": f"127.0.0.1:{port}",
                                            "PLACELINK_WORKERS": "1"}  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "-c",
               str(ROOT / "deploy" / "gateway.gunicorn.conf.py"),
               "gateway.app:app_from_environment()"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except requests.RequestException:
                time.sleep(0.2)
        assert answer is not None and answer.json()["status"] == "ready"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_cli_publication_is_listed_by_the_api(
    running: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from placelink.cli import main

    world, env = running.world, running.world.env
    for name in ("PLACELINK_SECRET_PASSPHRASE", "PLACELINK_NODE_PASSPHRASE",
                 "PLACELINK_TRUSTED_DPO_KEYS"):  # fmt: skip
        monkeypatch.setenv(name, env[name])
    flags = {"--policy": "POLICY", "--secret-file": "SECRET_FILE", "--node-key": "KEY_FILE",
             "--input": "INPUT", "--mapping": "MAPPING", "--state": "STATE_DIR"}  # fmt: skip
    argv = [x for flag, name in flags.items() for x in (flag, env[f"PLACELINK_NODE_{name}"])]
    code = main(["gateway", "publish", *argv, "--source", "police", "--service",
                 running.service.url])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    latest = running.node_call("GET", "/v1/publications?limit=1", world.staff_token).json()
    assert latest["publications"][0]["trigger"] == "cli"
    assert latest["publications"][0]["outcome"] == "published"


def _sample(text: str, name: str) -> float:
    found = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0]) if found else 0.0


def test_metrics_count_what_both_workers_did(running: Running) -> None:
    """``placelink gateway serve`` runs the shared gunicorn settings: JSON request logs, and
    multi-process metrics, so whichever worker answers /metrics counts both workers' requests
    (a worker counting only its own would fall short)."""
    ids: list[str] = []
    for _ in range(10):  # fresh connections until the log shows both workers answering
        for _ in range(10):
            ids.append(requests.get(f"{running.node.url}/openapi.json", timeout=5)
                       .headers["X-Request-Id"])  # fmt: skip
        time.sleep(0.3)  # let the lines reach the log
        lines = [json.loads(line) for line in running.node.log_path.read_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        pids = {line["pid"] for line in lines if line.get("request_id") in set(ids)}
        if len(pids) == 2:
            break
    assert len(pids) == 2, "one worker answered every request; the test proves nothing"
    assert {line["route"] for line in lines if line.get("request_id") in set(ids)} == {
        "/openapi.json"
    }
    name = ('placelink_http_requests_total{method="GET",route="/openapi.json",'
            'service="gateway",status="200"}')  # fmt: skip
    for _ in range(6):  # each scrape, whichever worker answers it
        text = running.node_call("GET", "/metrics", running.world.staff_token).text
        assert _sample(text, name) == len(ids)
