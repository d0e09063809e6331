#!/usr/bin/env bash
# A tiny run of every benchmark workload (embedded broker, Kafka, Python
# Faust), so the benchmark command cannot rot. Prints the JSON lines; fails
# only if a measurement fails (targets are reported, never asserted).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec scripts/bench.sh --smoke
