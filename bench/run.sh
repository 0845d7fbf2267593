#!/usr/bin/env bash
# Runs the benchmarks in interleaved rounds (every variant once per round, so machine drift hits all
# of them alike) and writes the medians and ratios as Markdown.
#
#   ./run.sh [rounds] [benchtime] [pattern]     defaults: 5 rounds, 1s per benchmark, every benchmark
#
# pattern is go test's -bench regular expression: ./run.sh 9 2s Conflict runs only BenchmarkConflict.
#
# Databases: SQLite in a temporary directory; PostgreSQL and MariaDB/MySQL at OPTLOCK_POSTGRES_DSN and
# OPTLOCK_MYSQL_DSN (the tests' defaults when unset). Output: results/raw.txt, results/report.md and, when
# BenchmarkBulk ran, results/bulk-ratios.svg (its time ratio to the unchecked floor against N, per database).
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
benchtime=${2:-1s}
pattern=${3:-.}
mkdir -p results
go test -c -o results/bench.test .
: > results/raw.txt
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds" >&2
  ./results/bench.test -test.run '^$' -test.bench "$pattern" -test.benchtime "$benchtime" -test.count 1 | tee -a results/raw.txt >&2
done
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
  echo "$(go version | cut -d' ' -f3), $rounds interleaved rounds, -benchtime $benchtime, -bench '$pattern'; medians."
  echo
  go run ./report -svg results/bulk-ratios.svg < results/raw.txt
} > results/report.md
echo "results/report.md written (and results/bulk-ratios.svg when BenchmarkBulk ran)" >&2
