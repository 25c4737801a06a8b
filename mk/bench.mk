# Benchmarks beyond `make bench` (see bench/*.py docstrings). Each writes bench/results/<bench>.json.
.PHONY: bench-dataplane bench-serialize bench-report

# fortio is built from the Go module proxy into ~/.cache/meshwork/fortio (scripts/bench/build-fortio.sh, nice 10).
bench-dataplane: install
	$(BIN)/python bench/dataplane.py --variants default,no-access-log,concurrency-1,lean

bench-serialize: install .venv-upb/.installed
	$(BIN)/python bench/translate.py --only serialize --sizes 1000x5 --repeats 7 --baseline 5fda04e

# The benchmark table, regenerated from bench/results/*.json.
bench-report:
	$(BIN)/python bench/report.py --write README.md
