"""Spec fuzzing campaign: mutated .sync files through `validate`, `fmt` and `plan --local`.

    python tests/fuzz/fuzz_specs.py --cases 10000 [--seed 1] [--subprocess-every 200]

In process (the CLI through typer's runner) for speed; every Nth case also as a real subprocess.
Counts internal errors (exit 3), hangs (over 10 s) and errors without `file:line:col`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
SEEDS = [REPO / "specs" / "example.sync", REPO / "tests/fixtures/specs/valid/full.sync"]
HANG_SECONDS = 10.0
_POSITION = re.compile(r"^\S.*?:\d+:\d+: error: ", re.M)
# Whole-configuration problems have no place in a file.
_UNPOSITIONED = ("no .sync files", "cannot read the file", "no destination", "no source")


class Hang(BaseException):
    """Raised by the alarm when one command runs past HANG_SECONDS."""


def _mutations(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(12)
    lines = data.split(b"\n")
    at = rng.randrange(len(data) + 1)
    if kind == 0 and data:  # byte flips
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if kind == 1:
        return data[:at]
    if kind == 2:
        del lines[rng.randrange(len(lines))]
        return b"\n".join(lines)
    if kind == 3:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return b"\n".join(lines)
    if kind == 4:
        depth = rng.choice([10, 60, 1000, 5000])
        opener = rng.choice([b"x {\n", b"a = [", b"map {\n"])
        return data[:at] + opener * depth + data[at:]
    if kind == 5:
        size = rng.choice([1000, 70_000, 1_000_000])
        return data.replace(b'"professional"', b'"' + b"y" * size + b'"', 1) or data
    if kind == 6:
        return data[:at] + b"\x00" + data[at:]
    if kind == 7:
        return data[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]) + data[at:]
    if kind == 8:
        return data.replace(b"\n", b"\r\n")
    if kind == 9:
        return b"\xef\xbb\xbf" + data
    if kind == 10:  # many audiences / mappings
        n = rng.choice([50, 50, 50, 2100])
        extra = "".join(
            f'\naudience "F{i}" {{\n  source = profiles\n  segment = "f{i}"\n}}\n' for i in range(n)
        )
        return data + extra.encode()
    token = rng.choice([b"{", b"}", b"=", b'"', b"`", b"[", b"]", b"(", b")", b".", b",", b"#"])
    return data[:at] + token + data[at:]


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = _mutations(rng, data)
    return data


@dataclass
class Tally:
    runs: int = 0
    internal: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    unpositioned: list[str] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0

    def check(self, label: str, code: int, output: str, seconds: float) -> None:
        self.runs += 1
        self.codes[f"{label.split()[0]}:{code}"] += 1
        self.slowest = max(self.slowest, seconds)
        if code == 3 or "internal error" in output:
            self.internal.append(f"{label}: {output[-300:]}")
        if seconds > HANG_SECONDS:
            self.hangs.append(f"{label}: {seconds:.1f} s")
        if label.startswith("fmt") and "would be reformatted" in output:
            return  # fmt --check's "needs formatting" answer, not an error
        positioned = _POSITION.search(output) or "Error: " in output
        if code == 1 and not positioned and not any(w in output for w in _UNPOSITIONED):
            self.unpositioned.append(f"{label}: {output[:200]}")


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def _in_process(args: list[str]) -> tuple[int, str, float]:
    from syncdsl.cli import app

    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS + 5)
    try:
        result = CliRunner().invoke(app, args, env={"HUBSPOT_TOKEN": "pat-fuzz"})
        code, output = result.exit_code, result.output
    except Hang:
        code, output = -1, "hang"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return code, output, time.monotonic() - start


def _subprocess(args: list[str]) -> tuple[int, str, float]:
    start = time.monotonic()
    env = {**os.environ, "HUBSPOT_TOKEN": "pat-fuzz"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "syncdsl", *args],
            capture_output=True,
            text=True,
            timeout=HANG_SECONDS + 20,
            env=env,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, output = -1, "hang"
    return code, output, time.monotonic() - start


def run_case(root: Path, data: bytes, tally: Tally, case: int, *, real: bool = False) -> None:
    """Write the mutated spec and run validate, fmt --check, then plan --local when valid."""
    spec = root / "case.sync"
    spec.write_bytes(data)
    shutil.rmtree(root / ".syncdsl", ignore_errors=True)
    runner = _subprocess if real else _in_process
    where = "subprocess" if real else "in-process"
    code, output, seconds = runner(["validate", str(root)])
    tally.check(f"validate case {case} ({where})", code, output, seconds)
    code_fmt, output, seconds = runner(["fmt", "--check", str(root)])
    tally.check(f"fmt case {case} ({where})", code_fmt, output, seconds)
    if code == 0:
        code, output, seconds = runner(["plan", str(root), "--local"])
        tally.check(f"plan case {case} ({where})", code, output, seconds)


def campaign(cases: int, seed: int, subprocess_every: int) -> Tally:
    rng = random.Random(seed)
    seeds = [path.read_bytes() for path in SEEDS]
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="syncdsl-fuzz-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "specs" / "data", root / "data", dirs_exist_ok=True)
        shutil.copytree(REPO / "tests/fixtures/specs/valid/data", root / "data", dirs_exist_ok=True)
        for case in range(cases):
            data = mutate(rng, rng.choice(seeds))
            real = subprocess_every > 0 and case % subprocess_every == 0
            run_case(root, data, tally, case, real=real)
            if (case + 1) % 1000 == 0:
                print(
                    f"progress: {case + 1} cases, {tally.runs} runs, internal errors "
                    f"{len(tally.internal)}, hangs {len(tally.hangs)}, unpositioned "
                    f"{len(tally.unpositioned)}, slowest {tally.slowest:.2f} s",
                    flush=True,
                )
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subprocess-every", type=int, default=200)
    options = parser.parse_args()
    started = time.monotonic()
    tally = campaign(options.cases, options.seed, options.subprocess_every)
    print(f"cases: {options.cases}, runs: {tally.runs}, {time.monotonic() - started:.0f} s")
    print(f"exit codes: {dict(sorted(tally.codes.items()))}")
    print(f"internal errors (exit 3): {len(tally.internal)}")
    print(
        f"hangs over {HANG_SECONDS:.0f} s: {len(tally.hangs)} (slowest run {tally.slowest:.2f} s)"
    )
    print(f"errors without file:line:col: {len(tally.unpositioned)}")
    for problem in [*tally.internal[:10], *tally.hangs[:10], *tally.unpositioned[:10]]:
        print("  " + problem.replace("\n", "\n    "))
    return 1 if tally.internal or tally.hangs or tally.unpositioned else 0


if __name__ == "__main__":
    sys.exit(main())
