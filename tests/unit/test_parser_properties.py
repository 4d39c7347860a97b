"""Every parser, fed arbitrary or mutated input, either parses or raises the project's own
error (InputError, ConfigError, PolicyError) with a message and a fix: never a KeyError,
TypeError, UnicodeDecodeError or any other exception type a caller would not expect.

Parsers: agency CSV rows (gateway.pipeline.check_csv and encode_csv through the normaliser),
column mapping files (gateway.mapping), sharing policies (policies.model.parse_policy and
load_policy), linkage schemas (policies.linkage_schema), ``.clks`` payloads
(policies.clks.load_clks), the gateway's pseudonym map (``.ids``), and on the service the
upload manifest headers (linkage.intake.decode_manifest) and hot-spot queries
(linkage.hotspot_query.parse_query). Valid documents are mutated (a node replaced, deleted or
retyped) as well as generated from nothing, so that the fuzzing reaches deep into each parser.
"""

from __future__ import annotations

import copy
import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mapping import load_mapping, parse_mapping
from gateway.pipeline import check_csv, context_without_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import b64
from keys import new_secret
from keys.errors import ConfigError, InputError, PlacelinkError, PolicyError
from linkage.hotspot_query import QueryVocabulary, parse_query
from linkage.intake import decode_manifest
from placelink.town import generate_town, write_canonical_csv
from policies.clks import dump_clks, load_clks
from policies.linkage_schema import load_schema, parse_schema
from policies.model import load_policy, parse_policy
from tests.policy_keys import example_document

PARSER_ERRORS = (InputError, ConfigError, PolicyError)
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_N", "60")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.dates()
    | st.binary(max_size=6)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-3, 3), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one to three nodes replaced by arbitrary values or deleted."""
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(result) if p]
        if not paths:
            return draw(VALUES)
        path = draw(st.sampled_from(paths))
        parent = result
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            parent[path[-1]] = draw(VALUES)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return result


def assert_parses_or_refuses(parse: Callable[[], object]) -> None:
    try:
        parse()
    except PARSER_ERRORS as exc:
        assert exc.message.strip() and exc.fix.strip(), "an error must say what and the fix"
    except PlacelinkError as exc:  # pragma: no cover - named in the failure message
        pytest.fail(f"{type(exc).__name__} is not a parser error: {exc}")


@contextmanager
def written(data: bytes, suffix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        yield path


def yaml_bytes(document: Any) -> bytes:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()


# --- sharing policies ---------------------------------------------------------------------

EXAMPLE_POLICY = example_document()


@FUZZ
@given(document=mutated(EXAMPLE_POLICY) | VALUES)
def test_a_mutated_policy_parses_or_is_a_policy_error(document: Any) -> None:
    assert_parses_or_refuses(lambda: parse_policy(document))


@FUZZ
@given(data=st.binary(max_size=300) | VALUES.map(yaml_bytes))
def test_any_policy_file_loads_or_is_a_policy_error(data: bytes) -> None:
    with written(data, ".yaml") as path:
        assert_parses_or_refuses(lambda: load_policy(path))


# --- linkage schemas ----------------------------------------------------------------------

DEFAULT_SCHEMA = yaml.safe_load(default_schema_path().read_text(encoding="utf-8"))


@FUZZ
@given(document=mutated(DEFAULT_SCHEMA) | VALUES)
def test_a_mutated_linkage_schema_parses_or_is_a_config_error(document: Any) -> None:
    assert_parses_or_refuses(lambda: parse_schema(document))


@FUZZ
@given(data=st.binary(max_size=300) | mutated(DEFAULT_SCHEMA).map(yaml_bytes))
def test_any_linkage_schema_file_loads_or_is_a_config_error(data: bytes) -> None:
    with written(data, ".yaml") as path:
        assert_parses_or_refuses(lambda: load_schema(path))


# --- column mappings ----------------------------------------------------------------------

EXAMPLE_MAPPING = {
    "mapping_version": 1,
    "source": "police",
    "columns": {
        "record_id": "ref",
        "given_name": "forename",
        "date_of_birth": {"column": "dob", "format": ["%d/%m/%Y", "%d/%m/%y"], "century_pivot": 30},
        "sex": {"column": "gender", "codes": {"M": "M", "F": "F"}},
        "event_date": {"column": "incident_date", "format": "%d/%m/%Y"},
    },
}


@FUZZ
@given(document=mutated(EXAMPLE_MAPPING) | VALUES)
def test_a_mutated_mapping_parses_or_is_a_config_error(document: Any) -> None:
    assert_parses_or_refuses(lambda: parse_mapping(document))


@FUZZ
@given(data=st.binary(max_size=300) | mutated(EXAMPLE_MAPPING).map(yaml_bytes))
def test_any_mapping_file_loads_or_is_a_config_error(data: bytes) -> None:
    with written(data, ".yaml") as path:
        assert_parses_or_refuses(lambda: load_mapping(path))


# --- agency CSV rows ----------------------------------------------------------------------

HEADER = "record_id,given_name,family_name,date_of_birth,sex,postcode,address,nhs_number"
ODD_CELLS = ["", '"', "\x00", "31/02/1990", "1990-02-31", "SW1A 1AA", "943 476 5919", "Zoë", ","]
CELLS = st.text(max_size=14) | st.sampled_from(ODD_CELLS)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    header = draw(st.sampled_from([HEADER, HEADER.replace("record_id,", ""), "a,b", ""]))
    width = len(header.split(",")) + draw(st.integers(-2, 2))
    rows = draw(st.lists(st.lists(CELLS, min_size=max(width, 0), max_size=max(width, 0)),
                         max_size=5))  # fmt: skip
    return "\n".join([header, *(",".join(row) for row in rows)])


@FUZZ
@given(data=csv_texts().map(str.encode) | st.binary(max_size=200))
def test_any_csv_extract_checks_or_is_an_input_error(data: bytes) -> None:
    with written(data, ".csv") as path:
        assert_parses_or_refuses(lambda: check_csv(path, mapping_path=None))


@FUZZ
@given(data=csv_texts().map(str.encode) | st.binary(max_size=200))
def test_any_csv_extract_encodes_or_is_an_input_error(data: bytes) -> None:
    context = context_without_policy(default_schema(), policy_id="fuzz", epoch=0)
    with written(data, ".csv") as path:
        assert_parses_or_refuses(
            lambda: encode_csv(path, secret=SECRET, context=context, pseudonyms=PseudonymMap())
        )


SECRET = new_secret()


# --- .clks payloads -----------------------------------------------------------------------


def _valid_payload() -> bytes:
    town = generate_town(seed=2, people=12, areas=1)
    context = context_without_policy(default_schema(), policy_id="fuzz", epoch=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "police.csv"
        write_canonical_csv(town.canonical_rows["police"], path)
        batch = encode_csv(path, secret=SECRET, context=context, pseudonyms=PseudonymMap()).batch
    return dump_clks(batch)


PAYLOAD = _valid_payload()


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_never_anything_but_an_input_error(data: bytes) -> None:
    assert_parses_or_refuses(lambda: load_clks(data))


@FUZZ
@given(
    at=st.integers(0, len(PAYLOAD) - 1),
    replacement=st.binary(min_size=1, max_size=8),
    cut=st.integers(0, len(PAYLOAD)),
)
def test_a_spliced_payload_loads_or_is_an_input_error(
    at: int, replacement: bytes, cut: int
) -> None:
    spliced = (PAYLOAD[:at] + replacement + PAYLOAD[at + len(replacement) :])[:cut]
    assert_parses_or_refuses(lambda: load_clks(spliced))


# --- the pseudonym map, the manifest headers, hot-spot queries ---------------------------


@FUZZ
@given(data=st.binary(max_size=200) | csv_texts().map(str.encode))
def test_any_pseudonym_map_loads_or_is_an_input_error(data: bytes) -> None:
    with written(data, ".ids") as path:
        assert_parses_or_refuses(lambda: PseudonymMap.load(path))


B64_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                   max_size=60)  # fmt: skip
HEADER_TEXT = (
    st.none() | st.text(max_size=40) | B64_TEXT | VALUES.map(lambda v: b64(repr(v).encode()))
)


@FUZZ
@given(manifest=HEADER_TEXT, signature=HEADER_TEXT)
def test_any_manifest_header_decodes_or_is_an_input_error(
    manifest: str | None, signature: str | None
) -> None:
    assert_parses_or_refuses(lambda: decode_manifest(manifest, signature))


VOCABULARY = QueryVocabulary("area", ("police", "health", "school"), ("rough_sleeping",))
EXAMPLE_QUERY = {
    "kind": "table",
    "by": "area",
    "filter": {"min_agencies": 2, "all_of": ["police"], "none_of": ["school"],
               "flags": ["rough_sleeping"], "from": "2025-01", "to": "2025-12"},
    "measures": [{"name": "known", "min_agencies": 1}, {"name": "both", "all_of": ["health"]}],
}  # fmt: skip


@FUZZ
@given(query=mutated(EXAMPLE_QUERY) | VALUES)
def test_a_mutated_hotspot_query_parses_or_is_an_input_error(query: Any) -> None:
    assert_parses_or_refuses(lambda: parse_query(query, VOCABULARY))


def test_the_fuzzed_valid_inputs_are_valid() -> None:
    """The mutations start from documents that parse, so a mutation is what gets refused."""
    parse_policy(EXAMPLE_POLICY)
    parse_schema(DEFAULT_SCHEMA)
    parse_mapping(EXAMPLE_MAPPING)
    assert len(load_clks(PAYLOAD)) > 0
    parse_query(EXAMPLE_QUERY, VOCABULARY)
    assert isinstance(dt.date.today(), dt.date)
