"""A scripted stand-in for the LLM, for unit tests of ingest plumbing only (never for results)."""

import json
import re

from policy.runtime import LLM


class ScriptedLLM(LLM):
    def __init__(self):
        super().__init__(identity="fake:scripted")

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        found = re.search(r"New message, from [^:\n]*: (.*)$", user, re.S)
        if found:  # extraction: one fact per message, the message itself
            return json.dumps({"facts": [found.group(1).strip()]}), 10, 10
        if "New fact" in user:
            return '{"op": "ADD", "text": "%s"}' % user.rsplit(": ", 1)[1], 10, 10
        return '{"relevant": [1], "answer": "scripted"}', 10, 10
