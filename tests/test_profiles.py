"""Profiles: precedence rules (pure), and profiles kept on identities by every resolve."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from identity.policy import Policy, ProfileRules, parse_policy
from identity.profiles.precedence import Member, build_profile, consent_value
from identity.steward.actions import cut_link
from identity.store.driver import Graph
from tests.loading import load_csv
from tests.resolving import identify, identity_of, load_events, run
from tests.services import services

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86_400_000
T0 = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)


def member(key: str, **traits: tuple[str, Any, int]) -> Member:
    """An identifier with traits given as name=(source, value, day offset)."""
    props: dict[str, Any] = {}
    for name, (source, value, day) in traits.items():
        props[f"trait.{source}.{name}"] = value
        props[f"trait_at.{source}.{name}"] = T0 + day * DAY
    return Member(key, key.split(":")[0], T0, T0, props)


def chosen(props: dict[str, Any], name: str) -> tuple[Any, str, str]:
    return props[f"trait.{name}"], props[f"trait_source.{name}"], props[f"trait_from.{name}"]


def test_source_priority_beats_recency() -> None:
    members = [
        member("crm_id:C1", city=("crm", "Lyon", 1)),
        member("cookie:ck", city=("web", "Paris", 9), plan=("web", "pro", 2)),
    ]
    props = build_profile(members, ProfileRules(), NOW)
    assert chosen(props, "city") == ("Lyon", "crm", "crm_id:C1")
    assert chosen(props, "plan") == ("pro", "web", "cookie:ck")
    assert props["trait_at.city"] == datetime(2026, 10, 2, tzinfo=UTC)


def test_same_source_most_recent_wins_and_unlisted_sources_come_last() -> None:
    members = [
        member("email:a@x.org", city=("web", "Nice", 3)),
        member("cookie:ck", city=("web", "Nantes", 5)),
        member("cookie:ck2", city=("partner", "Brest", 8)),
    ]
    assert chosen(build_profile(members, ProfileRules(), NOW), "city")[0] == "Nantes"
    only_partner = [member("cookie:ck2", city=("partner", "Brest", 8))]
    assert chosen(build_profile(only_partner, ProfileRules(), NOW), "city")[0] == "Brest"


def test_consent_is_most_recent_whatever_the_source() -> None:
    members = [
        member("crm_id:C1", consent_marketing=("crm", "true", 1), consent_ads=("crm", True, 5)),
        member("cookie:ck", consent_marketing=("web", False, 4), consent_ads=("web", "no", 2)),
    ]
    props = build_profile(members, ProfileRules(), NOW)
    assert chosen(props, "consent_marketing") == (False, "web", "cookie:ck")
    assert props["consent.marketing"] is False
    assert chosen(props, "consent_ads") == (True, "crm", "crm_id:C1")
    assert props["consent.ads"] is True


def test_per_trait_rules_from_the_policy() -> None:
    policy = parse_policy(
        {
            "profiles": {
                "source_priority": ["web", "crm"],
                "traits": {"email*": ["crm"], "consent_*": "latest"},
            }
        }
    )
    members = [
        member("crm_id:C1", email_pref=("crm", "weekly", 1), city=("crm", "Lyon", 9)),
        member("cookie:ck", email_pref=("web", "daily", 8), city=("web", "Paris", 1)),
    ]
    props = build_profile(members, policy.profiles, NOW)
    assert chosen(props, "email_pref")[0] == "weekly"
    assert chosen(props, "city")[0] == "Paris"


def test_ties_do_not_depend_on_order() -> None:
    a = member("cookie:a", color=("web", "red", 1))
    b = member("cookie:b", color=("web", "blue", 1))
    assert build_profile([a, b], ProfileRules(), NOW) == build_profile([b, a], ProfileRules(), NOW)
    assert chosen(build_profile([a, b], ProfileRules(), NOW), "color")[0] == "blue"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("Yes", True),
        (" granted ", True),
        ("opt-in", True),
        (1, True),
        (False, False),
        ("no", False),
        ("unsubscribed", False),
        (0, False),
        ("maybe", None),
        (2, None),
        ("", None),
    ],
)
def test_consent_values(value: object, expected: bool | None) -> None:
    assert consent_value(value) is expected


def test_unknown_consent_value_leaves_consent_unset() -> None:
    props = build_profile(
        [member("cookie:ck", consent_ads=("web", "later", 1))], ProfileRules(), NOW
    )
    assert props["trait.consent_ads"] == "later" and "consent.ads" not in props


def test_computed_traits() -> None:
    a = Member(
        "crm_id:C1",
        "crm_id",
        T0,
        T0 + 5 * DAY,
        {
            "event_count.Order Completed": 2,
            "event_first.Order Completed": T0 + DAY,
            "event_last.Order Completed": T0 + 3 * DAY,
        },
        [("travel", T0 + 30 * DAY)],
    )
    b = Member(
        "cookie:ck",
        "cookie",
        T0 - DAY,
        T0 + 2 * DAY,
        {
            "event_count.Order Completed": 1,
            "event_first.Order Completed": T0,
            "event_last.Order Completed": T0,
        },
        [("travel", T0 + 40 * DAY), ("gamer", T0 + 10 * DAY)],
    )
    c = Member("cookie:ck2", "cookie", T0, T0, {})
    props = build_profile([a, b, c], ProfileRules(), NOW)
    ms = datetime.fromtimestamp
    assert props["first_seen"] == ms((T0 - DAY) / 1000, UTC)
    assert props["last_seen"] == ms((T0 + 5 * DAY) / 1000, UTC)
    assert props["count.cookie"] == 2 and props["count.crm_id"] == 1
    assert props["event_count.Order Completed"] == 3
    assert props["event_first.Order Completed"] == ms(T0 / 1000, UTC)
    assert props["event_last.Order Completed"] == ms((T0 + 3 * DAY) / 1000, UTC)
    assert props["dmp.travel"] == ms((T0 + 40 * DAY) / 1000, UTC)
    assert props["dmp.gamer"] == ms((T0 + 10 * DAY) / 1000, UTC)


def test_no_members_is_an_empty_profile() -> None:
    assert build_profile([], ProfileRules(), NOW) == {"profiled_at": NOW}


# --- against the database -----------------------------------------------------------------


def profile(graph: Graph, identity: str) -> dict[str, Any]:
    rows = graph.read(
        "profile", "MATCH (p:Identity {id: $id}) RETURN properties(p) AS p", {"id": identity}
    )
    return rows[0]["p"]


def load_crm(graph: Graph, tmp_path: Path, rows: str) -> None:
    data, mapping = tmp_path / "crm.csv", tmp_path / "crm.toml"
    data.write_text("id,email,city,optin,updated\n" + rows)
    mapping.write_text(
        'source = "crm"\nparty = "first"\ntimestamp = "updated"\n'
        '[identifiers]\nid = "crm_id"\nemail = "email"\n'
        '[traits]\ncity = "city"\noptin = "consent_marketing"\n'
    )
    report = load_csv(graph, data, mapping, tmp_path / "rejects")
    assert report.counts.rejected == 0, report.counts


def test_resolve_builds_profiles_with_precedence(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "web",
        [
            identify(1, user="C1", cookie="ck-1", email="ann@x.org", city="Paris", day=290),
            identify(2, cookie="ck-1", consent_marketing=False, day=295),
        ],
    )
    load_crm(graph, tmp_path, "C1,ann@x.org,Lyon,yes,2026-10-10T00:00:00Z\n")
    report = run(graph, tmp_path)
    assert report.profiles >= 1
    p = profile(graph, identity_of(graph, "crm_id:C1"))
    assert (p["trait.city"], p["trait_source.city"]) == ("Lyon", "crm")
    # the web withdrawal (day 295) is newer than the CRM opt-in (October 10th)
    assert p["trait.consent_marketing"] is False and p["trait_source.consent_marketing"] == (
        "segment"
    )
    assert p["consent.marketing"] is False
    assert p["count.cookie"] == 1 and p["count.crm_id"] == 1 and p["count.email"] == 1


def test_incremental_loads_update_the_profile(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "a", [identify(1, user="C1", cookie="ck-1", plan="free")])
    run(graph, tmp_path)
    ann = identity_of(graph, "crm_id:C1")
    load_events(graph, tmp_path, "b", [identify(2, cookie="ck-1", plan="pro", day=280)])
    report = run(graph, tmp_path)
    assert report.mode == "incremental"
    assert profile(graph, ann)["trait.plan"] == "pro"


def test_a_split_part_keeps_only_its_own_traits(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [
            identify(1, user="C1", email="ann@x.org", city="Paris"),
            identify(2, cookie="ck-2", email="ann@x.org", pet="cat", day=280),
        ],
    )
    run(graph, tmp_path)
    whole = profile(graph, identity_of(graph, "crm_id:C1"))
    assert (whole["trait.city"], whole["trait.pet"]) == ("Paris", "cat")
    cut_link(
        services(graph, tmp_path, Policy(), actor="test"),
        "email:ann@x.org",
        "cookie:ck-2",
        reason="shared laptop",
    )
    ann, other = identity_of(graph, "crm_id:C1"), identity_of(graph, "cookie:ck-2")
    assert ann != other
    a, b = profile(graph, ann), profile(graph, other)
    assert a["trait.city"] == "Paris" and "trait.pet" not in a
    assert b["trait.pet"] == "cat" and "trait.city" not in b
    assert a["count.email"] == 1 and "count.cookie" not in a and b["count.cookie"] == 1


def test_merged_identity_loses_its_profile(graph: Graph, tmp_path: Path) -> None:
    load_events(
        graph,
        tmp_path,
        "a",
        [identify(1, cookie="ck-1", pet="cat"), identify(2, cookie="ck-2", city="Oslo")],
    )
    run(graph, tmp_path)
    ids = {identity_of(graph, "cookie:ck-1"), identity_of(graph, "cookie:ck-2")}
    load_events(graph, tmp_path, "b", [identify(3, user="C9", cookie="ck-1", day=280),
                                      identify(4, user="C9", cookie="ck-2", day=280)])  # fmt: skip
    run(graph, tmp_path)
    survivor = identity_of(graph, "cookie:ck-1")
    assert identity_of(graph, "cookie:ck-2") == survivor
    p = profile(graph, survivor)
    assert (p["trait.pet"], p["trait.city"]) == ("cat", "Oslo")
    (loser,) = ids - {survivor}
    gone = profile(graph, loser)
    assert gone["status"] == "merged"
    assert not [k for k in gone if k.startswith(("trait", "count.", "first_seen"))]


def test_changed_rules_rebuild_every_profile(graph: Graph, tmp_path: Path) -> None:
    load_events(graph, tmp_path, "web", [identify(1, user="C1", email="ann@x.org", city="Paris",
                                                  day=300)])  # fmt: skip
    load_crm(graph, tmp_path, "C1,ann@x.org,Lyon,yes,2026-10-10T00:00:00Z\n")
    run(graph, tmp_path)
    ann = identity_of(graph, "crm_id:C1")
    assert profile(graph, ann)["trait.city"] == "Lyon"
    web_first = parse_policy({"profiles": {"source_priority": ["segment", "crm"]}})
    report = run(graph, tmp_path, policy=web_first)
    assert report.mode == "incremental" and report.profiles == 1
    assert profile(graph, ann)["trait.city"] == "Paris"


def test_unchanged_profiles_are_not_rewritten(graph: Graph, tmp_path: Path) -> None:
    first = [
        identify(1, user="C1", cookie="ck-1", plan="free"),
        identify(2, user="C2", cookie="ck-2", plan="pro"),
    ]
    load_events(graph, tmp_path, "a", first)
    assert run(graph, tmp_path).profiles == 2
    ann = identity_of(graph, "crm_id:C1")
    built = profile(graph, ann)["profiled_at"]
    assert run(graph, tmp_path, full=True).profiles == 0
    assert profile(graph, ann)["profiled_at"] == built
    load_events(graph, tmp_path, "b", [identify(3, cookie="ck-1", plan="pro", day=280)])
    assert run(graph, tmp_path).profiles == 1
