"""A policy's status from its translation outcome and delivery receipt: conditions, receipts, idempotence."""

from __future__ import annotations

from mesh_operator.kube.status import policy_status, unchanged, with_transition_times
from mesh_operator.translate import PolicyOutcome
from mesh_operator.translate.status import CONFLICTED, INVALID, TARGET_NOT_FOUND
from mesh_operator.validation.violations import Violation


def conds(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_an_accepted_policy_in_three_proxies_two_of_which_acked() -> None:
    receipt = {"proxies": 3, "applied": 2, "rejected": {"shop/b": "cannot bind"}}
    status = policy_status(PolicyOutcome(4), receipt, generation=4)
    assert conds(status) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
        "Programmed": ("True", "Programmed"),
    }
    assert status["observedGeneration"] == 4
    assert all(c["observedGeneration"] == 4 for c in status["conditions"])
    assert status["proxies"] == {
        "affected": 3,
        "applied": 2,
        "rejected": [{"proxy": "shop/b", "message": "cannot bind"}],
        "summary": "2/3",
    }


def test_a_missing_target_is_resolved_refs_false_with_the_name_and_the_policy_stays_accepted() -> None:
    outcome = PolicyOutcome(1)
    outcome.reject(TARGET_NOT_FOUND, Violation("spec.targetRef", "service shop/reviews does not exist"))
    status = policy_status(outcome, None, generation=1)
    assert conds(status)["Accepted"] == ("True", "Accepted")
    assert conds(status)["ResolvedRefs"] == ("False", "TargetNotFound")
    assert conds(status)["Programmed"][0] == "False"
    resolved = next(c for c in status["conditions"] if c["type"] == "ResolvedRefs")
    assert resolved["message"] == "spec.targetRef: service shop/reviews does not exist"


def test_invalid_and_conflicted_policies_are_not_accepted_and_say_why() -> None:
    invalid = PolicyOutcome(2)
    invalid.reject(INVALID, Violation("spec.rules[0].timeouts.request", "invalid duration '5'"))
    status = policy_status(invalid, None, generation=2)
    accepted = status["conditions"][0]
    assert (accepted["status"], accepted["reason"]) == ("False", "Invalid")
    assert "spec.rules[0].timeouts.request" in accepted["message"]
    conflicted = PolicyOutcome(1)
    conflicted.reject(CONFLICTED, Violation("spec.targetRef", "service shop/b already has TrafficPolicy old"))
    assert conds(policy_status(conflicted, None, generation=1))["Accepted"] == ("False", "Conflicted")


def test_a_policy_no_proxy_carries_is_not_programmed() -> None:
    status = policy_status(PolicyOutcome(1), {"proxies": 0, "applied": 0, "rejected": {}}, generation=1)
    assert conds(status)["Programmed"] == ("False", "NoProxies")


def test_a_policy_whose_schema_is_invalid_is_reported_from_its_violations() -> None:
    status = policy_status(None, None, generation=3, schema_violations=[Violation("spec.foo", "unknown field")])
    assert conds(status)["Accepted"] == ("False", "Invalid")
    assert "spec.foo: unknown field" in status["conditions"][0]["message"]


def test_transition_times_are_kept_while_a_condition_holds_so_an_unchanged_status_is_not_rewritten() -> None:
    first = with_transition_times(policy_status(PolicyOutcome(1), {"proxies": 1, "applied": 0}, generation=1), {})
    again = policy_status(PolicyOutcome(1), {"proxies": 1, "applied": 0}, generation=1)
    assert unchanged(again, first)
    assert with_transition_times(again, first)["conditions"] == first["conditions"]
    acked = policy_status(PolicyOutcome(1), {"proxies": 1, "applied": 1}, generation=1)
    assert not unchanged(acked, first)


def test_long_nack_texts_are_bounded() -> None:
    receipt = {"proxies": 50, "applied": 0, "rejected": {f"ns/p{i}": "x" * 10_000 for i in range(50)}}
    proxies = policy_status(PolicyOutcome(1), receipt, generation=1)["proxies"]
    assert len(proxies["rejected"]) == 20
    assert all(len(r["message"]) <= 1024 for r in proxies["rejected"])
