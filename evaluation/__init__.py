"""Evaluation: how memory policies are measured. `datasets` (LoCoMo, LongMemEval
format), `metrics` (LoCoMo's official F1, BLEU-1), `judge` (LLM-as-a-judge), `harness` (policies
side by side, resumable, behind `memstore bench`), `paired` (paired bootstrap comparisons).
Layers: memstore <- policy <- evaluation <- trainer <- cli."""
