"""Where agents reach memstore from outside Python's store API: mem0's Python API
(`integrations.mem0.Memory`) and the MCP server (`integrations.mcp`), sharing one cache of banks,
stores and agents (`integrations.banks`). This layer sits above `policy/`: `add(infer=True)` and
the `observe`/`ask` tools run a memory manager and the Answer Agent."""
