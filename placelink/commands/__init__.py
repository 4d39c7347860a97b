"""One module per command group; each exposes ``register(commands)`` adding its sub-parsers.

A handler takes the parsed arguments and returns the exit code (0 ok, 1 failure); usage errors
(2) are argparse's. Handlers import their domain modules lazily so that `placelink --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Commands = argparse._SubParsersAction


def finished(args: argparse.Namespace, code: int) -> int:
    """The last step of a one-shot command (``encode``). Run as the ``placelink`` process
    (:func:`placelink.cli.run` marks ``args.as_process``), it leaves here, once its output is
    flushed, without the interpreter's teardown, which would free its million-record tables
    object by object (0.1-0.2 s of a million-record encode): its files are closed by then, and
    it leaves no thread, server or temporary folder for an exit handler to end. Called
    in-process (:func:`placelink.cli.main`, the tests), it returns ``code``."""
    if getattr(args, "as_process", False):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
