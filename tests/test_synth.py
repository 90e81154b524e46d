"""loaders.synth: deterministic synthetic data with every hard case, streamed to disk.

Every check scans the written files, as a loader or an evaluator would read them.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import tomllib
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from identity.errors import ConfigError
from loaders.synth import (
    CRM_COLUMNS,
    DMP_COLUMNS,
    JUNK,
    JUNK_ANONYMOUS_IDS,
    SHARED,
    TEST_EMAIL,
    TRUTH_COLUMNS,
    ZERO_MAID,
    SynthConfig,
    SynthSummary,
    _phone_number,
    generate,
)

PEOPLE = 200
FILE_NAMES = {
    "events": "events.ndjson",
    "crm": "crm.csv",
    "crm_mapping": "crm.mapping.toml",
    "dmp": "dmp.csv",
    "dmp_mapping": "dmp.mapping.toml",
    "truth": "truth.csv",
    "cases": "cases.csv",
}
EVENT_TYPES = {"identify", "track", "page", "screen", "alias", "group"}


@dataclass(frozen=True)
class Dataset:
    out: Path
    summary: SynthSummary
    events: list[dict[str, Any]]
    crm: list[dict[str, str]]
    dmp: list[dict[str, str]]
    truth: dict[str, str]  # "type:value" -> person


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def email_key(raw: str) -> str:
    return f"email:{raw.strip().lower()}"


def phone_key(raw: str) -> str:
    number = phonenumbers.parse(raw, "FR")
    return f"phone:{phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)}"


def event_keys(event: dict[str, Any]) -> Iterator[str]:
    """The truth keys of the identifiers an event carries, normalized as a loader would."""
    yield f"cookie:{event['anonymousId']}"
    if "userId" in event:
        yield f"crm_id:{event['userId']}"
    context = event.get("context", {})
    if "device" in context:
        yield f"device:{context['device']['id']}"
        yield f"maid:{context['device']['advertisingId'].lower()}"
    for external in context.get("externalIds", []):
        yield f"{external['type']}:{external['id']}"
    for traits in (event.get("traits", {}), context.get("traits", {})):
        if "email" in traits:
            yield email_key(traits["email"])
        if "phone" in traits:
            yield phone_key(traits["phone"])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, SynthConfig(people=PEOPLE))
    with summary.files["events"].open(encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle]
    truth_rows = read_csv(summary.files["truth"])
    truth = {f"{row['type']}:{row['value']}": row["person"] for row in truth_rows}
    assert len(truth) == len(truth_rows), "each identifier is written once in truth.csv"
    return Dataset(
        out,
        summary,
        events,
        read_csv(summary.files["crm"]),
        read_csv(summary.files["dmp"]),
        truth,
    )


def test_files_are_written(data: Dataset) -> None:
    assert {name: path.name for name, path in data.summary.files.items()} == FILE_NAMES
    for path in data.summary.files.values():
        assert path.parent == data.out
        assert path.stat().st_size > 0


def test_summary_counts_match_the_files(data: Dataset) -> None:
    assert data.summary.people == PEOPLE
    assert data.summary.events == len(data.events) > PEOPLE
    assert data.summary.crm_rows == len(data.crm)
    assert data.summary.dmp_rows == len(data.dmp) > 0
    assert 0.55 * PEOPLE < len(data.crm) < 0.85 * PEOPLE


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = SynthConfig(people=60, events_per_person=5)
    first = generate(tmp_path / "a", config)
    second = generate(tmp_path / "b", config)
    other = generate(tmp_path / "c", SynthConfig(people=60, events_per_person=5, seed=7))
    for name, path in first.files.items():
        assert path.read_bytes() == second.files[name].read_bytes(), name
    for name in ("events", "crm", "dmp", "truth"):
        assert first.files[name].read_bytes() != other.files[name].read_bytes(), name


def test_events_follow_the_segment_spec(data: Dataset) -> None:
    start = SynthConfig().start
    end = start + timedelta(days=SynthConfig().days + 1)
    for event in data.events:
        assert event["type"] in EVENT_TYPES
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            event["messageId"])  # fmt: skip
        assert event["timestamp"].endswith("Z")
        assert start <= datetime.fromisoformat(event["timestamp"]) < end
        assert event.get("anonymousId") or event.get("userId")
        match event["type"]:
            case "identify":
                assert "email" in event["traits"]
            case "track":
                assert isinstance(event["event"], str)
                assert isinstance(event["properties"], dict)
            case "page" | "screen":
                assert event["name"]
            case "alias":
                assert event["previousId"] and event["userId"]
            case "group":
                assert event["groupId"]
    assert {event["type"] for event in data.events} == EVENT_TYPES
    orders = [e for e in data.events if e.get("event") == "Order Completed"]
    assert orders and all(e["properties"]["revenue"] > 0 for e in orders)
    identify_traits = [e["traits"] for e in data.events if e["type"] == "identify"]
    assert any(isinstance(t.get("consent_marketing"), bool) for t in identify_traits)
    assert any(isinstance(t.get("consent_ads"), bool) for t in identify_traits)


def test_message_ids_are_unique(data: Dataset) -> None:
    ids = [event["messageId"] for event in data.events]
    assert len(set(ids)) == len(ids)


def test_truth_covers_every_identifier_emitted(data: Dataset) -> None:
    for event in data.events:
        for key in event_keys(event):
            assert key in data.truth, (key, event["messageId"])
    for row in data.crm:
        assert data.truth[f"crm_id:{row['Customer ID']}"].startswith("p")
        assert email_key(row["E-mail"]) in data.truth
        if row["Mobile"]:
            assert phone_key(row["Mobile"]) in data.truth
    for row in data.dmp:
        assert f"cookie:{row['cookie']}" in data.truth
        assert f"dmp_id:{row['partner_id']}" in data.truth
    persons = set(data.truth.values())
    assert {SHARED, JUNK} <= persons
    assert all(re.fullmatch(r"p\d{6}(-partner)?", p) for p in persons - {SHARED, JUNK})


def test_logins_tie_cookies_to_crm_ids_and_emails(data: Dataset) -> None:
    logins = [e for e in data.events if e["type"] == "identify" and "userId" in e]
    assert len(logins) > PEOPLE / 2
    for event in logins:
        assert re.fullmatch(r"C\d{7}", event["userId"])
        person = data.truth[f"crm_id:{event['userId']}"]
        assert data.truth[email_key(event["traits"]["email"])] == person
        cookie = data.truth[f"cookie:{event['anonymousId']}"]
        assert cookie in (person, SHARED, JUNK)
    users: dict[str, set[str]] = defaultdict(set)
    for event in data.events:
        if "userId" in event:
            users[f"cookie:{event['anonymousId']}"].add(event["userId"])
    for key, logged in users.items():
        if len(logged) >= 2:
            assert data.truth[key] in (SHARED, JUNK), key


def test_people_have_several_cookies_and_devices(data: Dataset) -> None:
    by_person: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, person in data.truth.items():
        by_person[person][key.split(":", 1)[0]] += 1
    assert max(kinds["cookie"] for kinds in by_person.values()) >= 4
    assert sum(kinds["cookie"] >= 2 for kinds in by_person.values()) > PEOPLE / 3
    assert sum(kinds["device"] >= 1 and kinds["maid"] >= 1 for kinds in by_person.values()) > 10
    app_events = [e for e in data.events if "device" in e.get("context", {})]
    assert app_events
    for event in app_events:
        device = event["context"]["device"]
        assert device["type"] in ("ios", "android") and device["id"] and device["advertisingId"]


def test_kiosk_cookie_is_shared_by_many_customers(data: Dataset) -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for event in data.events:
        web = "device" not in event.get("context", {})
        if web and "userId" in event and event["anonymousId"] not in JUNK_ANONYMOUS_IDS:
            users[event["anonymousId"]].add(event["userId"])
    kiosk, logged = max(users.items(), key=lambda item: len(item[1]))
    assert len(logged) >= 3
    assert data.truth[f"cookie:{kiosk}"] == SHARED


def test_family_tablet_is_shared_by_its_household(data: Dataset) -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for event in data.events:
        if "device" in event.get("context", {}) and "userId" in event:
            users[event["context"]["device"]["id"]].add(event["userId"])
    shared = [device for device, logged in users.items() if len(logged) >= 2]
    assert shared
    for device in shared:
        assert data.truth[f"device:{device}"] == SHARED


def test_test_email_is_typed_on_several_cookies(data: Dataset) -> None:
    cookies = {
        e["anonymousId"]
        for e in data.events
        if e["type"] == "identify" and e["traits"]["email"].strip().lower() == TEST_EMAIL
    }
    assert len(cookies) >= 2
    assert data.truth[f"email:{TEST_EMAIL}"] == SHARED
    assert {data.truth[f"cookie:{c}"] for c in cookies} - {SHARED, JUNK}


def test_junk_identifiers_appear(data: Dataset) -> None:
    anonymous_ids = {e["anonymousId"] for e in data.events}
    assert "undefined" in anonymous_ids
    devices = [e["context"]["device"] for e in data.events if "device" in e.get("context", {})]
    maids = {device["advertisingId"] for device in devices}
    assert ZERO_MAID in maids
    assert any(m != m.lower() for m in maids), "iOS advertising ids are upper case"
    assert data.truth["cookie:undefined"] == JUNK
    assert data.truth["cookie:null"] == JUNK
    assert data.truth[f"maid:{ZERO_MAID}"] == JUNK


def test_email_variants_of_one_person_across_sources(data: Dataset) -> None:
    written: dict[str, set[str]] = defaultdict(set)
    for row in data.crm:
        written[email_key(row["E-mail"])].add(row["E-mail"])
    for event in data.events:
        if event["type"] == "identify":
            written[email_key(event["traits"]["email"])].add(event["traits"]["email"])
    variants = {key: raws for key, raws in written.items() if len(raws) >= 2}
    assert variants
    assert any(any(r != r.strip() for r in raws) for raws in variants.values())
    assert any(any(r != r.lower() for r in raws) for raws in variants.values())
    assert all(data.truth[key].startswith("p") for key in variants if key != f"email:{TEST_EMAIL}")


def test_phones_are_valid_french_mobiles_in_several_formats(data: Dataset) -> None:
    raws = [row["Mobile"] for row in data.crm if row["Mobile"]]
    raws += [e["traits"]["phone"] for e in data.events if "phone" in e.get("traits", {})]
    assert raws
    for raw in raws:
        number = phonenumbers.parse(raw, "FR")
        assert phonenumbers.is_valid_number(number), raw
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE, raw
        assert re.fullmatch(r"phone:\+33[67]\d{8}", phone_key(raw))
    assert any(re.fullmatch(r"0[67]( \d\d){4}", raw) for raw in raws), "national, spaced"
    assert any(re.fullmatch(r"\+33 [67]( \d\d){4}", raw) for raw in raws), "international"
    assert any(raw.startswith("0033") for raw in raws)


def test_phone_numbers_are_distinct_and_never_placeholders() -> None:
    numbers = [_phone_number(i, 12345) for i in range(5000)]
    valid = [n for n in numbers if n is not None]
    assert len(set(valid)) == len(valid) > 4900
    for number in valid:
        assert phonenumbers.is_valid_number(phonenumbers.parse(number))
        assert len(set(number[4:])) >= 4


def test_some_dmp_rows_link_a_cookie_to_another_persons_partner_id(data: Dataset) -> None:
    wrong = [
        row
        for row in data.dmp
        if data.truth[f"cookie:{row['cookie']}"] != data.truth[f"dmp_id:{row['partner_id']}"]
    ]
    assert wrong
    assert len(wrong) < 0.2 * len(data.dmp)
    for row in data.dmp:
        assert row["segments"] and all(
            re.fullmatch(r"[a-z_]+", s) for s in row["segments"].split("|")
        )
        assert int(row["ttl_days"]) > 0
        assert SynthConfig().start <= datetime.fromisoformat(row["seen_at"])


def test_csv_columns_match_the_mappings(data: Dataset) -> None:
    for name, columns in (("crm", CRM_COLUMNS), ("dmp", DMP_COLUMNS), ("truth", TRUTH_COLUMNS)):
        with data.summary.files[name].open(encoding="utf-8", newline="") as handle:
            assert tuple(csv.DictReader(handle).fieldnames or ()) == columns
    crm = tomllib.loads(data.summary.files["crm_mapping"].read_text(encoding="utf-8"))
    assert (crm["source"], crm["party"]) == ("crm", "first")
    assert {crm["timestamp"], *crm["identifiers"], *crm["traits"]} <= set(CRM_COLUMNS)
    assert crm["identifiers"] == {"Customer ID": "crm_id", "E-mail": "email", "Mobile": "phone"}
    dmp = tomllib.loads(data.summary.files["dmp_mapping"].read_text(encoding="utf-8"))
    assert (dmp["source"], dmp["party"]) == ("dmp", "third")
    assert dmp["identifiers"] == {"cookie": "cookie", "partner_id": "dmp_id"}
    assert dmp["segments"] == {"column": "segments", "separator": "|", "ttl_column": "ttl_days"}
    assert {dmp["timestamp"], dmp["segments"]["column"], dmp["segments"]["ttl_column"]} <= set(
        DMP_COLUMNS
    )
    for row in data.crm:
        assert row["Marketing Opt-in"] in ("true", "false")
        datetime.fromisoformat(row["Updated"])


def test_gzip_holds_the_same_events(data: Dataset, tmp_path: Path) -> None:
    config = SynthConfig(people=PEOPLE, gzip=True)
    summary = generate(tmp_path / "a", config)
    assert summary.files["events"].name == "events.ndjson.gz"
    assert summary.events == data.summary.events
    plain = data.summary.files["events"].read_bytes()
    assert gzip.decompress(summary.files["events"].read_bytes()) == plain
    again = generate(tmp_path / "b", config)
    assert again.files["events"].read_bytes() == summary.files["events"].read_bytes()


def test_progress_reports_every_event(tmp_path: Path) -> None:
    calls: list[int] = []
    summary = generate(tmp_path, SynthConfig(people=3000, events_per_person=5), calls.append)
    assert len(calls) > 1
    assert all(n > 0 for n in calls)
    assert sum(calls) == summary.events


@pytest.mark.parametrize("people", [0, 1, 3])
def test_tiny_datasets(tmp_path: Path, people: int) -> None:
    summary = generate(tmp_path, SynthConfig(people=people))
    assert summary.crm_rows <= people
    with summary.files["events"].open(encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == summary.events


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        (SynthConfig(people=-1), "people"),
        (SynthConfig(days=0), "days"),
        (SynthConfig(events_per_person=-1.0), "events_per_person"),
    ],
)
def test_bad_config_names_the_setting(tmp_path: Path, config: SynthConfig, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"^{setting}:"):
        generate(tmp_path, config)


def peak_memory(out: Path, config: SynthConfig) -> int:
    tracemalloc.start()
    try:
        generate(out, config)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_stays_bounded(tmp_path: Path) -> None:
    """Ten times the people must not take much more memory: nothing is held per person.

    Few events per person keep the test quick under tracemalloc; holding every event (the bug
    this guards against) would still show as a peak growing with the number of people.
    """
    small = peak_memory(tmp_path / "small", SynthConfig(people=2_000, events_per_person=2))
    large = peak_memory(tmp_path / "large", SynthConfig(people=20_000, events_per_person=2))
    assert large < 50 * 2**20, f"peak {large / 2**20:.1f} MiB"
    assert large < 3 * small, f"peak {small / 2**20:.1f} -> {large / 2**20:.1f} MiB"


def test_a_partner_signs_in_on_a_customers_device_between_their_logins(data: Dataset) -> None:
    cases = read_csv(data.summary.files["cases"])
    hosts = [r["person"] for r in cases if r["case"] == "partner_host"]
    assert hosts and [r["person"] for r in cases if r["case"] == "partner"] == [
        f"{h}-partner" for h in hosts
    ]
    for host in hosts:
        partner = f"{host}-partner"
        [email] = [k for k, p in data.truth.items() if p == partner and k.startswith("email:")]
        value = email.split(":", 1)[1]
        typed = [
            e for e in data.events
            if e["type"] == "identify" and "userId" not in e
            and e["traits"].get("email", "").strip().lower() == value
        ]  # fmt: skip
        devices = {e["context"]["device"]["id"] for e in typed if "device" in e.get("context", {})}
        [device] = devices  # the host's device, in the truth as the host's
        assert data.truth[f"device:{device}"] == host
        logins = [
            e for e in data.events
            if e.get("userId") and e.get("context", {}).get("device", {}).get("id") == device
        ]  # fmt: skip
        assert len(logins) >= 2 and not any(e.get("userId") for e in typed)


def test_a_twin_writes_one_email_then_another(data: Dataset) -> None:
    cases = read_csv(data.summary.files["cases"])
    twins = [r["person"] for r in cases if r["case"] == "twin"]
    assert twins
    for twin in twins:
        emails = sorted(k for k, p in data.truth.items() if p == twin and k.startswith("email:"))
        assert len(emails) == 2, emails
        seen: dict[str, list[str]] = {}
        for e in data.events:
            written = (e.get("traits") or {}).get("email")
            if written:
                seen.setdefault(f"email:{written.strip().lower()}", []).append(e["timestamp"])
        old, new = sorted(emails, key=lambda k: min(seen[k]))
        assert max(seen[old]) < min(seen[new])  # replaced once, never written again
