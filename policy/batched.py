"""Several prompts of one family decoded together: llama.cpp multi-sequence batched decoding.

Why: on a CPU, generating one token costs nearly as much as evaluating several, because the
weights are read once per step either way (here: ~98 prompt tokens/s but ~28 generated tokens/s
with two threads). Fact extraction does not depend on the bank, so the extractions of several
turns can run as parallel sequences of one context: each step decodes one token for every
sequence that is still going. The shared prefix (the system prompt and chat template) is
evaluated once, kept in the KV cache across calls, and shared by every sequence.

Each sequence gets its own grammar and a greedy pick on the same chat-template prompt as
llama-cpp-python's `create_chat_completion(temperature=0, grammar=...)`, so a sequence's output
is what the one-at-a-time call gives, up to floating-point differences in how the batch is split
(which can flip a near-tie between two tokens). The pick checks the grammar on the best token
first (policy/greedy.py)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from .greedy import grammar_sampler, whole_json


@dataclass
class _Seq:
    id: int
    pending: list[int]
    pos: int = 0
    out: list[int] = field(default_factory=list)
    done: bool = False
    cut: bool = False
    sampler: object = None


def common_prefix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = seqs[0][i]
        if any(s[i] != t for s in seqs[1:]):
            return i
    return n


def set_lora(ctx, adapter, scale: float) -> None:
    """Set a loaded LoRA adapter on a llama.cpp context: adapters are per context, so the
    runtime's own context and the batch context each get it."""
    import ctypes

    from llama_cpp import llama_cpp as C
    if C.llama_set_adapters_lora(ctx, (C.llama_adapter_lora_p_ctypes * 1)(adapter), 1, (ctypes.c_float * 1)(scale)):
        raise RuntimeError("llama.cpp refused to set the LoRA adapter on a context")


class BatchedJSON:
    """`run(prompts, grammar, head, max_tokens)` -> one (text, prompt_tokens, completion_tokens,
    cut_off) per tokenized prompt, decoded `n_seq` at a time in a context of its own beside the
    runtime's (the weights, and the LoRA adapter if `base` has one, are shared). `base`: a loaded
    Llama (model, tokenizer, adapter); `pick`: the runtime's greedy pick (one pair of
    vocabulary-sized scratch arrays)."""

    def __init__(self, base, pick, n_seq: int = 16, n_ctx: int = 8192, n_batch: int = 2048):
        from llama_cpp import _internals
        from llama_cpp import llama_cpp as C

        self.C, self.n_seq, self.n_batch, self.n_ctx = C, n_seq, n_batch, n_ctx
        self.base = base
        params = type(base.context_params).from_buffer_copy(base.context_params)
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, 512
        # one KV buffer shared by all sequences (seq_cp of the prefix needs it); flash attention
        # measured 1.2x faster here for 16 sequences (not for one long prompt: the LLM's contexts keep the default)
        params.n_seq_max, params.kv_unified, params.flash_attn_type = n_seq, True, C.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = _internals.LlamaContext(model=base._model, params=params, verbose=False)
        if getattr(base, "_lora_adapter", None) is not None:  # a LoRA is set per context: the runtime's too
            set_lora(self.ctx.ctx, base._lora_adapter, base.lora_scale)
        self.batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=n_seq, verbose=False)
        self.vocab, self.n_vocab = base._model.vocab, base.n_vocab()
        self.pick = pick
        self.cached: list[int] = []  # tokens of seq 0 kept in the KV cache (the shared prefix)
        self.evaluated = 0           # prompt tokens actually evaluated (the rest came from the cache)

    def run(self, prompts: list[list[int]], grammar: str, head: list[int], max_tokens: int = 256):
        """Groups of at most `n_seq` prompts whose tokens (and `max_tokens` each) fit the context;
        each prompt ends with `head`, the tokens of a known opening (the head of each text)."""
        out, group, used = [], [], 0
        for p in prompts:
            need = len(p) + max_tokens
            if group and (len(group) == self.n_seq or used + need > self.n_ctx):
                out += self._group(group, grammar, head, max_tokens)
                group, used = [], 0
            group.append(p)
            used += need
        return out + (self._group(group, grammar, head, max_tokens) if group else [])

    # ---- one group of at most n_seq prompts --------------------------------------------------
    def _group(self, prompts, grammar, head, max_tokens):
        C, mem = self.C, self.ctx.memory
        shared = min(common_prefix(prompts), min(len(p) for p in prompts) - 1)  # each keeps >= 1 token
        keep = common_prefix([self.cached, prompts[0][:shared]]) if self.cached else 0
        C.llama_memory_seq_rm(mem, -1, keep, -1)  # drop what the last group generated
        for s in range(1, self.n_seq):
            C.llama_memory_seq_rm(mem, s, -1, -1)
        seqs = [_Seq(i, p[shared:], pos=shared) for i, p in enumerate(prompts)]
        if shared > keep:  # evaluate the new part of the shared prefix once, in seq 0
            self._decode([_Seq(0, prompts[0][keep:shared], pos=keep)], sample=False)
        self.cached = prompts[0][:shared]
        for s in seqs[1:]:
            C.llama_memory_seq_cp(mem, 0, s.id, 0, shared)
        with contextlib.ExitStack() as stack:
            for s in seqs:
                s.sampler, s.out = stack.enter_context(grammar_sampler(self.vocab, grammar, head)), list(head)
            self.evaluated += sum(len(s.pending) for s in seqs)
            while any(not s.done for s in seqs):
                self._decode([s for s in seqs if not s.done], sample=True, max_tokens=max_tokens + len(head))
        return [(self._text(s.out), len(p), len(s.out) - len(head), s.cut) for s, p in zip(seqs, prompts)]

    def _text(self, tokens: list[int], errors: str = "replace") -> str:
        return self.base.detokenize(tokens).decode("utf-8", errors=errors)

    def _decode(self, seqs: list[_Seq], *, sample: bool, max_tokens: int = 0) -> None:
        """One llama_decode over as many pending tokens as fit; a sequence whose last pending
        token went in gets its next token sampled (or is finished)."""
        C, b = self.C, self.batch.batch
        while any(s.pending for s in seqs):
            b.n_tokens, last = 0, []
            for s in seqs:
                room = self.n_batch - b.n_tokens
                if not s.pending or room <= 0:
                    continue
                take, s.pending = s.pending[:room], s.pending[room:]
                for tok in take:
                    j = b.n_tokens
                    b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = tok, s.pos, 1, False
                    b.seq_id[j][0] = s.id
                    s.pos += 1
                    b.n_tokens += 1
                if not s.pending:
                    b.logits[b.n_tokens - 1] = sample
                    last.append((s, b.n_tokens - 1))
            self.ctx.decode(self.batch)
            if not sample:
                continue
            for s, idx in last:
                tok = self._pick(s.sampler, idx)
                if C.llama_vocab_is_eog(self.vocab, tok):
                    s.done = True
                    continue
                s.out.append(tok)
                if whole_json(self._text(s.out, "ignore")):  # greedy: only whitespace could follow
                    s.done = True
                elif len(s.out) >= max_tokens:
                    s.done = s.cut = True
                else:
                    s.pending = [tok]
            return

    def _pick(self, grammar, idx: int) -> int:
        import numpy as np
        logits = np.ctypeslib.as_array(self.C.llama_get_logits_ith(self.ctx.ctx, idx), shape=(self.n_vocab,))
        return self.pick(grammar, logits)
