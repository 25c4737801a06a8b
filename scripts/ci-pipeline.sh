#!/usr/bin/env bash
# The CI pipeline of docs/ci-pipelines.md as a plain shell script (tests/k8s/test_ci_pipeline.py runs it).
#
#   scripts/ci-pipeline.sh pull-request POLICY_DIR   validate, analyse against the cluster, diff (-> $DIFF_OUT)
#   scripts/ci-pipeline.sh merge POLICY_DIR          apply --wait: fails unless every affected proxy ACKed
#
# Environment: MESHCTL (default: meshctl), KUBECONFIG, MESHCTL_CONTEXT, MESHCTL_NAMESPACE (policies without a
# namespace), TIMEOUT (default 2m), DIFF_OUT (default meshctl-diff.txt).
set -euo pipefail

usage="usage: $0 pull-request|merge POLICY_DIR"
stage="${1:?$usage}"
dir="${2:?$usage}"
read -r -a meshctl <<< "${MESHCTL:-meshctl}"
target=()
if [[ -n "${KUBECONFIG:-}" ]]; then target+=(--kubeconfig "$KUBECONFIG"); fi
if [[ -n "${MESHCTL_CONTEXT:-}" ]]; then target+=(--context "$MESHCTL_CONTEXT"); fi
if [[ -n "${MESHCTL_NAMESPACE:-}" ]]; then target+=(-n "$MESHCTL_NAMESPACE"); fi
diff_out="${DIFF_OUT:-meshctl-diff.txt}"

case "$stage" in
  pull-request)
    echo "::group::validate"
    "${meshctl[@]}" validate -f "$dir"
    echo "::endgroup::"
    echo "::group::check (mesh analysis against the cluster)"
    "${meshctl[@]}" check -f "$dir" "${target[@]}"
    echo "::endgroup::"
    echo "::group::diff"
    rc=0
    "${meshctl[@]}" diff -f "$dir" --against cluster "${target[@]}" > "$diff_out" || rc=$?
    cat "$diff_out"
    echo "::endgroup::"
    case "$rc" in
      0) echo "no change to any proxy" ;;
      1) echo "changes shown above (and in $diff_out)" ;;
      *) echo "meshctl diff failed ($rc)" >&2; exit "$rc" ;;
    esac
    ;;
  merge)
    "${meshctl[@]}" apply -f "$dir" --wait --timeout "${TIMEOUT:-2m}" "${target[@]}"
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
