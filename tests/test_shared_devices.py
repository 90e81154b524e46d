"""The shared-device rule on hand-made graphs (no server): two anchors of one type that meet only
on one device, their use of it alternating, are two people; one after the other, one person;
and every such call is kept for review."""

from __future__ import annotations

from dataclasses import replace

from identity.policy import Policy
from identity.resolve.engine import DEVICE, MERGED, VERDICTS, Resolution
from identity.resolve.graph import DAY_MS
from tests.test_engine import AS_OF, link, run

TABLET = ("cookie:tab", "device:tab", "maid:tab")
ANN = ("crm_id:C1", "email:ann@x.org", "cookie:ann-laptop")


def day(n: int) -> int:
    return AS_OF - (60 - n) * DAY_MS


def on_tablet(key: str, first: int, last: int, count: int = 2) -> list:
    """``key`` seen on the tablet's three identifiers from day ``first`` to day ``last``."""
    return [link(key, t, first_seen=day(first), last_seen=day(last), count=count) for t in TABLET]


def tablet() -> list:
    """The tablet's own identifiers, observed together (one app install)."""
    return [
        link("cookie:tab", "device:tab", count=9, first_seen=day(1), last_seen=day(59)),
        link("cookie:tab", "maid:tab", count=9, first_seen=day(1), last_seen=day(59)),
        link("device:tab", "maid:tab", count=9, first_seen=day(1), last_seen=day(59)),
    ]


def ann() -> list:
    """Ann: a customer, her email and laptop; she logs in on the tablet from day 5 to day 50."""
    return [
        link("crm_id:C1", "email:ann@x.org", count=5, first_seen=day(1)),
        link("crm_id:C1", "cookie:ann-laptop", count=5, first_seen=day(1)),
        link("email:ann@x.org", "cookie:ann-laptop", count=5, first_seen=day(1)),
        *on_tablet("crm_id:C1", 5, 50),
        *on_tablet("email:ann@x.org", 5, 50),
    ]


def group_of(res: Resolution, key: str) -> int:
    return int(res.group_of[res.graph.index[key]])


def verdicts(res: Resolution, key: str) -> set[str]:
    g = res.graph
    i = g.index[key]
    return {VERDICTS[int(res.verdict[j])] for j in range(len(g.a)) if i in (g.a[j], g.b[j])}


def test_a_partner_signing_in_between_the_customers_logins_is_another_person() -> None:
    res = run([*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40)])
    assert group_of(res, "email:bob@x.org") != group_of(res, "email:ann@x.org")
    assert group_of(res, "device:tab") == group_of(res, "crm_id:C1")  # Ann keeps her tablet
    assert verdicts(res, "email:bob@x.org") == {"shared_device"}
    [call] = res.devices
    assert call.split and call.type == "email"
    assert call.device == TABLET and call.kept == ("email:ann@x.org",)
    assert call.other == ("email:bob@x.org",)
    assert "alternates: two people on one device" in call.reason
    refused = [j for j, v in enumerate(res.verdict.tolist()) if v == DEVICE]
    assert len(refused) == 3 and all(res.device_links[j] is call for j in refused)


def test_the_partners_own_browser_goes_with_them() -> None:
    own = link("email:bob@x.org", "cookie:bob-phone", count=3, first_seen=day(2))
    res = run([*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40), own])
    assert group_of(res, "cookie:bob-phone") == group_of(res, "email:bob@x.org")
    assert group_of(res, "email:bob@x.org") != group_of(res, "crm_id:C1")


def test_one_email_replacing_another_on_the_device_is_one_person_kept_for_review() -> None:
    # the new address is used on the tablet only after the old one's last use there
    res = run([*tablet(), *ann(), *on_tablet("email:ann.new@x.org", 52, 58)])
    assert group_of(res, "email:ann.new@x.org") == group_of(res, "email:ann@x.org")
    assert verdicts(res, "email:ann.new@x.org") == {"merged"}
    [call] = res.devices
    assert not call.split and "one after the other" in call.reason


def test_a_single_sighting_is_not_enough_to_split() -> None:
    res = run([*tablet(), *ann(), *on_tablet("email:bob@x.org", 20, 20, count=1)])
    assert group_of(res, "email:bob@x.org") == group_of(res, "email:ann@x.org")
    assert [c.split for c in res.devices] == [False]


def test_an_email_tied_to_the_customer_elsewhere_is_not_judged() -> None:
    # the second email was also given at a login (with the CRM id): the same customer
    tie = link("crm_id:C1", "email:ann.pro@x.org", count=2, first_seen=day(3))
    res = run([*tablet(), *ann(), *on_tablet("email:ann.pro@x.org", 10, 40), tie])
    assert group_of(res, "email:ann.pro@x.org") == group_of(res, "email:ann@x.org")
    assert res.devices == []


def test_two_browsers_seeing_both_emails_are_not_one_device() -> None:
    other_browser = [
        link("email:bob@x.org", "cookie:ann-laptop", count=2, first_seen=day(12)),
    ]
    res = run([*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40), *other_browser])
    assert group_of(res, "email:bob@x.org") == group_of(res, "email:ann@x.org")
    assert res.devices == []


def test_a_steward_forcing_the_link_decides() -> None:
    links = [*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40)]
    forced = [replace(x, forced=True) if x.a == "email:bob@x.org" and x.b == "device:tab" else x
              for x in links]  # fmt: skip
    res = run(forced)
    assert group_of(res, "email:bob@x.org") == group_of(res, "email:ann@x.org")
    assert res.devices == []


def test_the_policy_can_turn_the_rule_off() -> None:
    links = [*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40)]
    res = run(links, policy=Policy(shared_devices=False))
    assert group_of(res, "email:bob@x.org") == group_of(res, "email:ann@x.org")
    assert res.devices == [] and DEVICE not in res.verdict.tolist()
    assert int(MERGED) in res.verdict.tolist()


def test_the_call_does_not_depend_on_the_order_of_the_links() -> None:
    links = [*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40)]
    first, second = run(links), run(list(reversed(links)))
    assert first.partition() == second.partition()
    assert first.devices == second.devices


def test_explain_says_a_merge_rests_on_one_device() -> None:
    from identity.resolve.explain import hop_of

    res = run([*tablet(), *ann(), *on_tablet("email:ann.new@x.org", 52, 58)])
    g = res.graph
    j = next(
        j for j in range(len(g.a))
        if {g.keys[int(g.a[j])], g.keys[int(g.b[j])]} == {"email:ann.new@x.org", "device:tab"}
    )  # fmt: skip
    assert hop_of(res, j, "email:ann.new@x.org", "device:tab").verdict == "merged"
    split = run([*tablet(), *ann(), *on_tablet("email:bob@x.org", 10, 40)])
    k = next(j for j, c in split.device_links.items())
    hop = hop_of(split, k, split.graph.keys[int(split.graph.a[k])], "x")
    assert hop.verdict == "shared_device" and "two people on one device" in hop.why


def test_each_partner_of_three_has_their_own_call_and_links() -> None:
    res = run(
        [
            *tablet(),
            *ann(),
            *on_tablet("email:bob@x.org", 10, 40),
            *on_tablet("email:carol@x.org", 12, 45),
        ]
    )
    calls = {c.other: c for c in res.devices}
    assert set(calls) == {("email:bob@x.org",), ("email:carol@x.org",)}
    assert all(c.split and c.kept == ("email:ann@x.org",) for c in calls.values())
    g = res.graph
    for j, call in res.device_links.items():
        ends = {g.keys[int(g.a[j])], g.keys[int(g.b[j])]}
        assert set(call.other) & ends  # the refused link is that partner's own
    assert len(res.device_links) == 6


def test_anchors_of_another_type_are_not_judged_against_the_email() -> None:
    # Ann's phone seen only on her tablet: not a side against her email, partner or not
    phone = on_tablet("phone:+33612345670", 6, 48)
    res = run([*tablet(), *ann(), *phone, *on_tablet("email:bob@x.org", 10, 40)])
    assert group_of(res, "phone:+33612345670") == group_of(res, "crm_id:C1")
    assert [c.type for c in res.devices] == ["email"]


def test_the_side_that_keeps_the_device_is_chosen_once_for_every_type() -> None:
    # Ann's phone seen only on her tablet; Bob with an email and a phone of his own there:
    # Bob is judged against Ann once, and Ann's phone stays hers
    bob = [
        *on_tablet("email:bob@x.org", 10, 40),
        *on_tablet("phone:+33612345671", 11, 41),
        link("email:bob@x.org", "phone:+33612345671", count=2, first_seen=day(9)),
    ]
    res = run([*tablet(), *ann(), *on_tablet("phone:+33612345670", 6, 48), *bob])
    assert group_of(res, "phone:+33612345670") == group_of(res, "crm_id:C1")
    assert group_of(res, "phone:+33612345671") == group_of(res, "email:bob@x.org")
    assert group_of(res, "email:bob@x.org") != group_of(res, "crm_id:C1")
    [call] = res.devices
    assert call.split and call.kept == ("email:ann@x.org",)
    assert call.other == ("email:bob@x.org",)
