"""Benchmark: profiles -> desired contacts (reference mapping); prints profiles/s and peak RSS."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_profiles import SEGMENT, write_profiles

from syncdsl.lang import ir
from syncdsl.records.desired import build_desired

TARGET_RATE = 50_000
TARGET_RSS_MB = 500


def _span() -> ir.Span:
    return ir.Span("bench.sync", 1, 1, 1, 1)


def reference_spec(data_dir: Path) -> ir.Spec:
    """The example spec's sources and audiences (3 field paths + 1 template + 1 segment status)."""

    def path(text: str) -> ir.FieldPath:
        return ir.FieldPath(tuple(text.split(".")), _span())

    def mapping(prop: str, expr: ir.Expr) -> ir.PropertyMapping:
        return ir.PropertyMapping(prop, expr, _span())

    profiles = ir.Source(
        "profiles",
        "jsonl",
        "data/profiles.jsonl",
        data_dir / "profiles.jsonl",
        path("personalEmail.address"),
        (
            mapping("firstname", path("person.name.firstName")),
            mapping("lastname", path("person.name.lastName")),
            mapping("phone", path("mobilePhone.number")),
            mapping("city", ir.Template("{{ homeAddress.city | title }}", _span())),
        ),
        _span(),
    )
    upload = ir.Source(
        "vip_upload",
        "csv",
        "data/vip_upload.csv",
        data_dir / "vip_upload.csv",
        ir.FieldPath(("Email",), _span()),
        (mapping("company", ir.FieldPath(("Company",), _span())),),
        _span(),
    )
    audiences = (
        ir.Audience(
            "Newsletter Subscribers",
            "profiles",
            SEGMENT,
            "newsletter_subscribers",
            False,
            ir.DEFAULT_MASS_EXIT_THRESHOLD,
            _span(),
        ),
        ir.Audience(
            "VIP Customers",
            "vip_upload",
            None,
            "vip_customers",
            False,
            ir.DEFAULT_MASS_EXIT_THRESHOLD,
            _span(),
        ),
    )
    destination = ir.Destination(
        "HUBSPOT_TOKEN", "professional", ir.DEFAULT_BASE_URL, ir.DEFAULT_PROPERTY_GROUP, _span()
    )
    return ir.Spec(destination, (profiles, upload), audiences, (), (), data_dir.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 profiles: a smoke test")
    parser.add_argument("--size", type=int, default=1_000_000, help="number of profiles")
    args = parser.parse_args()
    size = 20_000 if args.quick else args.size
    with tempfile.TemporaryDirectory(prefix="syncdsl-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        write_profiles(size, data_dir)
        records = size + (size + 9) // 10
        spec = reference_spec(data_dir)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        with build_desired(spec) as desired:
            contacts = len(desired)
            built_cpu = time.process_time() - cpu_start
            built_wall = time.perf_counter() - wall_start
            iterated = sum(1 for _ in desired)
        cpu = time.process_time() - cpu_start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rate = records / built_cpu
        print(f"records            {records:>12,}")
        print(f"desired contacts   {contacts:>12,} (iterated {iterated:,})")
        print(f"rejected           {len(desired.rejected):>12,}")
        print(f"build wall time    {built_wall:>12.2f} s")
        print(f"build cpu time     {built_cpu:>12.2f} s (with one full iteration: {cpu:.2f} s)")
        print(f"profiles/s/core    {rate:>12,.0f} (target >= {TARGET_RATE:,})")
        print(f"peak RSS           {peak_mb:>12.1f} MB (target <= {TARGET_RSS_MB} MB)")


if __name__ == "__main__":
    main()
