"""``meshctl apply --wait`` bookkeeping, on recorded shapes of the admin endpoint and of policy status: when it is
done, what fails it, what it lists as behind; a progress line rewritten in place on a terminal, plain lines
otherwise. (Real Envoy and a real apiserver: tests/envoy/mesh/test_apply_wait.py, tests/k8s/test_ci_pipeline.py.)"""

from __future__ import annotations

import io
from typing import Any

import pytest

from meshctl.apply import Progress, Reporter, local_progress, parse_duration, wait
from meshctl.apply_cluster import cluster_progress

KEY = "TrafficPolicy/default/backend"


def _policyz(generation: int, accepted: str = "True", rejected: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "generation": generation,
        "desired": {"default/a": "v2", "default/b": "v2"},
        "failed": {},
        "policies": {
            KEY: {
                "accepted": {
                    "status": accepted,
                    "reason": "Invalid" if accepted != "True" else "Accepted",
                    "message": "m",
                },
                "rejected": rejected or {},
                "rejected_reason": rejected or {},
            }
        },
    }


def _sync(a: str, b: str, nack: str = "") -> dict[str, Any]:
    types = {
        "type.googleapis.com/envoy.config.listener.v3.Listener": {"rejecting": bool(nack), "last_nack": {"error": nack}}
    }
    return {"default/a": {"acked_version": a, "types": {}}, "default/b": {"acked_version": b, "types": types}}


def test_not_done_until_translated_past_the_write_and_every_proxy_acked() -> None:
    assert local_progress(_policyz(3), _sync("v2", "v2"), [KEY], 3).waiting_for.startswith("the control plane")
    behind = local_progress(_policyz(4), _sync("v2", "v1"), [KEY], 3)
    assert not behind.done and behind.behind == ["default/b (acked v1, wants v2)"] and behind.in_sync == 1
    assert local_progress(_policyz(4), _sync("v2", "v2"), [KEY], 3).done


def test_a_nack_and_a_refused_policy_fail_with_the_proxy_and_the_reason() -> None:
    p = local_progress(
        _policyz(4, rejected={"default/b": "cannot bind"}), _sync("v2", "v1", "error adding listener"), [KEY], 3
    )
    assert "default/b rejected Listener: error adding listener" in p.failures
    assert f"{KEY} rejected by default/b: cannot bind" in p.failures
    refused = local_progress(_policyz(4, accepted="False"), _sync("v2", "v2"), [KEY], 3)
    assert refused.failures == [f"{KEY} is not accepted: Invalid: m"]


def _obj(observed: int, accepted: str, applied: int, affected: int, rejected: list | None = None) -> dict[str, Any]:
    return {
        "kind": "AccessPolicy",
        "metadata": {"namespace": "ns", "name": "p", "generation": 2},
        "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Accepted", "status": accepted, "reason": "R", "message": "M"}],
            "proxies": {"affected": affected, "applied": applied, "rejected": rejected or []},
        },
    }


def test_cluster_progress_follows_observed_generation_acceptance_and_receipts() -> None:
    assert cluster_progress([_obj(1, "True", 2, 2)], [2]).waiting_for.startswith("the operator to observe generation 2")
    assert cluster_progress([_obj(2, "True", 1, 2)], [2]).behind == ["AccessPolicy/ns/p: applied by 1 of 2 proxies"]
    assert cluster_progress([_obj(2, "True", 2, 2)], [2]).done
    nack = cluster_progress([_obj(2, "True", 1, 2, [{"proxy": "ns/b", "message": "address already in use"}])], [2])
    assert nack.failures == ["AccessPolicy/ns/p rejected by ns/b: address already in use"]
    assert cluster_progress([_obj(2, "False", 0, 0)], [2]).failures == ["AccessPolicy/ns/p is not accepted: R: M"]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_one_line_rewritten_on_a_terminal_and_plain_lines_otherwise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = iter([Progress(in_sync=0, total=2), Progress(in_sync=1, total=2), Progress(done=True, in_sync=2, total=2)])
    tty = _Stream(True)
    assert wait(lambda: next(steps), 10, Reporter(tty)) == 0
    assert tty.getvalue().count("\r\x1b[2K") == 3 and tty.getvalue().endswith("\n")
    steps = iter([Progress(in_sync=0, total=2), Progress(in_sync=0, total=2), Progress(done=True, in_sync=2, total=2)])
    plain = _Stream(False)
    assert wait(lambda: next(steps), 10, Reporter(plain)) == 0
    assert plain.getvalue().splitlines() == ["applied 0/2 proxies", "applied: 2/2 proxies in sync"]
    assert "in force" in capsys.readouterr().out


def test_a_timeout_lists_what_is_behind(capsys: pytest.CaptureFixture[str]) -> None:
    stuck = Progress(in_sync=1, total=2, behind=["default/b (acked v1, wants v2)"])
    assert wait(lambda: stuck, 0, Reporter(_Stream(False))) == 1
    err = capsys.readouterr().err
    assert "timed out after 0s" in err and "still behind: default/b (acked v1, wants v2)" in err


@pytest.mark.parametrize(("text", "seconds"), [("2m", 120), ("90s", 90), ("1.5", 1.5), ("500ms", 0.5), ("1h", 3600)])
def test_timeouts_read_like_kubectl(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
