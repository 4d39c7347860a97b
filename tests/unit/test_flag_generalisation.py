"""The ``flag`` generalisation a policy may declare for yes/no attributes hot-spot queries
filter on (open case, ASB incident, missed school)."""

from __future__ import annotations

import pytest

from gateway.generalise import generaliser


@pytest.mark.parametrize(
    ("value", "flag"),
    [("1", "1"), ("Y", "1"), ("yes", "1"), (" TRUE ", "1"), ("t", "1"),
     ("0", "0"), ("", "0"), ("no", "0"), ("N", "0"), ("2", "0")],
)  # fmt: skip
def test_flags_are_one_or_zero(value: str, flag: str) -> None:
    assert generaliser("flag")(value) == flag
