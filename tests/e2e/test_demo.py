"""The main job, end to end through the real command: `placelink demo` on a small town.

Asserts on what a task force would see (the published hot-spot table and the report), on the
disclosure rule against the true linked counts kept by the service, and on a linkage-quality
floor measured on this generator (F1 0.99+ at seeds 1, 2, 7, 11 with 3,000 people).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linkage.disclosure import publish_count
from linkage.hotspots import DEFAULT_MEASURES, raw_table
from linkage.storage import Store
from policies.approvals import PolicyTrust, check_approved
from policies.model import DisclosureControl, load_policy

F1_FLOOR = 0.98
MEASURES = [m.name for m in DEFAULT_MEASURES]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    command = [sys.executable, "-m", "placelink", "demo", "--out", str(out), "--people", "1500",
               "--seed", "3", "--quiet", "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def _published_rows(out: Path) -> list[dict[str, str]]:
    with (out / "hotspots.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_demo_writes_agency_files_and_keeps_truth_apart(demo: tuple[Path, dict[str, Any]]) -> None:
    out, summary = demo
    agencies = sorted(p.stem for p in (out / "agencies").glob("*.csv"))
    assert agencies == sorted(summary["records"]) and len(agencies) >= 4
    assert {"police", "childrens_services", "housing", "health"} <= set(agencies)
    assert (out / "truth" / "truth.csv").exists()
    assert not list((out / "agencies").glob("truth*"))


def test_published_cells_follow_the_disclosure_rule(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    rows = _published_rows(out)
    assert list(rows[0]) == ["area", *MEASURES] and len(rows) >= 20
    store = Store(f"sqlite:///{out / 'linkage.db'}")
    truth = raw_table(store.entity_records("seabrook-task-force", "area", "event_month"),
                      DEFAULT_MEASURES)  # fmt: skip
    control = DisclosureControl()
    suppressed = 0
    for row in rows:
        for measure in MEASURES:
            true_count = truth[row["area"]][measure]
            shown = row[measure]
            # the rule, or a secondary / differencing suppression: never another number
            assert shown in (str(publish_count(true_count, control)), "*")
            if 1 <= true_count <= 7:
                suppressed += 1
                assert shown == "*"
            elif shown != "*":
                assert int(shown) % 5 == 0 and int(shown) != 5
    assert suppressed > 0, "a small town should have small cells to suppress"


def test_the_policy_was_dpo_signed_and_verified_by_the_service(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo
    assert "approved by 5 DPOs for 6 parties" in summary["policy"]
    assert "placelink-default v3" in summary["schema"]  # names hardened by default
    assert "given_name (birth_date, postcode_other_name)" in summary["schema"]
    policy = load_policy(out / "policy.yaml")
    trusted = frozenset(p.dpo_key for p in policy.parties if p.dpo_key)
    check_approved(policy, trust=PolicyTrust(trusted))


def test_one_agency_published_and_read_its_links_through_its_node_api(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo
    node = summary["node_api"]
    assert node["records"] == summary["records"][node["source"]] > 0
    assert node["linked"] == node["records"]  # every record resolved through the node's own map
    assert 0 < node["entities"] <= node["linked"]
    lines = [json.loads(line) for line in (out / "gateways" / node["source"] / "node.log").open()]
    calls = {(line["method"], line["route"], line["status"]) for line in lines}
    assert calls == {("POST", "/v1/publications", 201), ("GET", "/v1/links", 200)}
    assert all("record_id" not in line and "pseudonym" not in line for line in lines)


def test_dashboard_snapshot_embeds_published_answers_only(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = demo
    page = (out / "dashboard.html").read_text(encoding="utf-8")
    bare = page.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace is a name, not a URL
    assert "http://" not in bare and "https://" not in bare, "nothing fetched from outside"
    opening = '<script id="snapshot" type="application/json">'
    start = page.index(opening) + len(opening)
    answers = json.loads(page[start : page.index("</script>", start)])
    assert set(answers) == {"table", "trend", "cooccurrence"}
    assert answers["table"]["rows"] == [
        {k: (int(v) if v.isdigit() else v) for k, v in row.items()} for row in _published_rows(out)
    ]
    for answer in answers.values():
        for row in answer["rows"]:
            for column in answer["columns"]:
                value = row[column]
                assert value in (0, "*") or (isinstance(value, int) and value % 5 == 0)


def test_linkage_quality_floor(demo: tuple[Path, dict[str, Any]]) -> None:
    _, summary = demo
    assert summary["f1"] >= F1_FLOOR
    assert summary["linkage"]["largest_cluster"] <= 12


def test_report_page_carries_published_figures_only(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and "<table>" in page and "http" not in page.split("</style>")[0]
    for row in _published_rows(out):
        assert f"<td>{row['area']}</td>" in page
    with (out / "agencies" / "health.csv").open(encoding="utf-8") as handle:
        sample = list(csv.DictReader(handle))[:50]
    for record in sample:
        for value in (record["family_name"], record["nhs_number"], record["nhs_id_local"]):
            assert not value or value not in page
