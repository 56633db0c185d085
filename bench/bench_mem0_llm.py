"""What mem0's calls cost on the backbone, with and without flash attention.

mem0's row costs ~40 s a turn here: its extraction system prompt is ~8k tokens, so every call
attends over a long context, and the server keeps that prefix in its KV cache between calls. This
runs mem0's own prompt (its system prompt and user-prompt builder, mem0's json_object response
format) on a few made-up messages through llama-cpp-python, the way its OpenAI-compatible server
does, once with the server's defaults and once with flash attention, in one run, and prints the
first call (the prefix evaluated) and the later ones (prefix reused) for each. Usage:
    python bench/bench_mem0_llm.py [--calls 3] [--max-tokens 256]"""

from __future__ import annotations

import argparse
import gc
import time

MESSAGES = [  # made up, LoCoMo-like in shape: a dated line from one of two speakers
    "[2023-05-02] Ana: I finally adopted a dog last week, a three-year-old beagle called Pepper.",
    "[2023-05-02] Ben: That's great! I started a pottery class on Tuesdays at the community center.",
    "[2023-05-03] Ana: Pepper hates the rain, so our walks are short. I'm moving to Lisbon in June.",
    "[2023-05-03] Ben: Lisbon! My sister lives there; she teaches chemistry at a high school.",
]


def prompts(n: int) -> list[list[dict]]:
    from mem0.configs.prompts import ADDITIVE_EXTRACTION_PROMPT, generate_additive_extraction_prompt
    out = []
    for i in range(n):
        user = generate_additive_extraction_prompt(
            existing_memories=[], new_messages=[{"role": "user", "content": MESSAGES[i % len(MESSAGES)]}],
            last_k_messages=[{"role": "user", "content": m} for m in MESSAGES[:i % len(MESSAGES)]])
        out.append([{"role": "system", "content": ADDITIVE_EXTRACTION_PROMPT}, {"role": "user", "content": user}])
    return out


def run(path: str, flash: bool, calls: list[list[dict]], max_tokens: int) -> dict:
    from llama_cpp import Llama

    from evaluation.mem0_peer import CTX
    from memstore.cpu import threads
    llm = Llama(model_path=path, n_ctx=CTX, n_threads=threads(), n_threads_batch=threads(), flash_attn=flash,
                verbose=False)
    times, gen, prompt = [], [], []
    for messages in calls:
        t = time.perf_counter()
        out = llm.create_chat_completion(messages=messages, response_format={"type": "json_object"},
                                         max_tokens=max_tokens, temperature=0.0, seed=0)
        times.append(time.perf_counter() - t)
        gen.append(out["usage"]["completion_tokens"])
        prompt.append(out["usage"]["prompt_tokens"])
    del llm
    gc.collect()
    return {"flash": flash, "times": times, "generated": gen, "prompt": prompt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3, help="calls per configuration (the first evaluates the prefix)")
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    if args.calls < 2:
        raise SystemExit("bench_mem0_llm: --calls must be at least 2 (the first only evaluates the prefix)")
    from policy.models import resolve
    path = str(resolve(None).path)
    calls = prompts(args.calls)
    results = [run(path, flash, calls, args.max_tokens) for flash in (False, True)]
    for r in results:
        later = r["times"][1:]
        print(f"flash attention {'on ' if r['flash'] else 'off'}: first call {r['times'][0]:.1f} s "
              f"({r['prompt'][0]} prompt tokens, {r['generated'][0]} generated); later calls "
              f"{sum(later) / len(later):.1f} s on average ({sum(r['generated'][1:])} tokens generated: "
              f"{sum(r['generated'][1:]) / sum(later):.1f} tok/s with the prompt's new part)")
    base, fa = (sum(r["times"][1:]) for r in results)
    same = results[0]["generated"] == results[1]["generated"]
    print(f"later calls, off / on: {base / fa:.2f}x; generated token counts {'equal' if same else 'differ'}")


if __name__ == "__main__":
    main()
