"""syncdsl: declarative activation of CDP audiences into HubSpot."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncdsl.lang.ir import Spec

try:
    __version__ = version("syncdsl")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"


def load(path: str | Path) -> Spec:
    """Parse and validate a `.sync` file or a directory of them; raise SpecError on any problem."""
    from syncdsl.lang.load import load_spec

    return load_spec([Path(path)])


__all__ = ["__version__", "load"]
