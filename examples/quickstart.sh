#!/usr/bin/env bash
# A tour of the store on a real SQLite file: facts change over time, the bank is replayed as of
# two dates, a deletion is explained and undone, and similarity search runs as of a date
# (all-MiniLM-L6-v2, local). Usage: bash examples/quickstart.sh [DB]
set -euo pipefail
DB=${1:-quickstart.db}
M="$(dirname "$0")/../.venv/bin/memstore --db $DB --bank caroline"
rm -f "$DB" "$DB"-* "$DB".*
$M init
dog=$($M add "Caroline has a dog named Max" --at 2023-05-08 --reason "said in session 1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
home=$($M add "Caroline lives in Boston" --at 2023-05-08 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
$M add "Caroline is vegetarian" --at 2023-05-20
$M update "$dog" "Caroline has two dogs, Max and Bella" --at 2023-06-12 --reason "adopted a second dog"
$M delete "$home" --at 2023-07-01 --reason "moved to Denver"
$M add "Caroline lives in Denver" --at 2023-07-01
$M replay --as-of 2023-05-31
$M replay
$M history "$dog"
$M why "$home"
$M search "where does she live" --as-of 2023-06-01 -k 2
$M search "where does she live" -k 2
$M restore "$home" --reason "the move fell through"
$M verify
$M stats
