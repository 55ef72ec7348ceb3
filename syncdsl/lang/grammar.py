"""The `.sync` grammar (`grammar/sync.lark`), loaded once per process by `parser()`."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark

#: Block types the language knows; syntax messages use them to guess what was meant.
BLOCK_TYPES = ("destination", "source", "audience", "property", "map")

_REPO_GRAMMAR = Path(__file__).resolve().parents[2] / "grammar" / "sync.lark"


def _grammar_text() -> str:
    # Wheels carry the grammar inside the package (hatch force-include); editable installs and
    # source checkouts read it from the repository's grammar/ directory.
    packaged = resources.files("syncdsl") / "grammar" / "sync.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return _REPO_GRAMMAR.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    """The .sync parser, built once per process."""
    return Lark(_grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=False)
