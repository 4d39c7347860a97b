"""Property tests of the ceremony's Shamir sharing (keys.shares): any t of n shares rebuild the
secret and its epoch; t-1 shares, a damaged share or shares of two splits are refused with one
opaque error that carries no key material."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import (
    KeyMaterialError,
    LinkageSecret,
    combine_shares,
    new_secret,
    read_share,
    split_secret,
    write_share,
)
from keys.shares import MAX_SHARES, SHARE_FILE_HEADER

SECRETS = st.builds(
    LinkageSecret,
    st.binary(min_size=16, max_size=32).map(lambda b: (b * 4)[:32]),
    st.integers(min_value=0, max_value=2**32 - 1),
)


@st.composite
def splits(draw: st.DrawFn) -> tuple[LinkageSecret, int, int, list[str]]:
    secret = draw(SECRETS)
    count = draw(st.integers(min_value=2, max_value=8))
    threshold = draw(st.integers(min_value=2, max_value=count))
    return secret, threshold, count, split_secret(secret, threshold=threshold, shares=count)


@settings(max_examples=40, deadline=None)
@given(split=splits(), data=st.data())
def test_any_threshold_of_the_shares_rebuild_the_secret_and_its_epoch(
    split: tuple[LinkageSecret, int, int, list[str]], data: st.DataObject
) -> None:
    secret, threshold, count, shares = split
    assert len(shares) == count
    chosen = data.draw(st.permutations(shares).map(lambda p: p[:threshold]), label="shares")
    rebuilt = combine_shares(list(chosen))
    assert rebuilt.value == secret.value
    assert rebuilt.epoch == secret.epoch
    more = data.draw(st.integers(min_value=threshold, max_value=count), label="more")
    assert combine_shares(shares[:more]).value == secret.value


@settings(max_examples=40, deadline=None)
@given(split=splits(), data=st.data())
def test_fewer_than_threshold_shares_are_refused(
    split: tuple[LinkageSecret, int, int, list[str]], data: st.DataObject
) -> None:
    secret, threshold, _, shares = split
    few = data.draw(st.integers(min_value=1, max_value=threshold - 1), label="few")
    chosen = data.draw(st.permutations(shares).map(lambda p: p[:few]), label="shares")
    with pytest.raises(KeyMaterialError) as caught:
        combine_shares(list(chosen))
    assert caught.value.message == "cannot rebuild the secret from these shares"
    assert secret.value.hex() not in str(caught.value)


def test_every_subset_of_a_3_of_5_split_behaves() -> None:
    secret = new_secret(epoch=7)
    shares = split_secret(secret, threshold=3, shares=5)
    for size in range(1, 6):
        for subset in itertools.combinations(shares, size):
            if size >= 3:
                assert combine_shares(list(subset)).value == secret.value
            else:
                with pytest.raises(KeyMaterialError):
                    combine_shares(list(subset))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_damaged_word_or_a_share_of_another_split_is_refused(data: st.DataObject) -> None:
    secret = LinkageSecret(b"\x11" * 32, 3)
    shares = split_secret(secret, threshold=2, shares=3)
    other = split_secret(LinkageSecret(b"\x22" * 32, 3), threshold=2, shares=3)
    words = shares[0].split()
    index = data.draw(st.integers(0, len(words) - 1), label="word")
    replacement = data.draw(st.sampled_from(["academic", "zero", "wolf", "acid"]), label="new")
    if replacement == words[index]:
        replacement = "year" if words[index] != "year" else "wolf"
    damaged = " ".join([*words[:index], replacement, *words[index + 1 :]])
    messages = set()
    for attempt in ([damaged, shares[1]], [shares[0], other[1]], [shares[0], shares[0]]):
        with pytest.raises(KeyMaterialError) as caught:
            combine_shares(attempt)
        messages.add(str(caught.value))
    assert len(messages) == 1


@pytest.mark.parametrize(("threshold", "count"), [(1, 3), (4, 3), (0, 0), (2, MAX_SHARES + 1)])
def test_bad_threshold_or_count_is_refused(threshold: int, count: int) -> None:
    with pytest.raises(KeyMaterialError, match="cannot split"):
        split_secret(new_secret(), threshold=threshold, shares=count)


def test_share_files_round_trip_and_are_owner_only(tmp_path: Path) -> None:
    secret = new_secret(epoch=2)
    shares = split_secret(secret, threshold=2, shares=3)
    paths = []
    for number, words in enumerate(shares, start=1):
        path = tmp_path / f"share-{number}.txt"
        write_share(path, words, number=number, count=3, threshold=2)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text(encoding="ascii").startswith(SHARE_FILE_HEADER + "\n")
        paths.append(path)
    typed = tmp_path / "typed.txt"  # a custodian typing the words from paper, line-wrapped
    words = shares[2].split()
    typed.write_text(" ".join(words[:10]) + "\n  " + " ".join(words[10:]) + "\n")
    rebuilt = combine_shares([read_share(paths[0]), read_share(typed)])
    assert (rebuilt.value, rebuilt.epoch) == (secret.value, 2)
