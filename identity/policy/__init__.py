"""The linking policy (``IDGRAPH_POLICY``): its values (:mod:`identity.policy.model`) and the
TOML file they come from (:mod:`identity.policy.parse`)."""

from identity.policy.model import (
    DEFAULT_EXTERNAL_ID_TYPES,
    DEFAULT_MAX_IDENTITY_SIZE,
    DEFAULT_RULES,
    PhoneCheck,
    Policy,
    ProfileRules,
    TraitRule,
    TypeRule,
)
from identity.policy.parse import load_policy, parse_policy

__all__ = [
    "DEFAULT_EXTERNAL_ID_TYPES",
    "DEFAULT_MAX_IDENTITY_SIZE",
    "DEFAULT_RULES",
    "PhoneCheck",
    "Policy",
    "ProfileRules",
    "TraitRule",
    "TypeRule",
    "load_policy",
    "parse_policy",
]
