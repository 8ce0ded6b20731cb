#!/usr/bin/env bash
# make bench: every figure beside raw QEMU measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/bench.py
python3 scripts/bench_endpoints.py
python3 scripts/bench_can.py
python3 scripts/bench_supervisor.py
python3 scripts/bench_gitops.py
python3 scripts/bench_replay.py
python3 scripts/bench_vm.py
