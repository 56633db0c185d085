"""Greedy decoding under a GBNF grammar, the grammar checked on the best token first.

Why: llama.cpp's grammar sampler tests every token of the vocabulary (152k for Qwen) against the
grammar at every step, which costs about as much as the decoding step itself on this CPU. As
llama.cpp's own common sampler does, the best token is tried alone first, and the whole vocabulary
is filtered only when the grammar refuses it. The token picked is the same either way: when the
best token is allowed, it is the best allowed token.

Two more steps are saved per call: the output's known opening (`prompts.DECIDE_PREFIX`,
the one training's rollouts write into the prompt) is evaluated with the prompt instead of being
generated token by token, and decoding stops as soon as the output is one whole JSON value."""

from __future__ import annotations

import contextlib
import ctypes
import json


class GreedyPick:
    """`pick(grammar, logits)` -> the best token the grammar sampler `grammar` allows; the
    grammar then advances past it."""

    def __init__(self, n_vocab: int):
        from llama_cpp import _internals
        from llama_cpp import llama_cpp as C

        self.C = C
        self.one = C.llama_token_data_array(data=(C.llama_token_data * 1)(), size=1, selected=-1, sorted=False)
        self.full = _internals.LlamaTokenDataArray(n_vocab=n_vocab)

    def allows(self, grammar, tok: int) -> bool:
        cell = self.one.data[0]
        cell.id, cell.logit, cell.p = tok, 0.0, 0.0
        self.one.size, self.one.selected = 1, -1
        self.C.llama_sampler_apply(grammar, ctypes.byref(self.one))
        return cell.logit != float("-inf")

    def __call__(self, grammar, logits) -> int:
        C = self.C
        tok = int(logits.argmax())
        if not self.allows(grammar, tok):
            self.full.copy_logits(logits)
            C.llama_sampler_apply(grammar, ctypes.byref(self.full.candidates))
            tok = int(self.full.candidates_data.id[int(self.full.candidates_data.logit.argmax())])
        C.llama_sampler_accept(grammar, tok)
        return tok

    def allowed_prefix(self, vocab, grammar_text: str, tokens: list[int]) -> list[int]:
        """The longest head of `tokens` the grammar allows from its start. Checked token by token
        because llama.cpp aborts the process when a grammar accepts a token it does not allow."""
        with grammar_sampler(vocab, grammar_text) as grammar:
            for i, tok in enumerate(tokens):
                if not self.allows(grammar, tok):
                    return tokens[:i]
                self.C.llama_sampler_accept(grammar, tok)
        return list(tokens)


@contextlib.contextmanager
def grammar_sampler(vocab, grammar_text: str, accepted: list[int] = ()):
    """A llama.cpp grammar sampler, advanced past `accepted` (tokens it allows: see
    `GreedyPick.allowed_prefix`); freed on exit."""
    from llama_cpp import llama_cpp as C

    grammar = C.llama_sampler_init_grammar(vocab, grammar_text.encode(), b"root")
    if not grammar:
        raise ValueError("llama.cpp refused the grammar")
    try:
        for tok in accepted:
            C.llama_sampler_accept(grammar, tok)
        yield grammar
    finally:
        C.llama_sampler_free(grammar)


def only_greedy_pick(grammar, pick: GreedyPick):
    """A llama-cpp-python logits processor for one greedy (temperature 0) generation that leaves
    only the grammar's greedy pick standing, so the call needs no `grammar=` (which would filter
    the whole vocabulary at every step)."""
    import numpy as np
    from llama_cpp import LogitsProcessorList

    def only(_input_ids, logits):
        out = np.full(logits.shape, -np.inf, dtype=np.single)
        out[pick(grammar, logits)] = 0.0
        return out

    return LogitsProcessorList([only])


def whole_json(text: str) -> bool:
    """Whether `text` is already one whole JSON value. Under a JSON-schema grammar whose root is
    an object, all that decoding could add after the closing brace is whitespace before the end,
    so it stops there: the output parses the same, one decoding step earlier."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
