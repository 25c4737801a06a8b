"""Capture goldens: the init container's arguments -> the iptables-restore input it applies.

Each case is ``tests/golden/capture/<case>.args`` (one argument per line, as the injector writes them into the
init container's command); the expected rules are ``<case>.rules``. Rewrite with ``--update-golden``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_operator.inject.capture import CaptureSpec, parser, rules, spec_from_args

CASES_DIR = Path(__file__).parent / "capture"
CASES = sorted(p.stem for p in CASES_DIR.glob("*.args"))


def spec_of(case: str) -> CaptureSpec:
    args = [a for a in (CASES_DIR / f"{case}.args").read_text().splitlines() if a]
    return spec_from_args(parser().parse_args(args))


@pytest.mark.parametrize("case", CASES)
def test_capture_rules_match_golden(case: str, update_golden: bool) -> None:
    text = rules(spec_of(case))
    expected = CASES_DIR / f"{case}.rules"
    if update_golden:
        expected.write_text(text)
        return
    assert expected.read_text() == text, f"{case} differs; rerun with --update-golden and review"


@pytest.mark.parametrize("case", CASES)
def test_a_spec_survives_the_trip_through_the_init_containers_command_line(case: str) -> None:
    spec = spec_of(case)
    assert spec_from_args(parser().parse_args(spec.args())) == spec
