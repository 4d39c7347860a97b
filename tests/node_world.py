"""A gateway node's world for the node API's tests: a synthetic town written as agency
extracts, a linkage secret and node keys on disk (encrypted), the example policy with the
node keys enrolled and signed by the example DPOs, staff tokens, and the PLACELINK_NODE_*
environment that configures the node API for one agency."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from keys import LinkageSecret, SigningKey, new_secret, save_signing_key, write_secret
from keys.secret import MIN_SCRYPT_N
from placelink.town import Town, generate_town, write_town
from policies.model import dump_policy
from tests.policy_keys import enrolled_document, example_trust

SECRET_PASSPHRASE = "test secret passphrase"  # tests only
NODE_PASSPHRASE = "test node-key passphrase"  # tests only
POLICY_ID = "seabrook-task-force"


@dataclass
class NodeWorld:
    folder: Path
    town: Town
    source: str
    secret: LinkageSecret
    node_keys: dict[str, SigningKey]
    policy_path: Path
    staff_token: str
    operator_token: str
    env: dict[str, str]

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    def agency_files(self, agency: str) -> tuple[Path, Path]:
        base = self.folder / "agencies"
        return base / f"{agency}.csv", base / f"{agency}.mapping.yaml"


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def build_node_world(
    folder: Path,
    *,
    source: str = "police",
    people: int = 200,
    service_url: str = "http://127.0.0.1:9",
) -> NodeWorld:
    """Everything on disk under ``folder``; ``env`` configures the API of ``source``'s node."""
    town = generate_town(seed=11, people=people)
    write_town(town, folder)
    node_keys = {agency: SigningKey.generate() for agency in town.agency_rows}
    policy_path = folder / "policy.yaml"
    dump_policy(enrolled_document(node_keys, today=dt.date.today()), policy_path)
    secret = new_secret()
    write_secret(secret, folder / "linkage.secret", passphrase=SECRET_PASSPHRASE,
                 scrypt_n=MIN_SCRYPT_N)  # fmt: skip
    save_signing_key(folder / "node-signing.pem", node_keys[source], passphrase=NODE_PASSPHRASE)
    staff, operator = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {
        "PLACELINK_NODE_SOURCE": source,
        "PLACELINK_NODE_INPUT": str(folder / "agencies" / f"{source}.csv"),
        "PLACELINK_NODE_MAPPING": str(folder / "agencies" / f"{source}.mapping.yaml"),
        "PLACELINK_NODE_STATE_DIR": str(folder / "state"),
        "PLACELINK_NODE_SERVICE_URL": service_url,
        "PLACELINK_NODE_POLICY": str(policy_path),
        "PLACELINK_NODE_SECRET_FILE": str(folder / "linkage.secret"),
        "PLACELINK_NODE_KEY_FILE": str(folder / "node-signing.pem"),
        "PLACELINK_SECRET_PASSPHRASE": SECRET_PASSPHRASE,
        "PLACELINK_NODE_PASSPHRASE": NODE_PASSPHRASE,
        "PLACELINK_TRUSTED_DPO_KEYS": ",".join(sorted(example_trust().trusted_dpo_keys)),
        "PLACELINK_NODE_STAFF_TOKEN_SHA256": sha256(staff),
        "PLACELINK_NODE_OPERATOR_TOKEN_SHA256": sha256(operator),
    }
    return NodeWorld(folder, town, source, secret, node_keys, policy_path, staff, operator, env)


@dataclass
class RunningNode:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_node_api(world: NodeWorld, log_path: Path, *, workers: int = 2) -> RunningNode:
    """``placelink gateway serve`` (gunicorn) on a loopback socket bound here (port 0, no
    race), handed over as ``fd://N``; returns once /healthz answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    command = [sys.executable, "-m", "placelink", "gateway", "serve", "--bind",
               f"fd://{sock.fileno()}", "--workers", str(workers)]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=os.environ | world.env, stdout=log,
                                   stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),))  # fmt: skip
    sock.close()
    node = RunningNode(url, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return node
        except requests.RequestException:
            time.sleep(0.1)
    node.stop()
    raise AssertionError(f"the node API did not start:\n{log_path.read_text()}")
