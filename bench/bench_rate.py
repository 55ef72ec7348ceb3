"""Benchmark: a large apply against a rate-limited HubSpot: wall time ÷ ideal, and 429s seen."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common import (
    CONTACT_WRITES,
    TOKEN,
    RemoteEmulator,
    Runner,
    desired_end_state,
    end_state_mismatches,
    figure,
    heading,
    statuses,
    total,
    write_workspace,
)

from syncdsl.hubspot.ratelimit import RateBudget

PROFILES_PER_BATCH = 101  # ~1% of generated lines are duplicates or rejects


@dataclass(frozen=True)
class Variant:
    """How the client's budget is declared against the emulator's real limit."""

    name: str
    describe: str
    budget: Callable[[], RateBudget]


class BlindBudget(RateBudget):
    """A budget that ignores HubSpot's rate-limit headers: a wrong declaration is never corrected,
    so only the 429 handling keeps the apply correct."""

    def observe(self, headers: Mapping[str, str], *, absorb_remaining: bool = True) -> None:
        pass


def variants(limit: int, window: float) -> list[Variant]:
    return [
        Variant(
            "matched",
            f"RateBudget(limit={limit}, window_seconds={window})",
            lambda: RateBudget(limit=limit, window_seconds=window),
        ),
        Variant(
            "tier",
            "RateBudget.for_tier('professional'): 190/10 s, corrected by headers",
            lambda: RateBudget.for_tier("professional"),
        ),
        Variant(
            "too_high",
            f"RateBudget(limit={limit * 2}, window_seconds={window}): twice "
            "the real limit, corrected by headers",
            lambda: RateBudget(limit=limit * 2, window_seconds=window),
        ),
        Variant(
            "too_high_blind",
            f"BlindBudget(limit={limit * 2}, window_seconds={window}): "
            "twice the real limit, headers ignored, so 429s decide",
            lambda: BlindBudget(limit=limit * 2, window_seconds=window),
        ),
    ]


def earliest_finish(
    stamps: list[float], start: float, calls: int, limit: int, window: float
) -> float:
    """When the last of `calls` sends can be admitted at the earliest, given the sends already in
    the rolling window at `start` (greedy: each send as soon as the window allows)."""
    admitted = sorted(s for s in stamps if s > start - window)
    at = start
    for _ in range(calls):
        recent = admitted[-limit:] if len(admitted) >= limit else []
        at = max(at, recent[0] + window) if recent else at
        admitted.append(at)
    return at - start


def run_variant(
    variant: Variant, batches: int, *, limit: int, window: float, latency: float, parallelism: int
) -> int:
    """Run one large apply; print its figures; return 1 if the end state is wrong."""
    size = batches * PROFILES_PER_BATCH
    with (
        tempfile.TemporaryDirectory(prefix="syncdsl-bench-rate-") as tmp,
        RemoteEmulator(
            token=TOKEN,
            tier="professional",
            window_seconds=window,
            window_limit=limit,
            latency=latency,
            seed=11,
        ) as emulator,
    ):
        root = write_workspace(Path(tmp), size)
        runner = Runner(root, emulator, budget=variant.budget, parallelism=parallelism)
        window_at_apply: list[float] = []
        phase = runner.run(before_apply=lambda: window_at_apply.extend(emulator.window_stamps()))
        apply_start = phase.apply_started
        # A request refused with 429 uses no budget: the ideal counts the admitted ones.
        refused = phase.apply_statuses.get(429, 0)
        calls = sum(phase.apply_ops.values()) - refused
        rate = limit / window
        ideal = calls / rate
        tightest = earliest_finish(window_at_apply, apply_start, calls, limit, window) + latency
        plan_calls = sum(phase.plan_ops.values())
        too_many = statuses(emulator).get(429, 0)
        wrong = end_state_mismatches(emulator, desired_end_state(root))
        name = variant.name
        heading(f"{name}: {variant.describe}")
        figure(
            f"{name}.apply_calls",
            calls,
            f"admitted; sent {total(phase.apply_ops, CONTACT_WRITES)} contact upserts "
            f"({refused} refused with 429) and the schema writes",
        )
        figure(
            f"{name}.apply_seconds",
            f"{phase.apply_seconds:.2f}",
            f"ideal calls/rate {ideal:.2f} s; tightest from the window at start {tightest:.2f} s",
        )
        figure(
            f"{name}.ratio_ideal",
            f"{phase.apply_seconds / ideal:.3f}",
            "apply wall time / (calls / allowed rate), target <= 1.03",
        )
        figure(
            f"{name}.ratio_tightest",
            f"{phase.apply_seconds / tightest:.3f}",
            "apply wall time / earliest possible finish",
        )
        figure(
            f"{name}.plan_ratio",
            f"{phase.plan_seconds / (plan_calls / rate):.3f}",
            f"plan: {plan_calls} reads in {phase.plan_seconds:.2f} s",
        )
        figure(f"{name}.responses_429", too_many, "plan + apply")
        figure(f"{name}.retries", runner.client.stats.retries if runner.client else 0)
        figure(f"{name}.wrong_contacts", wrong, f"of {phase.plan.unchanged + phase.changed:,}")
        return int(wrong != 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200, help="upsert batches (default 200)")
    parser.add_argument("--limit", type=int, default=19, help="requests per window (19)")
    parser.add_argument("--window", type=float, default=1.0, help="window seconds (1.0)")
    parser.add_argument("--latency", type=float, default=0.02, help="emulator latency, s")
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument(
        "--variant", action="append", help="matched, tier, too_high, too_high_blind (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="20 batches, matched + too_high_blind")
    args = parser.parse_args()
    batches = 20 if args.quick else args.batches
    chosen = args.variant or (["matched", "too_high_blind"] if args.quick else None)
    print(
        f"bench_rate: {batches} batches against {args.limit} requests per {args.window:g} s, "
        f"latency {args.latency * 1000:.0f} ms, parallelism {args.parallelism}"
    )
    started = time.perf_counter()
    wrong = 0
    for variant in variants(args.limit, args.window):
        if chosen is None or variant.name in chosen:
            wrong += run_variant(
                variant,
                batches,
                limit=args.limit,
                window=args.window,
                latency=args.latency,
                parallelism=args.parallelism,
            )
    heading("summary")
    figure("rate.wrong_end_states", wrong, "variants that did not reach the desired state")
    print(f"\nbench_rate finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
