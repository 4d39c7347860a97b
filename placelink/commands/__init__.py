"""One module per command group; each exposes ``register(commands)`` adding its sub-parsers.

A handler takes the parsed arguments and returns the exit code (0 ok, 1 failure); usage errors
(2) are argparse's. Handlers import their domain modules lazily so that `placelink --help`
stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Commands = argparse._SubParsersAction
