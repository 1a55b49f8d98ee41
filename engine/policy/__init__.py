"""Authorization: policy decisions, approvals and the append-only audit log."""

from engine.policy.rules import (
    Action,
    Decision,
    Policy,
    PolicyError,
    decide,
    effective_risk,
    load_policy,
    load_policy_safe,
)

__all__ = ["Action", "Decision", "Policy", "PolicyError", "decide", "effective_risk", "load_policy", "load_policy_safe"]
