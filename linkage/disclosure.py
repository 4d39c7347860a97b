"""The disclosure rule applied to every published count.

House default (a policy may only tighten it): 0 stays 0; 1 to min_cell-1 is suppressed and
shown as ``*``; min_cell and above is rounded half-up to the nearest multiple of ``rounding``
(with the defaults 8 and 9 show as 10, 12 as 10, 13 as 15). Only a true 0 shows as 0: under a
policy whose rounding exceeds twice min_cell, a count that would round to 0 is suppressed too.
"""

from __future__ import annotations

from policies.model import DisclosureControl

SUPPRESSED = "*"
Published = int | str


def publish_count(count: int, control: DisclosureControl) -> Published:
    """The published form of one true count."""
    if count < 0:
        raise ValueError("a count cannot be negative")
    if count == 0:
        return 0
    rounded = control.rounding * ((2 * count + control.rounding) // (2 * control.rounding))
    if count < control.min_cell or rounded == 0:
        return SUPPRESSED  # a count of people never publishes as 0 (rounding > 2 * count)
    return rounded
