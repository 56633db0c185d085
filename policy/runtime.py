"""The LLM runtime: llama.cpp (llama-cpp-python) on a local GGUF file, optionally with a LoRA
adapter in GGUF, or any OpenAI-compatible HTTP endpoint (llama.cpp's own server, vLLM...).

Every call is constrained to a JSON schema (llama.cpp turns it into a GBNF grammar), so output is
always well-formed. `identity` names the exact model (file sha256 or endpoint + model name) and
goes into the actor of every event the policy causes."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memstore.cpu import threads
from memstore.errors import BadInput, MemstoreError

from .batched import set_lora
from .greedy import GreedyPick, grammar_sampler, only_greedy_pick, whole_json
from .models import ModelFile, resolve, sha256_file


class LLMError(MemstoreError):
    """The model could not produce a usable answer (unreachable endpoint, cut-off output...)."""


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0      # prompt tokens of every call
    prompt_evaluated: int = 0   # of those, the ones the model evaluated (the rest: reused KV cache)
    completion_tokens: int = 0
    seconds: float = 0.0

    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


@dataclass
class LLM:
    identity: str
    usage: Usage = field(default_factory=Usage)

    def json(self, system: str, user: str, schema: dict, *, max_tokens: int = 256,
             temperature: float = 0.0, seed: int | None = 0, prefix: str = "") -> dict:
        text, completion_tokens = self.complete(system, user, schema, max_tokens=max_tokens,
                                                temperature=temperature, seed=seed, prefix=prefix)
        return self._parse(text, completion_tokens)

    def complete(self, system: str, user: str, schema: dict, *, max_tokens: int = 256,
                 temperature: float = 0.0, seed: int | None = 0, prefix: str = "") -> tuple[str, int]:
        """The raw output text of one grammar-constrained call and its token count: what `json`
        parses, and what training's rollouts score and learn from (the same call, sampled).
        `prefix`: the output's known opening (`prompts.DECIDE_PREFIX`); a runtime that can
        (local greedy decoding) evaluates it with the prompt rather than generating it, and the
        text is the whole output either way."""
        t = time.perf_counter()
        self._evaluated = None  # a runtime that knows how much of the prompt it evaluated sets it
        text, prompt_tokens, completion_tokens = self._complete(system, user, schema, max_tokens, temperature, seed,
                                                                prefix)
        self._count(1, prompt_tokens, completion_tokens, time.perf_counter() - t, self._evaluated)
        return text, completion_tokens

    def json_many(self, system: str, users: list[str], schema: dict, *, max_tokens: int = 256,
                  prefix: str = "") -> list[dict | None]:
        """One greedy answer per user prompt, all with the same system prompt and schema; None
        where the output was cut off. This base version calls `json` one prompt after another;
        a local model overrides it with batched decoding."""
        out = []
        for user in users:
            try:
                out.append(self.json(system, user, schema, max_tokens=max_tokens, prefix=prefix))
            except LLMError:
                out.append(None)
        return out

    def _count(self, calls, prompt_tokens, completion_tokens, seconds, evaluated=None):
        self.usage.calls += calls
        self.usage.prompt_tokens += prompt_tokens
        self.usage.prompt_evaluated += prompt_tokens if evaluated is None else evaluated
        self.usage.completion_tokens += completion_tokens
        self.usage.seconds += seconds

    @staticmethod
    def _parse(text: str, completion_tokens: int) -> dict:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise LLMError(f"model output was cut off or not JSON after {completion_tokens} tokens: {text[:80]!r}") from None

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix) -> tuple[str, int, int]:
        raise NotImplementedError


# llama-cpp-python's schema converter lets a string hold any character but `"` and `\`, raw
# newlines and other control characters included, which JSON forbids: an answer that wrote a
# newline parsed as nothing. llama.cpp's own converter excludes them; so does this grammar.
_ANY_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def schema_gbnf(schema_json: str) -> str:
    """The GBNF grammar of a JSON schema whose strings are JSON strings (no raw control characters)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    text = json_schema_to_gbnf(schema_json)
    if _ANY_CHAR not in text and "char ::=" in text:
        raise LLMError("llama-cpp-python's JSON grammar changed its string rule: check schema_gbnf")
    return text.replace(_ANY_CHAR, _JSON_CHAR)


class LlamaCppLLM(LLM):
    """A GGUF model in-process. With `reuse_prefix` (default) each prompt family (system prompt)
    gets its own llama.cpp context, and llama-cpp-python evaluates only the part of a prompt after
    the prefix it shares with that context's previous call - the static instructions, since the
    manager alternates extraction and decision prompts. The weights are mmapped and shared by the
    OS; an extra context costs its KV cache. `reuse_prefix=False` evaluates every prompt from
    scratch (the bench's 'no caches' row)."""

    def __init__(self, model: ModelFile, adapter: str | Path | None = None, *, n_ctx: int = 4096,
                 n_threads: int | None = None, reuse_prefix: bool = True, batch: int = 16, lookup: int = 0):
        from llama_cpp import LlamaGrammar

        self._grammar = LlamaGrammar
        identity = f"llama.cpp:{model.name}@sha256:{(model.sha256 or sha256_file(model.path))[:12]}"
        kwargs: dict[str, Any] = {}
        if adapter is not None:
            adapter = Path(adapter)
            if not adapter.is_file():
                raise BadInput(f"adapter {adapter} does not exist")
            identity += f"+lora@sha256:{sha256_file(adapter)[:12]}"
        super().__init__(identity=identity)
        self.model, self.chat, self.reuse_prefix = model, model.chat, reuse_prefix
        self.adapter, self.batch, self._batched, self.lookup, self._pick = adapter, batch, None, lookup, None
        self._formatter, self._prefixes = None, {}
        n_threads = n_threads or threads()
        if lookup:  # speculative decoding by prompt lookup: drafts copied from the prompt, checked in one batch
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
            kwargs["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=lookup)
        self._kwargs = dict(model_path=str(model.path), n_ctx=n_ctx, n_threads=n_threads,
                            n_threads_batch=n_threads,  # prompt eval too: else it takes every core
                            verbose=False, seed=0, **kwargs)
        self._contexts: dict[str, Any] = {}
        self._grammars: dict[str, Any] = {}
        _OPEN[id(self)] = self
        self._context("")  # load now: a bad model file fails here, not in the middle of an ingest

    def close(self) -> None:
        """Free the llama.cpp contexts (and the adapter's copy of the weights) now, not at GC."""
        for ctx in self._contexts.values():
            ctx.close()
        self._contexts.clear()

    def _context(self, system: str):
        key = system if self.reuse_prefix else ""
        if key not in self._contexts:
            from llama_cpp import Llama
            with _quiet_stderr():
                self._contexts[key] = llama = Llama(**self._kwargs)
                if self.adapter is not None:
                    _set_adapter(llama, self.adapter)
        return self._contexts[key]

    def _greedy_pick(self, llama) -> GreedyPick:
        if self._pick is None:
            self._pick = GreedyPick(llama.n_vocab())
        return self._pick

    def grammar(self, schema: dict):
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            with _quiet_stderr():
                self._grammars[key] = self._grammar.from_string(schema_gbnf(key), verbose=False)
        return self._grammars[key]

    def json_many(self, system, users, schema, *, max_tokens=256, prefix=""):
        """Batched decoding (policy/batched.py), `batch` prompts at a time, with the runtime's
        LoRA adapter if it has one; one by one when `batch` is 1."""
        if self.batch <= 1 or len(users) <= 1:
            return super().json_many(system, users, schema, max_tokens=max_tokens, prefix=prefix)
        if self._batched is None:
            from .batched import BatchedJSON
            with _quiet_stderr():
                base = self._context("")
                self._batched = BatchedJSON(base, self._greedy_pick(base), n_seq=self.batch)
        t, before = time.perf_counter(), self._batched.evaluated
        grammar = self.grammar(schema)._grammar
        head = self.prefix_tokens(grammar, prefix)
        results = self._batched.run([self.prompt_tokens(system, u) + head for u in users], grammar, head, max_tokens)
        self._count(len(users), sum(r[1] for r in results), sum(r[2] for r in results), time.perf_counter() - t,
                    evaluated=self._batched.evaluated - before)
        out = []
        for text, _, completion, cut in results:
            try:
                out.append(None if cut else self._parse(text, completion))
            except LLMError:
                out.append(None)
        return out

    def prompt_tokens(self, system: str, user: str) -> list[int]:
        """One call's prompt as llama-cpp-python's `create_chat_completion` builds it: the GGUF's
        chat template with the generation prompt (a base model: plain text ending in 'JSON:')."""
        base = self._context("")
        if not self.chat:
            return base.tokenize(f"{system}\n\n{user}\n\nJSON:".encode())
        if self._formatter is None:
            from llama_cpp import llama_chat_format
            eos, bos = base.token_eos(), base.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=base.metadata["tokenizer.chat_template"],
                eos_token=base._model.token_get_text(eos) if eos != -1 else "",
                bos_token=base._model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])
        r = self._formatter(messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
        return base.tokenize(r.prompt.encode("utf-8"), add_bos=not r.added_special, special=True)

    def prefix_tokens(self, grammar_text: str, prefix: str) -> list[int]:
        """`prefix` as tokens, cut before the first one the grammar would refuse."""
        if not prefix:
            return []
        key = (grammar_text, prefix)
        if key not in self._prefixes:
            base = self._context("")
            tokens = base.tokenize(prefix.encode(), add_bos=False, special=False)
            self._prefixes[key] = self._greedy_pick(base).allowed_prefix(base._model.vocab, grammar_text, tokens)
        return self._prefixes[key]

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix):
        llama = self._context(system)
        if not self.reuse_prefix:
            llama.reset()
        if seed is not None:
            llama.set_seed(seed)
        from llama_cpp import llama_cpp as C
        evaluated = C.llama_perf_context(llama._ctx.ctx).n_p_eval
        grammar = self.grammar(schema)
        if temperature == 0 and not self.lookup:  # greedy: the grammar checked on the best token first
            text, prompt_tokens, completion_tokens = self._greedy(llama, system, user, grammar._grammar, max_tokens, prefix)
        else:  # sampled (training's rollouts) or drafts checked in a batch: the grammar on every token
            if self.chat:
                out = llama.create_chat_completion(
                    [{"role": "system", "content": system}, {"role": "user", "content": user}],
                    temperature=temperature, max_tokens=max_tokens, grammar=grammar)
                text = out["choices"][0]["message"]["content"]
            else:  # a base model: plain text prompt, same grammar
                out = llama.create_completion(self.prompt_tokens(system, user), temperature=temperature,
                                              max_tokens=max_tokens, grammar=grammar)
                text = out["choices"][0]["text"]
            prompt_tokens, completion_tokens = out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]
        self._evaluated = C.llama_perf_context(llama._ctx.ctx).n_p_eval - evaluated
        return text, prompt_tokens, completion_tokens

    def _greedy(self, llama, system, user, grammar_text, max_tokens, prefix):
        """One greedy call driven token by token (policy/greedy.py): the prefix goes in with the
        prompt, and decoding stops at the end of the JSON value, before the closing token is
        evaluated."""
        from llama_cpp import llama_cpp as C
        prompt, head = self.prompt_tokens(system, user), self.prefix_tokens(grammar_text, prefix)
        out = list(head)
        with grammar_sampler(llama._model.vocab, grammar_text, head) as grammar:
            for tok in llama.generate(prompt + head, temp=0.0,
                                      logits_processor=only_greedy_pick(grammar, self._greedy_pick(llama))):
                if C.llama_vocab_is_eog(llama._model.vocab, tok):
                    break
                out.append(tok)
                if whole_json(llama.detokenize(out).decode("utf-8", errors="ignore")) or len(out) - len(head) >= max_tokens:
                    break
        return llama.detokenize(out).decode("utf-8", errors="replace"), len(prompt) + len(head), len(out) - len(head)


class EndpointLLM(LLM):
    """An OpenAI-compatible chat endpoint; the schema goes as `response_format`."""

    def __init__(self, url: str, model: str = "default", api_key: str | None = None, timeout: float = 120):
        super().__init__(identity=f"endpoint:{url.rstrip('/')}#{model}")
        self.url = url.rstrip("/")
        if not self.url.endswith("/chat/completions"):
            self.url += "/v1/chat/completions" if not self.url.endswith("/v1") else "/chat/completions"
        self.model, self.timeout = model, timeout
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix):
        body = {"model": self.model, "temperature": temperature, "max_tokens": max_tokens, "seed": seed,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                out = json.load(resp)
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise LLMError(f"endpoint {self.url} failed: {exc}") from None
        usage = out.get("usage") or {}
        return (out["choices"][0]["message"]["content"], usage.get("prompt_tokens", 0),
                usage.get("completion_tokens", 0))


_OPEN: weakref.WeakValueDictionary[int, LlamaCppLLM] = weakref.WeakValueDictionary()


@atexit.register
def _close_open_models() -> None:
    """Free the models still loaded when Python exits, while llama_cpp's module is intact: left to
    the garbage collector at shutdown, Llama.__del__ finds its C functions gone and prints a
    TypeError traceback for each."""
    for llm in list(_OPEN.values()):
        llm.close()


def load(model: str | None = None, adapter: str | Path | None = None, endpoint: str | None = None,
         **kwargs) -> LLM:
    """`--model` (name or GGUF path), `--adapter` (LoRA GGUF), or `--endpoint URL` (model name via
    `--model`, default 'default')."""
    if endpoint:
        if adapter:
            raise BadInput("--adapter applies to local models, not to --endpoint")
        return EndpointLLM(endpoint, model or "default")
    return LlamaCppLLM(resolve(model), adapter, **kwargs)


def _set_adapter(llama, path: Path) -> None:
    """Apply a LoRA GGUF to a loaded Llama's context, as `Llama(lora_path=...)` does, but with the
    weights still memory-mapped: llama-cpp-python turns mmap off whenever it is given a LoRA (a
    leftover from LoRAs merged into the weights; llama.cpp now applies them at run time), which
    made every context of every adapter a private copy of the model. Mapped, all of them share
    the one page cache. The adapter is freed with the Llama (its exit stack)."""
    from llama_cpp import llama_cpp as C
    adapter = C.llama_adapter_lora_init(llama._model.model, str(path).encode())
    if adapter is None:
        raise BadInput(f"{path} is not a LoRA adapter for {llama.model_path}")
    llama._stack.callback(C.llama_adapter_lora_free, adapter)
    llama._lora_adapter, llama.lora_scale = adapter, 1.0  # where Llama keeps its own (batched.py reads them)
    set_lora(llama._ctx.ctx, adapter, 1.0)


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp prints its loading log on the C stderr even with verbose=False; hide it."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)
