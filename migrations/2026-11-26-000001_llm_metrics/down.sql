ALTER TABLE results DROP COLUMN completion_tokens;
ALTER TABLE results DROP COLUMN prompt_tokens;
ALTER TABLE results DROP COLUMN model;
ALTER TABLE results DROP COLUMN tokens_per_s;
ALTER TABLE results DROP COLUMN ttft_ms;
ALTER TABLE results DROP COLUMN ttfb_ms;
