"""A small harness for plan/apply tests: a workspace with a spec, data files and a local HubSpot."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncdsl.apply.executor import ApplyReport, execute, record_lock
from syncdsl.emulator import Emulator
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.target import Target
from syncdsl.hubspot.tiers import DEFAULT_API_VERSION
from syncdsl.lang.ir import Spec
from syncdsl.lang.load import load_spec
from syncdsl.plan.definition import Plan, PlanOptions
from syncdsl.plan.gather import make_plan
from syncdsl.state.store import StateStore

TOKEN = "pat-na1-test-0000-secret"
SEGMENT = "seg-1"

BASE_SPEC = """\
destination hubspot {
  token = env("HUBSPOT_TOKEN")
  tier  = "professional"
}

source profiles {
  jsonl = "profiles.jsonl"
  identity email = email
  map {
    firstname = first
    city      = "{{ city | title }}"
  }
}

source uploads {
  csv = "vip.csv"
  identity email = Email
  map {
    company = Company
  }
}

audience "Newsletter" {
  source  = profiles
  segment = "seg-1"
}

audience "VIP" {
  source = uploads
}
"""


def profile_line(profile: Mapping[str, Any]) -> str:
    """Shorthand -> an XDM-like line: {"email", "first", "city", "seg": status} ."""
    record: dict[str, Any] = {k: v for k, v in profile.items() if k != "seg"}
    if "seg" in profile:
        record["segmentMembership"] = {"ups": {SEGMENT: {"status": profile["seg"]}}}
    return json.dumps(record)


def vip_csv(rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    width = max((len(row) for row in rows), default=2)
    writer.writerow(["Email", "Company", "Consent"][: max(width, 2)])  # a third cell: consent
    writer.writerows(rows)
    return out.getvalue()


@dataclass
class Workspace:
    """A configuration directory bound to a running emulator."""

    root: Path
    emulator: Emulator
    spec_text: str = BASE_SPEC

    def write(
        self,
        profiles: Sequence[Mapping[str, Any]] = (),
        vip: Sequence[Sequence[str]] = (),
        spec: str | None = None,
    ) -> None:
        if spec is not None:
            self.spec_text = spec
        (self.root / "main.sync").write_text(self.spec_text)
        (self.root / "profiles.jsonl").write_text("".join(profile_line(p) + "\n" for p in profiles))
        (self.root / "vip.csv").write_text(vip_csv(vip))

    def spec(self) -> Spec:
        return load_spec([self.root])

    def client(self) -> HubSpotClient:
        budget = RateBudget(limit=100_000, window_seconds=1.0, search_per_second=100_000)
        return HubSpotClient(
            self.emulator.base_url,
            TOKEN,
            budget=budget,
            backoff_base=0.01,
            backoff_cap=0.05,
            api_version=self._api_version(),
        )

    def _api_version(self) -> str:
        """The spec's API version, as `syncdsl` connects (the default before a spec is written)."""
        if not (self.root / "main.sync").exists():
            return DEFAULT_API_VERSION
        return self.spec().destination.api_version

    def target(self, client: HubSpotClient) -> Target:
        return Target(client, self.emulator.base_url, self.emulator.base_url, False)

    def plan(self, **options: Any) -> Plan:
        spec = self.spec()
        client = self.client()
        with StateStore.open(spec.root) as store:
            result = make_plan(
                spec,
                client,
                store,
                state_key=self.emulator.base_url,
                options=PlanOptions(**options),
            )
        result.desired.close()
        client.close()
        refusal = result.plan.refusal()  # a guard's refusal is the plan's error
        if refusal is not None:
            raise refusal
        return result.plan

    def apply(self, parallelism: int = 4, **options: Any) -> tuple[Plan, ApplyReport]:
        spec = self.spec()
        client = self.client()
        with StateStore.open(spec.root) as store:
            result = make_plan(
                spec,
                client,
                store,
                state_key=self.emulator.base_url,
                options=PlanOptions(**options),
            )
            store.bind(self.emulator.base_url)
            report = execute(result.plan, client, store, parallelism=parallelism)
            record_lock(spec, result.plan, report)
        result.desired.close()
        client.close()
        return result.plan, report


@contextmanager
def workspace(tmp_path: Path, **emulator_options: Any) -> Iterator[Workspace]:
    options = {"rate_limits": False, "seed": 7, **emulator_options}
    with Emulator(token=TOKEN, **options) as emulator:
        yield Workspace(tmp_path, emulator)


def contact_changes(plan: Plan) -> list[dict[str, Any]]:
    """A comparable view of a plan's contact changes."""
    return sorted(
        (
            {
                "action": change.action,
                "email": change.email,
                "changes": {v.property: [v.before, v.after] for v in change.changes},
                **({"drift": True} if change.drift else {}),
                **({"reason": change.reason} if change.reason else {}),
            }
            for change in plan.contact_changes
        ),
        key=lambda c: (c["action"], c["email"]),
    )
