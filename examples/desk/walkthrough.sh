#!/usr/bin/env bash
# Tune memstore on your own workflow, on the desk scenario (README: "Your own workflow").
# Every step resumes when rerun. Usage: bash examples/desk/walkthrough.sh [RUN_FOLDER]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
M="$HERE/../../.venv/bin/memstore"
RUN=${1:-runs/desk}
mkdir -p "$RUN"
RULES=(--expire-after "price target=60" --expire-after "guidance=120")
# 1. the desk agent's own history: its chat, ingested as it happened (the untrained llm manager)
$M --db "$RUN/desk.db" --bank desk ingest "$HERE/desk_chat.jsonl" --policy llm
# 2. judge the policies on your questions: 30% held out, never trained on
$M bench own --db "$RUN/desk.db" --bank desk --qa "$HERE/desk_qa.jsonl" --val-fraction 0.3 \
    --policy heuristic,stack,llm "${RULES[@]}" --judge qwen --out "$RUN/own"
# 3. train the Answer Agent on the other 70%, from the bank's own log (the bank is never written)
$M train answer --from-bank desk --db "$RUN/desk.db" --qa "$HERE/desk_qa.jsonl" --val-fraction 0.3 \
    --epochs 1 --lr 1e-4 --out "$RUN/train-answer"
$M export "$RUN/train-answer" --gguf "$RUN/answer-desk.gguf"
# ... and the Memory Manager, rewarded by the answers its ops lead to on the same 70%
$M train manager --from-bank desk --db "$RUN/desk.db" --qa "$HERE/desk_qa.jsonl" --val-fraction 0.3 \
    --epochs 1 --lr 1e-4 --save-every 2 --val-examples 8 --out "$RUN/train-manager"
$M export "$RUN/train-manager" --gguf "$RUN/manager-desk.gguf"
# 4. judge again: the learned policy (both tuned adapters) beside the baselines, same held-out questions
$M bench own --db "$RUN/desk.db" --bank desk --qa "$HERE/desk_qa.jsonl" --val-fraction 0.3 \
    --policy heuristic,stack,llm,learned --adapter "$RUN/manager-desk.gguf" --answer-adapter "$RUN/answer-desk.gguf" \
    "${RULES[@]}" --judge qwen --out "$RUN/own"   # resumes: the baselines' answers are kept, learned is added
