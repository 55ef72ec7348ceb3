"""Write realistic source files for benchmarks: N XDM profiles (jsonl) and a VIP upload (csv)."""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import random
from pathlib import Path

SEGMENT = "3f2a9c4e-6b1d-4e8a-9f0c-1a2b3c4d5e6f"
OTHER_SEGMENT = "9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
FIRST = ["ann", "Bob", "Chloé", "dmitri", "Eve", "Fatima", "Gunnar", "Hana", "Iñigo", "Jun"]
LAST = ["Lee", "Müller", "O'Brien", "Nakamura", "Silva", "Kowalski", "Dubois", "Ivanova"]
CITIES = ["new york", "SAN FRANCISCO", "paris", "são paulo", "tokyo", "berlin", None]
STATUSES = ["realized", "realized", "realized", "existing", "exited"]


def profile(index: int, rng: random.Random) -> dict[str, object]:
    """One XDM profile as Experience Platform exports it (the fields the reference spec maps)."""
    email = (
        f"  User.{index}@Example{index % 97}.com "
        if index % 10 == 0
        else f"user.{index}@example{index % 97}.com"
    )
    city = rng.choice(CITIES)
    segments: dict[str, dict[str, object]] = {
        SEGMENT: {"status": rng.choice(STATUSES), "lastQualificationTime": "2024-01-05T10:00:00Z"}
    }
    if index % 3 == 0:
        segments[OTHER_SEGMENT] = {"status": "realized"}
    record: dict[str, object] = {
        "_id": f"{index:024x}",
        "personalEmail": {"address": email},
        "person": {"name": {"firstName": rng.choice(FIRST), "lastName": rng.choice(LAST)}},
        "mobilePhone": {"number": f"+1 555 {index % 10_000:04d}"},
        "homeAddress": {"city": city, "countryCode": "US", "postalCode": f"{index % 99_999:05d}"},
        "identityMap": {"ECID": [{"id": f"{rng.getrandbits(96):029d}", "primary": True}]},
        "segmentMembership": {"ups": segments},
    }
    if index % 500 == 0:
        record["personalEmail"] = {"address": f"broken.{index}@"}  # invalid identity: a reject
    return record


def write_profiles(
    count: int, out_dir: Path, *, seed: int = 7, upload_every: int = 10
) -> tuple[Path, Path]:
    """Write `profiles.jsonl` (count lines, ~1% duplicates) and `vip_upload.csv` (a row for
    every `upload_every`-th profile: count/10 rows by default)."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "profiles.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        for index in range(count):
            # every 100th line repeats an earlier profile's email: a within-source duplicate
            source_index = index - 50 if index % 100 == 99 else index
            out.write(json.dumps(profile(source_index, rng), ensure_ascii=False) + "\n")
    upload = out_dir / "vip_upload.csv"
    with upload.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "Company", "First Name"])
        for index in range(0, count, upload_every):
            company = (
                f'Acme "{index % 50}", Inc.\nEMEA' if index % 1000 == 0 else f"Acme {index % 50}"
            )
            writer.writerow([f"user.{index}@example{index % 97}.com", company, rng.choice(FIRST)])
    return jsonl, upload


def write_gzip_parts(jsonl: Path, folder: Path, parts: int) -> Path:
    """Experience Platform's layout of the same profiles: `folder/exportTime=…/part-0000N-tid-…-
    c000.json.gz`, `parts` gzip files of consecutive lines, with Spark's `_SUCCESS` and `.crc`
    files beside them. Returns the export folder."""
    export = folder / "exportTime=202612010000"
    export.mkdir(parents=True, exist_ok=True)
    with jsonl.open("rb") as handle:
        count = sum(1 for _ in handle)
    size = -(-count // parts)
    with jsonl.open("rb") as handle:
        for part in range(parts):
            name = f"part-{part:05d}-tid-4711-c000.json.gz"
            with gzip.open(export / name, "wb", compresslevel=6) as out:
                out.writelines(itertools.islice(handle, size))
            (export / f".{name}.crc").write_bytes(b"crc")
    (export / "_SUCCESS").write_bytes(b"")
    return folder


def write_identity_map(jsonl: Path, path: Path) -> Path:
    """The same profiles with each email also under `identityMap.Email` (one entry, not primary,
    beside the ECID), for a spec whose identity is `identityMap.Email`."""
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("rb") as lines, path.open("wb") as out:
        for line in lines:
            record = orjson.loads(line)
            record["identityMap"]["Email"] = [{"id": record["personalEmail"]["address"]}]
            out.write(orjson.dumps(record) + b"\n")
    return path


def write_parquet(jsonl: Path, path: Path) -> Path:
    """The same profiles as one Parquet file (nested structs), written by DuckDB."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(
        f"COPY (SELECT * FROM read_json_auto('{jsonl}', format = 'newline_delimited')) "
        f"TO '{path}' (FORMAT parquet, COMPRESSION snappy)"
    )
    connection.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("count", type=int, help="number of profiles")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--gzip-parts", type=int, default=0, help="also write them as N gzip part files (export/)"
    )
    parser.add_argument("--parquet", action="store_true", help="also write profiles.parquet")
    parser.add_argument(
        "--identity-map",
        action="store_true",
        help="also write identity_map/profiles.jsonl (the email under identityMap.Email too)",
    )
    parser.add_argument("--upload-every", type=int, default=10, help="an upload row per N profiles")
    args = parser.parse_args()
    jsonl, upload = write_profiles(args.count, args.out_dir, upload_every=args.upload_every)
    print(f"wrote {jsonl} and {upload}")
    if args.gzip_parts:
        folder = write_gzip_parts(jsonl, args.out_dir / "export", args.gzip_parts)
        print(f"wrote {args.gzip_parts} gzip part files under {folder}")
    if args.parquet:
        print(f"wrote {write_parquet(jsonl, args.out_dir / 'profiles.parquet')}")
    if args.identity_map:
        identity_map = args.out_dir / "identity_map" / "profiles.jsonl"
        print(f"wrote {write_identity_map(jsonl, identity_map)}")


if __name__ == "__main__":
    main()
