"""Unit tests of identity.policy: defaults, overrides, errors with file and line, merging, the
fingerprint. No server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.errors import ConfigError, IdgraphError
from identity.policy import (
    DEFAULT_MAX_IDENTITY_SIZE,
    Policy,
    TypeRule,
    load_policy,
    parse_policy,
)


def _write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str) -> Policy:
    return load_policy(_write(tmp_path, text))


# -- defaults ------------------------------------------------------------------------------


def test_no_file_and_an_empty_file_give_the_defaults(tmp_path: Path) -> None:
    assert load_policy(None) == Policy()
    assert _load(tmp_path, "") == Policy()
    assert _load(tmp_path, "# nothing but a comment\n") == Policy()


@pytest.mark.parametrize(
    ("type_", "limit"),
    [("crm_id", 1), ("email", 5), ("phone", 3), ("device", 10), ("maid", 10), ("cookie", 200)],
)
def test_default_limits(type_: str, limit: int) -> None:
    assert Policy().rule(type_).limit == limit
    assert load_policy(None).rule(type_).limit == limit


def test_default_priorities_rank_known_identifiers_above_anonymous_ones() -> None:
    policy = Policy()
    ranked = ["crm_id", "email", "phone", "device", "maid", "cookie", "dmp_id"]
    priorities = [policy.rule(t).priority for t in ranked]
    assert priorities == sorted(priorities, reverse=True)
    assert len(set(priorities)) == len(priorities)


def test_default_ttls() -> None:
    policy = Policy()
    assert policy.rule("cookie").ttl_days == 180
    assert policy.rule("dmp_id").ttl_days == 30
    assert policy.rule("crm_id").ttl_days is None
    assert policy.rule("email").ttl_days is None


def test_an_unknown_type_has_no_limit_and_no_ttl() -> None:
    assert Policy().rule("loyalty_id") == TypeRule(limit=None, priority=10, ttl_days=None)


def test_default_parties_first_and_second_merge_third_does_not() -> None:
    policy = Policy()
    assert policy.may_merge(["web"], "first")
    assert policy.may_merge(["partner"], "second")
    assert not policy.may_merge(["dmp"], "third")


def test_default_shared_and_breaker_settings() -> None:
    policy = Policy()
    assert policy.anchor_types == ("crm_id", "email", "phone")
    assert policy.two_hop is True
    assert policy.max_identity_size == DEFAULT_MAX_IDENTITY_SIZE == 1000
    assert policy.user_id_type == "crm_id"
    assert policy.previous_id_type == "cookie"


# -- overrides -----------------------------------------------------------------------------


def test_overriding_limit_priority_and_ttl(tmp_path: Path) -> None:
    policy = _load(tmp_path, "[types.email]\nlimit = 2\npriority = 99\nttl_days = 30\n")
    assert policy.rule("email") == TypeRule(limit=2, priority=99, ttl_days=30)
    assert policy.rule("phone") == Policy().rule("phone")


def test_a_partial_override_keeps_the_other_defaults_of_the_type(tmp_path: Path) -> None:
    policy = _load(tmp_path, "[types.cookie]\nlimit = 50\n")
    assert policy.rule("cookie") == TypeRule(limit=50, priority=20, ttl_days=180)


@pytest.mark.parametrize("value", ["0", '"none"'])
def test_limit_zero_or_none_means_no_limit(tmp_path: Path, value: str) -> None:
    policy = _load(tmp_path, f"[types.crm_id]\nlimit = {value}\n")
    assert policy.rule("crm_id").limit is None
    assert policy.rule("crm_id").priority == 100


def test_ttl_zero_means_never_expires(tmp_path: Path) -> None:
    assert _load(tmp_path, "[types.cookie]\nttl_days = 0\n").rule("cookie").ttl_days is None


def test_a_new_type_with_new_true(tmp_path: Path) -> None:
    policy = _load(tmp_path, "[types.loyalty_id]\nnew = true\nlimit = 1\npriority = 90\n")
    assert "loyalty_id" in policy.types
    assert policy.rule("loyalty_id") == TypeRule(limit=1, priority=90, ttl_days=None)
    assert policy.blocked["loyalty_id"] == frozenset()


def test_a_new_type_can_be_an_anchor_and_a_segment_external_id(tmp_path: Path) -> None:
    text = (
        "[types.loyalty_id]\nnew = true\n"
        '[shared]\nanchor_types = ["crm_id", "loyalty_id"]\n'
        '[segment.external_ids]\nLoyalty = "loyalty_id"\n'
    )
    policy = _load(tmp_path, text)
    assert policy.anchor_types == ("crm_id", "loyalty_id")
    assert policy.external_id_types["loyalty"] == "loyalty_id"


def test_blocked_values_and_patterns(tmp_path: Path) -> None:
    text = (
        "[types.email]\nblocked = [\"noreply@acme.com\"]\nblocked_patterns = ['.*@acme-qa\\.com']\n"
    )
    policy = _load(tmp_path, text)
    assert policy.blocked["email"] == frozenset({"noreply@acme.com"})
    assert policy.blocked_patterns["email"] == (r".*@acme-qa\.com",)


def test_parties_sources_shared_and_breaker(tmp_path: Path) -> None:
    text = (
        "[parties]\nsecond = false\n"
        "[sources.crm]\nmerge = true\n"
        "[sources.partner_feed]\nmerge = false\n"
        '[shared]\nanchor_types = ["crm_id"]\ntwo_hop = false\n'
        "[circuit_breaker]\nmax_identity_size = 50\n"
    )
    policy = _load(tmp_path, text)
    assert policy.party_merge == {"first": True, "second": False, "third": False}
    assert policy.source_merge == {"crm": True, "partner_feed": False}
    assert policy.anchor_types == ("crm_id",)
    assert policy.two_hop is False
    assert policy.max_identity_size == 50


def test_parse_policy_takes_parsed_toml() -> None:
    policy = parse_policy({"types": {"phone": {"limit": 4}}})
    assert policy.rule("phone").limit == 4


def test_parse_policy_without_text_names_where_but_no_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy({"types": {"phone": {"limit": -1}}}, where="my policy")
    message = str(caught.value)
    assert message.startswith("my policy: ")
    assert "(line" not in message
    assert "types.phone.limit = -1" in message


# -- errors: file, line, reason ------------------------------------------------------------

ERRORS = [
    pytest.param(
        "[types.email]\nlimit = 4\n\n[types.emial]\nlimit = 2\n",
        4,
        ["unknown identifier type 'emial'", "new = true"],
        id="misspelt-type",
    ),
    pytest.param(
        "[types.loyalty_id]\nlimit = 1\n",
        1,
        ["unknown identifier type 'loyalty_id'", "new = true"],
        id="new-type-without-new",
    ),
    pytest.param(
        "[types.email]\npriority = 1\nlimit = -1\n",
        3,
        ["types.email.limit = -1", "at least 1"],
        id="negative-limit",
    ),
    pytest.param(
        "[types.phone]\n\nlimit = 2.5\n",
        3,
        ["types.phone.limit must be an integer", "2.5"],
        id="float-limit",
    ),
    pytest.param(
        '[types.phone]\nlimit = "five"\n',
        2,
        ["types.phone.limit must be an integer", "'five'"],
        id="string-limit",
    ),
    pytest.param(
        "[types.phone]\nlimit = true\n",
        2,
        ["types.phone.limit must be an integer", "True"],
        id="bool-limit",
    ),
    pytest.param(
        "[types.email]\nlimit = 3\n[types.phone]\nlimit = -3\n",
        4,
        ["types.phone.limit = -3"],
        id="same-key-in-an-earlier-table",
    ),
    pytest.param(
        "[types.email]\nlimit = 3\nblocked_patterns = ['(unclosed']\n",
        3,
        ["types.email.blocked_patterns", "'(unclosed' is not a regex"],
        id="bad-regex",
    ),
    pytest.param(
        "[types.email]\nlimit = 3\nlimt = 4\n",
        3,
        ["types.email.limt is not a setting"],
        id="unknown-key-in-type",
    ),
    pytest.param(
        "[types.email]\npriority = 1.5\n",
        2,
        ["types.email.priority must be an integer"],
        id="float-priority",
    ),
    pytest.param(
        "[types.cookie]\nttl_days = -30\n",
        2,
        ["types.cookie.ttl_days = -30", "at least 1"],
        id="negative-ttl",
    ),
    pytest.param(
        "[parties]\nfirst = true\nfourth = false\n",
        3,
        ["parties.fourth: unknown party"],
        id="unknown-party",
    ),
    pytest.param(
        '[parties]\nthird = "yes"\n',
        2,
        ["parties.third must be true or false"],
        id="non-bool-party",
    ),
    pytest.param(
        "[sources.crm]\nmerge = true\n[sources.feed]\n\nmerge = 1\n",
        5,
        ["sources.feed.merge must be true or false"],
        id="non-bool-source-merge",
    ),
    pytest.param(
        "[sources.feed]\nmerge = true\ntrust = 3\n",
        1,
        ["[sources.feed] takes only merge"],
        id="unknown-key-in-source",
    ),
    pytest.param(
        "[types.email]\nlimit = 2\n"
        '[shared]\ntwo_hop = true\nanchor_types = ["crm_id", "loyalty"]\n',
        5,
        ["shared.anchor_types: 'loyalty' is not an identifier type"],
        id="anchor-not-a-type",
    ),
    pytest.param(
        "[shared]\ntwo_hop = 1\n",
        2,
        ["shared.two_hop must be true or false"],
        id="non-bool-two-hop",
    ),
    pytest.param(
        "# the breaker\n[circuit_breaker]\nmax_identity_size = 1\n",
        3,
        ["circuit_breaker.max_identity_size = 1", "at least 2"],
        id="breaker-below-2",
    ),
    pytest.param(
        '[segment]\nuser_id_type = "crm"\n',
        2,
        ["segment.user_id_type = 'crm' is not an identifier type"],
        id="segment-user-id-type",
    ),
    pytest.param(
        "[types.Email]\nlimit = 2\n",
        1,
        ["identifier type 'Email' must be a lower-case word"],
        id="type-name-not-a-word",
    ),
    pytest.param(
        '[types.email]\nblocked = [\n  "a@b.c",\n]\nlimit = -1\n',
        5,
        ["types.email.limit = -1"],
        id="after-a-multiline-array",
    ),
    pytest.param(
        "types.email.limit = -2\n",
        1,
        ["types.email.limit = -2"],
        id="dotted-key",
    ),
    pytest.param(
        "[types]\nemail.limit = -2\n",
        2,
        ["types.email.limit = -2"],
        id="dotted-key-in-the-types-table",
    ),
    pytest.param(
        "[types]\nphone = { limit = -3 }\n",
        2,
        ["types.phone.limit = -3"],
        id="inline-table",
    ),
    pytest.param(
        '[types.phone]\ncheck = "strict"\n',
        2,
        ['types.phone.check must be "valid"', "'strict'"],
        id="phone-check-unknown",
    ),
    pytest.param(
        '[types.email]\ncheck = "possible"\n',
        2,
        ["types.email.check is not a setting", "check for phone"],
        id="check-is-for-phones-only",
    ),
    pytest.param(
        "[segment]\nexternal_ids = 3\n",
        2,
        ["segment.external_ids"],
        id="external-ids-not-a-table",
    ),
]


@pytest.mark.parametrize(("text", "line", "reasons"), ERRORS)
def test_errors_name_the_file_the_line_and_the_reason(
    tmp_path: Path, text: str, line: int, reasons: list[str]
) -> None:
    path = _write(tmp_path, text, name="my-policy.toml")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert "IDGRAPH_POLICY" in message
    assert f"(line {line})" in message, message
    for reason in reasons:
        assert reason in message, message
    assert isinstance(caught.value, IdgraphError)


def test_the_phone_check_is_valid_unless_the_policy_says_possible(tmp_path: Path) -> None:
    assert Policy().phone_check == "valid"
    policy = load_policy(_write(tmp_path, '[types.phone]\ncheck = "possible"\nlimit = 2\n'))
    assert policy.phone_check == "possible" and policy.rule("phone").limit == 2
    assert policy.fingerprint() == Policy(rules=policy.rules).fingerprint()  # loading only


def test_a_misspelt_type_is_never_taken_for_a_new_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="emial"):
        _load(tmp_path, "[types.emial]\nlimit = 2\n")
    with pytest.raises(ConfigError, match="emial"):
        _load(tmp_path, "[types.emial]\nnew = false\nlimit = 2\n")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[types.email\nlimit = 2\n", "IDGRAPH_POLICY"),
        ("limit = = 2\n", "IDGRAPH_POLICY"),
    ],
)
def test_toml_syntax_errors_name_the_file(tmp_path: Path, text: str, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IDGRAPH_POLICY"):
        load_policy(tmp_path / "missing.toml")


@pytest.mark.parametrize("table", ["types", "parties", "sources", "shared", "circuit_breaker"])
def test_a_table_given_as_a_value_is_rejected(tmp_path: Path, table: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[{table}\] must be a table"):
        _load(tmp_path, f"{table} = 3\n")


# -- may_merge -----------------------------------------------------------------------------


def test_a_source_that_may_not_merge_blocks_a_first_party_link() -> None:
    policy = _load_sources({"partner_feed": False})
    assert not policy.may_merge(["partner_feed"], "first")
    assert not policy.may_merge(["partner_feed"], "second")


def test_a_source_that_may_merge_lifts_a_third_party_link() -> None:
    policy = _load_sources({"trusted_dmp": True})
    assert policy.may_merge(["trusted_dmp"], "third")
    assert not policy.may_merge(["other_dmp"], "third")


def test_one_allowed_source_among_several_is_enough() -> None:
    policy = _load_sources({"partner_feed": False, "trusted_dmp": True})
    assert policy.may_merge(["partner_feed", "web"], "first")
    assert policy.may_merge(["web", "partner_feed"], "first")
    assert policy.may_merge(["dmp", "trusted_dmp"], "third")
    assert not policy.may_merge(["partner_feed", "dmp"], "third")
    assert not policy.may_merge(["partner_feed"], "first")


def test_a_party_switched_off_in_the_file(tmp_path: Path) -> None:
    policy = _load(tmp_path, "[parties]\nsecond = false\nthird = true\n")
    assert not policy.may_merge(["partner"], "second")
    assert policy.may_merge(["dmp"], "third")


def _load_sources(sources: dict[str, bool]) -> Policy:
    return parse_policy({"sources": {name: {"merge": ok} for name, ok in sources.items()}})


# -- fingerprint ---------------------------------------------------------------------------


def test_the_fingerprint_is_stable() -> None:
    assert Policy().fingerprint() == Policy().fingerprint()
    assert parse_policy({}).fingerprint() == Policy().fingerprint()
    assert len(Policy().fingerprint()) == 16


@pytest.mark.parametrize(
    "text",
    [
        "[types.email]\nlimit = 4\n",
        "[types.email]\npriority = 81\n",
        "[types.cookie]\nttl_days = 90\n",
        "[types.crm_id]\nlimit = 0\n",
        '[types.email]\nblocked = ["noreply@acme.com"]\n',
        "[types.email]\nblocked_patterns = ['.*@qa\\.acme\\.com']\n",
        "[types.loyalty_id]\nnew = true\n",
        "[parties]\nsecond = false\n",
        "[sources.feed]\nmerge = false\n",
        '[shared]\nanchor_types = ["crm_id"]\n',
        "[shared]\ntwo_hop = false\n",
        "[circuit_breaker]\nmax_identity_size = 10\n",
    ],
)
def test_the_fingerprint_changes_with_a_resolution_setting(tmp_path: Path, text: str) -> None:
    assert _load(tmp_path, text).fingerprint() != Policy().fingerprint()


@pytest.mark.parametrize(
    "text",
    [
        '[segment]\nuser_id_type = "email"\n',
        '[segment]\nprevious_id_type = "device"\n',
        '[segment.external_ids]\nloyalty = "crm_id"\n',
    ],
)
def test_the_fingerprint_ignores_the_segment_mapping(tmp_path: Path, text: str) -> None:
    policy = _load(tmp_path, text)
    assert policy.fingerprint() == Policy().fingerprint()


def test_the_fingerprint_ignores_a_type_table_that_restates_the_defaults(tmp_path: Path) -> None:
    # the same resolution settings must not call for a full recompute
    restated = _load(tmp_path, "[types.email]\nlimit = 5\npriority = 80\n")
    assert restated.rules == Policy().rules
    assert restated.fingerprint() == Policy().fingerprint()
