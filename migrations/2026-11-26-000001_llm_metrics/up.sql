-- What LLM-aware probes measure beyond latency. All optional: plain HTTP probes leave them NULL.
ALTER TABLE results ADD COLUMN ttfb_ms INTEGER;
ALTER TABLE results ADD COLUMN ttft_ms INTEGER;
ALTER TABLE results ADD COLUMN tokens_per_s REAL;
ALTER TABLE results ADD COLUMN model TEXT;
ALTER TABLE results ADD COLUMN prompt_tokens INTEGER;
ALTER TABLE results ADD COLUMN completion_tokens INTEGER;
