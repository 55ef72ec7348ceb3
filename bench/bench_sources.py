"""Benchmark: profiles -> desired contacts (reference mapping) from each export form: one plain
NDJSON file, the same profiles as gzip part files (Experience Platform's layout), as Parquet, and
with the email read from `identityMap.Email` instead of `personalEmail.address`; and, side by
side in the same run, a bare DuckDB scan of the same plain file. Prints records/s, wall times,
the gzip ÷ plain ratio (target <= 1.3) and peak RSS."""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import duckdb_scan
from generate_profiles import SEGMENT

from syncdsl.lang import ir
from syncdsl.records.desired import build_desired

TARGET_RATE = 150_000
TARGET_RSS_MB = 1024
#: An upload row for every 5th profile: 200k rows beside 1M profiles, as issue 15's target.
UPLOAD_EVERY = 5


def _span() -> ir.Span:
    return ir.Span("bench.sync", 1, 1, 1, 1)


def _location(written: str, path: Path) -> ir.DataLocation:
    return ir.DataLocation(written, str(path.resolve()), (path.resolve().parent,))


def reference_spec(
    data_dir: Path,
    profiles_at: str = "profiles.jsonl",
    fmt: str = "jsonl",
    identity: str = "personalEmail.address",
) -> ir.Spec:
    """The example spec's sources and audiences (3 field paths + 1 template + 1 segment status),
    the profiles read from `profiles_at` (a file or folder under `data_dir`) as `fmt`."""

    def path(text: str) -> ir.FieldPath:
        return ir.FieldPath(tuple(text.split(".")), _span())

    def mapping(prop: str, expr: ir.Expr) -> ir.PropertyMapping:
        return ir.PropertyMapping(prop, expr, _span())

    profiles = ir.Source(
        "profiles",
        fmt,  # type: ignore[arg-type]
        f"data/{profiles_at}",
        (_location(f"data/{profiles_at}", data_dir / profiles_at),),
        path(identity),
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
        (_location("data/vip_upload.csv", data_dir / "vip_upload.csv"),),
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


def _build(spec: ir.Spec) -> tuple[float, float, int, int]:
    """(wall s, cpu s, desired contacts, rejected) of reading, mapping and merging `spec`."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    with build_desired(spec) as desired:
        contacts, rejected = len(desired), len(desired.rejected)
    return time.perf_counter() - wall_start, time.process_time() - cpu_start, contacts, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 profiles: a smoke test")
    parser.add_argument("--size", type=int, default=1_000_000, help="number of profiles")
    parser.add_argument("--parts", type=int, default=8, help="gzip part files of the same data")
    args = parser.parse_args()
    size = 20_000 if args.quick else args.size
    with tempfile.TemporaryDirectory(prefix="syncdsl-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        # In a process of its own: the peak RSS below is syncdsl's, not the generator's.
        generate = [sys.executable, str(Path(__file__).parent / "generate_profiles.py")]
        generate += [str(size), str(data_dir), "--gzip-parts", str(args.parts), "--parquet"]
        generate += ["--identity-map", "--upload-every", str(UPLOAD_EVERY)]
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
        records = size + -(-size // UPLOAD_EVERY)
        forms = {
            "plain": reference_spec(data_dir),
            "gzip_parts": reference_spec(data_dir, "export/"),
            "parquet": reference_spec(data_dir, "profiles.parquet", "parquet"),
            "identity_map": reference_spec(
                data_dir, "identity_map/profiles.jsonl", identity="identityMap.Email"
            ),
        }
        results = {name: _build(spec) for name, spec in forms.items()}
        scan = duckdb_scan(data_dir)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        contacts = {result[2] for result in results.values()}
        print(f"  records            {records:>12,}  profiles + upload rows")
        print(
            f"  desired_contacts   {'/'.join(f'{c:,}' for c in sorted(contacts)):>12}  (the same for every form)"
        )
        for name, (wall, cpu, _, rejected) in results.items():
            print(
                f"  {name + '_wall_s':<21}{wall:>10.2f}  {records / wall:,.0f} records/s wall, "
                f"cpu {cpu:.2f} s, {rejected:,} rejected"
            )
        plain = results["plain"][0]
        print(f"  gzip_vs_plain      {results['gzip_parts'][0] / plain:>12.2f}  (target <= 1.3)")
        print(f"  parquet_vs_plain   {results['parquet'][0] / plain:>12.2f}")
        print(f"  identity_map_vs_plain {results['identity_map'][0] / plain:>9.2f}")
        print(f"  duckdb_scan_s      {scan:>12.2f}  bare scan of the same plain files")
        print(f"  ours_vs_duckdb     {plain / scan:>12.2f}  (target <= 3)")
        print(f"  target_rate        {TARGET_RATE:>12,}  profiles/s")
        print(f"  peak_rss_mb        {peak_mb:>12.1f}  (target <= {TARGET_RSS_MB} MB)")


if __name__ == "__main__":
    main()
