"""Experience Platform's real export forms, through the CLI as a user runs it: compressed NDJSON
(gzip, bzip2, zstd), Spark part folders with `_SUCCESS` and `.crc` files, globs, lists, Parquet
with nested XDM, semicolon and tab CSV, other encodings, truncated files, files that change
between plan and apply."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
import zstandard

TOKEN = "pat-na1-test-0000-secret-forms"
SYNCDSL = [sys.executable, "-m", "syncdsl"]
SEGMENT = "seg-1"


def spec(
    data: str, *, fmt: str = "jsonl", identity: str = "identityMap.Email", extra: str = ""
) -> str:
    return f"""\
destination hubspot {{
  token = env("HUBSPOT_TOKEN")
}}

source profiles {{
  {fmt} = {data}
  identity email = {identity}
{extra}  map {{
    firstname = person.name.firstName
  }}
}}

audience "Newsletter" {{
  source  = profiles
  segment = "{SEGMENT}"
}}
"""


def csv_spec(data: str, extra: str = "") -> str:
    return f"""\
destination hubspot {{
  token = env("HUBSPOT_TOKEN")
}}

source vip {{
  csv = {data}
  identity email = Email
{extra}  map {{
    company = Company
  }}
}}

audience "VIP" {{
  source = vip
}}
"""


def profile(i: int, status: str = "realized") -> dict[str, Any]:
    return {
        "identityMap": {"Email": [{"id": f"P{i:04d}@Example.com", "primary": True}]},
        "person": {"name": {"firstName": f"First{i}"}},
        "segmentMembership": {"ups": {SEGMENT: {"status": status}}},
    }


def ndjson(people: Sequence[int]) -> bytes:
    return "".join(json.dumps(profile(i)) + "\n" for i in people).encode()


def run(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCDSL, *args],
        cwd=root,
        env={**os.environ, "HUBSPOT_TOKEN": TOKEN, **(env or {})},
        text=True,
        capture_output=True,
        timeout=300,
    )


def plan_json(root: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run(root, "plan", ".", "--local", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def created(plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        c["email"]: {v["property"]: v["after"] for v in c["changes"]}
        for c in plan["contact_changes"]
        if c["action"] == "create"
    }


def test_plain_gzip_bzip2_zstd_and_xz_exports_plan_the_same_contacts(tmp_path: Path) -> None:
    data = ndjson(range(30))
    forms = {
        "plain.jsonl": data,
        "gzip.json.gz": gzip.compress(data),
        "bzip2.json.bz2": bz2.compress(data),
        "zstd.json.zst": zstandard.ZstdCompressor().compress(data),
        # The suffix says nothing: a `.json` that holds gzip (two members, as `cat` makes) reads.
        "members.json": gzip.compress(data[:900]) + gzip.compress(data[900:]),
    }
    plans = {}
    for name, content in forms.items():
        root = tmp_path / name.replace(".", "_")
        root.mkdir()
        (root / name).write_bytes(content)
        (root / "main.sync").write_text(spec(f'"{name}"'))
        plans[name] = plan_json(root)
    expected = created(plans["plain.jsonl"])
    assert len(expected) == 30 and expected["p0007@example.com"]["firstname"] == "First7"
    for name, plan in plans.items():
        assert created(plan) == expected, name
        assert plan["inputs"][0]["records"] == 30
    assert plans["gzip.json.gz"]["inputs"][0]["reading"] == "gzip"
    assert plans["zstd.json.zst"]["inputs"][0]["reading"] == "zstd"
    assert "reading" not in plans["plain.jsonl"]["inputs"][0]


def spark_folder(root: Path) -> Path:
    """<datasetId>/exportTime=…/part-…json.gz, with Spark's markers and checksums beside them."""
    folder = root / "exports" / "ds-1"
    early = folder / "exportTime=202611300000"
    late = folder / "exportTime=202612010000"
    early.mkdir(parents=True)
    late.mkdir(parents=True)
    (early / "part-00001-tid-7-c000.json.gz").write_bytes(gzip.compress(ndjson(range(10, 20))))
    (early / "part-00000-tid-7-c000.json.gz").write_bytes(gzip.compress(ndjson(range(10))))
    (late / "part-00000-tid-8-c000.json.gz").write_bytes(
        gzip.compress(ndjson(range(20, 25)) + b"{not json\n")
    )
    (early / "_SUCCESS").write_bytes(b"")
    (late / "_SUCCESS").write_bytes(b"")
    (early / ".part-00000-tid-7-c000.json.gz.crc").write_bytes(b"\x00crc")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "part-00009.json.gz").write_bytes(b"half written")
    return folder


def test_a_spark_part_folder_is_read_in_path_order_without_markers_and_checksums(
    tmp_path: Path,
) -> None:
    spark_folder(tmp_path)
    (tmp_path / "main.sync").write_text(spec('"exports/ds-1/"'))
    plan = plan_json(tmp_path)
    inputs = plan["inputs"][0]
    assert inputs["reading"] == "3 files, gzip"
    assert (inputs["records"], inputs["contributed"], inputs["rejected"]) == (26, 25, 1)
    assert len(created(plan)) == 25
    (rejected,) = plan["rejected"]
    assert rejected["file"] == "exports/ds-1/exportTime=202612010000/part-00000-tid-8-c000.json.gz"
    assert rejected["line"] == 6
    # Path order: part-00000 before part-00001, whatever order the files were written in.
    origins = [
        c["provenance"][0] for c in plan["contact_changes"] if c["email"] == "p0012@example.com"
    ]
    assert origins == ["exports/ds-1/exportTime=202611300000/part-00001-tid-7-c000.json.gz:3"]


def test_a_glob_and_a_list_name_the_part_files(tmp_path: Path) -> None:
    spark_folder(tmp_path)
    (tmp_path / "main.sync").write_text(spec('"exports/*/exportTime=2026113*/part-*.json.gz"'))
    assert plan_json(tmp_path)["inputs"][0]["records"] == 20
    listed = (
        '["exports/ds-1/exportTime=202612010000/", '
        '"exports/ds-1/exportTime=202611300000/part-00000-tid-7-c000.json.gz", '
        '"exports/ds-1/exportTime=202612010000/part-00000-tid-8-c000.json.gz"]'
    )
    (tmp_path / "main.sync").write_text(spec(listed))
    plan = plan_json(tmp_path)
    assert plan["inputs"][0]["records"] == 16  # the file named twice is read once
    assert plan["inputs"][0]["reading"] == "2 files, gzip"


def test_validate_names_globs_and_folders_that_hold_no_data(tmp_path: Path) -> None:
    spark_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_bytes(b"")
    cases = {
        '"exports/*/nothing-*.json.gz"': "`exports/*/nothing-*.json.gz` matches no data files",
        '"empty/"': "folder `empty/` holds no data files",
        '"missing/*.json"': "folder `missing` does not exist",
        '"ftp://host/x.json"': "`ftp://` is not a storage syncdsl reads",
        "[]": "`jsonl` needs at least one path",
    }
    for value, message in cases.items():
        (tmp_path / "main.sync").write_text(spec(value))
        result = run(tmp_path, "validate", ".")
        assert result.returncode == 1, value
        assert message in result.stderr, result.stderr
        assert "main.sync:6:" in result.stderr


def test_a_truncated_gzip_part_is_a_rejection_naming_the_file_not_a_silent_loss(
    tmp_path: Path,
) -> None:
    data = gzip.compress(ndjson(range(2000)))
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "part-00000.json.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "exports" / "part-00001.json.gz").write_bytes(
        gzip.compress(ndjson(range(5000, 5010)))
    )
    (tmp_path / "main.sync").write_text(spec('"exports/"'))
    plan = plan_json(tmp_path)
    inputs = plan["inputs"][0]
    assert inputs["records"] == inputs["contributed"] + inputs["merged"] + inputs["rejected"]
    assert 10 < inputs["contributed"] < 2010 and inputs["rejected"] == 1
    (rejected,) = plan["rejected"]
    assert rejected["file"] == "exports/part-00000.json.gz"
    assert rejected["line"] == inputs["contributed"] - 10 + 1
    assert "truncated" in rejected["reason"]
    assert "p5009@example.com" in created(plan)  # the next file is still read


def test_a_corrupt_gzip_member_is_a_rejection_too(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(ndjson(range(50))))
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "p.json.gz").write_bytes(bytes(data))
    (tmp_path / "main.sync").write_text(spec('"p.json.gz"'))
    plan = plan_json(tmp_path)
    (rejected,) = plan["rejected"]
    assert rejected["file"] == "p.json.gz" and "gzip data" in rejected["reason"]


def write_parquet(path: Path, rows: int, *, codec: str = "snappy") -> None:
    """Experience Platform's Parquet shape: identityMap a map of lists of structs,
    segmentMembership.ups a map of structs, person a nested struct."""
    connection = duckdb.connect()
    connection.execute(
        f"""
        COPY (
          SELECT
            MAP {{'Email': [{{'id': 'P' || lpad(i::VARCHAR, 4, '0') || '@Example.com',
                             'primary': true}}],
                 'ECID': [{{'id': '9' || i::VARCHAR, 'primary': false}}]}} AS identityMap,
            {{'name': {{'firstName': 'First' || i::VARCHAR}}}} AS person,
            {{'ups': MAP {{'{SEGMENT}': {{'status': CASE WHEN i % 5 = 4 THEN 'exited'
                                                    ELSE 'realized' END,
                                          'lastQualificationTime':
                                            TIMESTAMPTZ '2026-11-30 10:00:00+00'}}}}}}
              AS segmentMembership
          FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet, COMPRESSION {codec})
        """
    )
    connection.close()


@pytest.mark.parametrize("codec", ["snappy", "gzip", "zstd", "lz4"])
def test_nested_parquet_maps_with_the_same_field_paths_as_json(tmp_path: Path, codec: str) -> None:
    (tmp_path / "exports").mkdir()
    write_parquet(tmp_path / "exports" / "part-00000.gz.parquet", 10, codec=codec)
    (tmp_path / "exports" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "p.jsonl").write_text(
        "".join(
            json.dumps({**profile(i, "exited" if i % 5 == 4 else "realized")}) + "\n"
            for i in range(10)
        )
    )
    (tmp_path / "main.sync").write_text(spec('"exports/"', fmt="parquet"))
    from_parquet = plan_json(tmp_path)
    (tmp_path / "main.sync").write_text(spec('"p.jsonl"'))
    from_json = plan_json(tmp_path)
    assert created(from_parquet) == created(from_json)
    assert len(created(from_parquet)) == 8  # the exited never-members are not sent
    assert created(from_parquet)["p0003@example.com"] == {
        "firstname": "First3",
        "newsletter": "realized",
    }


def test_list_indexes_in_field_paths(tmp_path: Path) -> None:
    write_parquet(tmp_path / "p.parquet", 3)
    (tmp_path / "main.sync").write_text(
        spec('"p.parquet"', fmt="parquet", identity="identityMap.email[0].id")
    )
    assert sorted(created(plan_json(tmp_path))) == [f"p000{i}@example.com" for i in range(3)]
    (tmp_path / "main.sync").write_text(
        spec('"p.parquet"', fmt="parquet", identity="identityMap.Email[1].id")
    )
    plan = plan_json(tmp_path)  # no second email: every row is rejected, and says why
    assert plan["inputs"][0]["rejected"] == 3
    assert "identityMap.Email[1].id" in plan["rejected"][0]["reason"]
    assert plan["rejected"][0]["line"] == 1 and plan["rejected"][0]["file"] == "p.parquet"
    fmt = run(tmp_path, "fmt", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_a_file_that_is_not_parquet_is_a_rejection_naming_it(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    write_parquet(tmp_path / "exports" / "part-00000.parquet", 4)
    (tmp_path / "exports" / "part-00001.parquet").write_bytes(gzip.compress(ndjson(range(3))))
    whole = (tmp_path / "exports" / "part-00000.parquet").read_bytes()
    (tmp_path / "exports" / "part-00002.parquet").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "main.sync").write_text(spec('"exports/"', fmt="parquet"))
    plan = plan_json(tmp_path)
    reasons = {r["file"]: r["reason"] for r in plan["rejected"]}
    assert "not a Parquet file (gzip data" in reasons["exports/part-00001.parquet"]
    assert "unreadable Parquet" in reasons["exports/part-00002.parquet"]
    assert plan["inputs"][0]["contributed"] == 4


def test_semicolon_tab_and_pipe_csv_are_detected_and_reported(tmp_path: Path) -> None:
    rows = ["Email{d}Company", "a@x.com{d}Acme{d2}", 'b@x.com{d}"Beta{d} Inc"']
    for delimiter, name in ((";", "`;`"), ("\t", "tab"), ("|", "`|`")):
        text = "\n".join(row.format(d=delimiter, d2="") for row in rows) + "\n"
        (tmp_path / "vip.csv").write_text(text)
        (tmp_path / "main.sync").write_text(csv_spec('"vip.csv"'))
        result = run(tmp_path, "plan", ".", "--local")
        assert result.returncode == 0, result.stderr
        assert f"vip (delimiter {name} detected from the header line)" in result.stdout
        plan = plan_json(tmp_path)
        assert created(plan)["b@x.com"]["company"] == f"Beta{delimiter} Inc"
    # Declared, it is not detected (and a comma-looking header does not fool it).
    (tmp_path / "vip.csv").write_text("Email;Company,Ltd\na@x.com;Acme, Ltd\n")
    (tmp_path / "main.sync").write_text(
        csv_spec('"vip.csv"', extra='  delimiter = ";"\n').replace("Company\n", "`Company,Ltd`\n")
    )
    plan = plan_json(tmp_path)
    assert created(plan)["a@x.com"]["company"] == "Acme, Ltd"


@pytest.mark.parametrize(
    ("encoding", "declared"), [("utf-8-sig", None), ("latin-1", "latin-1"), ("utf-16", "utf-16")]
)
def test_csv_encodings(tmp_path: Path, encoding: str, declared: str | None) -> None:
    (tmp_path / "vip.csv").write_bytes("Email;Company\nzoe@x.com;Café Müller\n".encode(encoding))
    extra = f'  encoding = "{declared}"\n' if declared else ""
    (tmp_path / "main.sync").write_text(csv_spec('"vip.csv"', extra=extra))
    assert created(plan_json(tmp_path))["zoe@x.com"]["company"] == "Café Müller"


def test_latin_1_bytes_in_a_utf_8_csv_reject_their_row(tmp_path: Path) -> None:
    (tmp_path / "vip.csv").write_bytes(
        "Email,Company\nzoe@x.com,Café\nann@x.com,Ok\n".encode("latin-1")
    )
    (tmp_path / "main.sync").write_text(csv_spec('"vip.csv"'))
    plan = plan_json(tmp_path)
    (rejected,) = plan["rejected"]
    assert rejected["line"] == 2 and "not UTF-8" in rejected["reason"]
    assert list(created(plan)) == ["ann@x.com"]


def test_csv_options_are_checked(tmp_path: Path) -> None:
    (tmp_path / "vip.csv").write_text("Email,Company\n")
    (tmp_path / "p.jsonl").write_text("")
    cases = [
        (csv_spec('"vip.csv"', extra='  delimiter = ";;"\n'), "a delimiter is one character"),
        (csv_spec('"vip.csv"', extra='  encoding = "utf-9"\n'), "unknown encoding `utf-9`"),
        (spec('"p.jsonl"', extra='  delimiter = ";"\n'), "`delimiter` is for csv sources"),
        (csv_spec('"vip.csv"').replace("= Email", "= Email[0]"), "`Email[0]` indexes a list"),
    ]
    for text, message in cases:
        (tmp_path / "main.sync").write_text(text)
        result = run(tmp_path, "validate", ".")
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_a_part_file_added_to_a_folder_makes_the_saved_plan_stale(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path)
    (tmp_path / "main.sync").write_text(spec('"exports/ds-1/"'))
    assert run(tmp_path, "plan", ".", "--local", "--out", "p.plan").returncode == 0
    late = folder / "exportTime=202612010000"
    (late / "part-00001-tid-8-c000.json.gz").write_bytes(gzip.compress(ndjson(range(90, 91))))
    stale = run(tmp_path, "apply", "p.plan", "--local")
    assert stale.returncode == 1 and "stale" in stale.stderr, stale.stderr
    # A marker file is not data: writing one changes nothing.
    (late / "part-00001-tid-8-c000.json.gz").unlink()
    assert run(tmp_path, "plan", ".", "--local", "--out", "p.plan").returncode == 0
    (late / "_SUCCESS").write_text("done")
    applied = run(tmp_path, "apply", "p.plan", "--local")
    assert applied.returncode == 0, applied.stderr
    assert "25 created" in applied.stdout


def test_a_rewritten_file_matched_by_a_glob_makes_the_saved_plan_stale(tmp_path: Path) -> None:
    spark_folder(tmp_path)
    (tmp_path / "main.sync").write_text(spec('"exports/*/*/part-*.json.gz"'))
    assert run(tmp_path, "plan", ".", "--local", "--out", "p.plan").returncode == 0
    part = tmp_path / "exports/ds-1/exportTime=202611300000/part-00000-tid-7-c000.json.gz"
    part.write_bytes(gzip.compress(ndjson(range(3))))
    stale = run(tmp_path, "apply", "p.plan", "--local")
    assert stale.returncode == 1 and "stale" in stale.stderr
