"""``meshctl explain`` offline: the rule, backends and access decision of one request, its exit codes, ``-o json``
and one-line errors for bad input. (That the prediction equals what Envoy does is proven in
tests/envoy/mesh/test_explain_matches_envoy.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh_operator.analysis.explain import normalize_path
from meshctl.cli import main

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "mesh")


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", "-f", EXAMPLE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_request_names_its_route_policy_backends_retries_and_deciding_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = explain(capsys, "--from", "shop/frontend", "--to", "backend:8080", "--path", "/api/items")
    assert code == 0
    assert "route     backend.shop/api  (TrafficPolicy/shop/backend@1)" in out
    assert "backend   backend.shop|8080|v1  80%  (backend-v1-a, backend-v1-b)" in out
    assert "rewrite   path /api/items -> /items" in out
    assert "retries   3 on 5xx,connect-failure,reset, per try 500 ms, budget 25% (min 5)" in out
    assert "access    ALLOW on shop/backend-v2: AccessPolicy/shop/backend@1#callers" in out
    assert out.rstrip().endswith("status    200 (upstream)")


def test_a_caller_no_rule_allows_is_denied_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(capsys, "--from", "shop/intruder", "--to", "backend.shop")
    assert code == 0
    assert "DENY  on shop/backend-v1-a: default-deny" in out
    assert "status    403 (rbac_denied)" in out


def test_a_deny_rule_wins_and_is_named_even_after_path_normalisation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(capsys, "--from", "shop/frontend", "--to", "shop/backend", "--path", "/x/..//admin/users")
    assert code == 0
    assert "path as routed: /admin/users" in out
    assert "AccessPolicy/shop/backend@1#no-admin" in out and "status    403" in out


def test_headers_select_the_route_and_json_output_carries_the_whole_prediction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = explain(capsys, "--from", "shop/loadgen", "--to", "backend", "-H", "X-Canary: true", "-o", "json")
    data = json.loads(out)
    assert code == 0
    assert data["route"] == "backend.shop/canary-header"
    assert [b["instances"] for b in data["backends"]] == [["shop/backend-v2"]]
    assert data["access"][0]["rule"] == "AccessPolicy/shop/backend@1#callers"
    assert data["allowed"] is True and data["status"] == 200


def test_a_redirect_and_a_partial_fault_are_reported_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = explain(capsys, "--from", "shop/frontend", "--to", "backend", "--path", "/v0/users?id=1")
    assert "redirect  301 to http://{host}/api/users?id=1" in out
    _, out, _ = explain(capsys, "--from", "shop/frontend", "--to", "backend", "--path", "/flaky")
    assert "note      50% of requests are answered 503 (fault)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "shop/nobody", "--to", "backend"], "unknown workload 'shop/nobody'"),
        (["--from", "shop/frontend", "--to", "nothing"], "unknown service 'nothing'"),
        (["--from", "shop/frontend", "--to", "backend:9999"], "has no port 9999"),
        (["--from", "shop/backend-v2", "--to", "frontend"], "does not call shop/frontend"),
        (["--from", "frontend", "--to", "backend"], "--from must be NAMESPACE/WORKLOAD"),
        (["--from", "shop/frontend", "--to", "backend", "-H", "novalue"], "-H must be NAME:VALUE"),
        (["--from", "shop/frontend", "--to", "backend", "--path", "api"], "--path must start with /"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = explain(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and err.startswith("meshctl: ")


def test_unreadable_files_and_broken_yaml_are_errors_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [\n")
    for path in (str(bad), str(tmp_path / "missing.yaml")):
        assert main(["explain", "-f", path, "--from", "a/b", "--to", "c"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("meshctl: ") and "Traceback" not in err


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("/a//b/./c/../d?x=1", ("/a/b/d", "x=1")), ("/..", ("/", "")), ("/a/b/..", ("/a/", "")), ("", ("/", ""))],
)
def test_paths_are_normalised_like_the_connection_manager_does(raw: str, expected: tuple[str, str]) -> None:
    assert normalize_path(raw) == expected
