"""A bounded spec fuzz (hypothesis): mutated .sync text never makes parse, validate or fmt crash."""

from __future__ import annotations

import random
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncdsl.errors import SyncdslError
from syncdsl.lang.fmt import format_text
from syncdsl.lang.load import load_spec
from tests.fuzz.fuzz_specs import SEEDS, mutate

_POSITION = re.compile(r":\d+:\d+: error: ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(SEEDS) - 1))
def test_mutated_specs_end_in_spec_errors(seed: int, which: int, tmp_path_factory: object) -> None:
    data = mutate(random.Random(seed), SEEDS[which].read_bytes())
    root = Path(str(tmp_path_factory.mktemp("fuzz")))  # type: ignore[attr-defined]
    spec = root / "case.sync"
    spec.write_bytes(data)
    try:
        load_spec([spec])
    except SyncdslError as error:
        text = str(error)
        assert _POSITION.search(text) or "no destination" in text or "no source" in text, text
    try:
        format_text(data.decode("utf-8"), str(spec))
    except UnicodeDecodeError:
        pass
    except SyncdslError as error:
        assert _POSITION.search(str(error)), str(error)
