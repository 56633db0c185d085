"""Greedy decoding under a GBNF grammar, the grammar checked on the best token first.

Why: llama.cpp's grammar sampler tests every token of the vocabulary (152k for Qwen) against the
grammar at every step, which costs about as much as the decoding step itself on this CPU. As
llama.cpp's own common sampler does, the best token is tried alone first, and the whole vocabulary
is filtered only when the grammar refuses it. The token picked is the same either way: when the
best token is allowed, it is the best allowed token."""

from __future__ import annotations

import contextlib
import ctypes


class GreedyPick:
    """`pick(grammar, logits)` -> the best token the grammar sampler `grammar` allows; the
    grammar then advances past it."""

    def __init__(self, n_vocab: int):
        from llama_cpp import _internals
        from llama_cpp import llama_cpp as C

        self.C = C
        self.one = C.llama_token_data_array(data=(C.llama_token_data * 1)(), size=1, selected=-1, sorted=False)
        self.full = _internals.LlamaTokenDataArray(n_vocab=n_vocab)

    def __call__(self, grammar, logits) -> int:
        C = self.C
        tok = int(logits.argmax())
        cell = self.one.data[0]
        cell.id, cell.logit, cell.p = tok, float(logits[tok]), 0.0
        self.one.size, self.one.selected = 1, -1
        C.llama_sampler_apply(grammar, ctypes.byref(self.one))
        if cell.logit == float("-inf"):
            self.full.copy_logits(logits)
            C.llama_sampler_apply(grammar, ctypes.byref(self.full.candidates))
            tok = int(self.full.candidates_data.id[int(self.full.candidates_data.logit.argmax())])
        C.llama_sampler_accept(grammar, tok)
        return tok


@contextlib.contextmanager
def only_greedy_pick(llama, grammar_text: str, pick: GreedyPick):
    """A llama-cpp-python logits processor for one greedy (temperature 0) generation on `llama`
    that leaves only the grammar's greedy pick standing, so the call needs no `grammar=`
    (which would filter the whole vocabulary at every step)."""
    import numpy as np
    from llama_cpp import LogitsProcessorList
    from llama_cpp import llama_cpp as C

    grammar = C.llama_sampler_init_grammar(llama._model.vocab, grammar_text.encode(), b"root")
    if not grammar:
        raise ValueError("llama.cpp refused the grammar")

    def only(_input_ids, logits):
        out = np.full(logits.shape, -np.inf, dtype=np.single)
        out[pick(grammar, logits)] = 0.0
        return out

    try:
        yield LogitsProcessorList([only])
    finally:
        C.llama_sampler_free(grammar)
