//! Usage integrity (issue 14): what a relay bills that the request did not ask for.
//!
//! - `prompt_inflated`: a hidden system prompt added by the relay makes every prompt larger
//!   than the monitor's own. Each monitor learns its baseline `prompt_tokens` (the median of
//!   its first [`LEARN_FROM`] probes that report one); [`IN_A_ROW`] probes in a row above
//!   baseline + max(50, baseline) are flagged.
//! - `usage_inflated`: `completion_tokens` above the request's max tokens, or (for a model
//!   that did not reason first, and a reply read whole) above 2 per character of the reply + 16.

use serde_json::Value;

/// Probes whose median is the baseline.
pub const LEARN_FROM: usize = 5;
/// Probes above the bound in a row that are flagged.
pub const IN_A_ROW: u32 = 3;

/// One monitor's prompt baseline, learned and then watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptBaseline {
    learning: Vec<u64>,
    baseline: Option<u64>,
    above: u32,
}

impl PromptBaseline {
    /// The baseline, once learned.
    pub fn baseline(&self) -> Option<u64> {
        self.baseline
    }

    /// Takes a probe's reported prompt size; the detail of a `prompt_inflated` flag when it is
    /// the [`IN_A_ROW`]-th (or later) in a row above the bound.
    pub fn observe(&mut self, prompt_tokens: u64) -> Option<String> {
        let Some(baseline) = self.baseline else {
            self.learning.push(prompt_tokens);
            if self.learning.len() == LEARN_FROM {
                let mut sorted = std::mem::take(&mut self.learning);
                sorted.sort_unstable();
                self.baseline = Some(sorted[LEARN_FROM / 2]);
            }
            return None;
        };
        let bound = baseline.saturating_add(baseline.max(50));
        if prompt_tokens <= bound {
            self.above = 0;
            return None;
        }
        self.above = self.above.saturating_add(1);
        (self.above >= IN_A_ROW).then(|| {
            format!(
                "prompt_tokens {prompt_tokens} for {} probes in a row, above {bound} (baseline {baseline}): a prompt the relay added?",
                self.above
            )
        })
    }
}

/// The detail of a `usage_inflated` flag, if the reply's completion count is more than it can
/// be: above `max_tokens` (the request's), or above 2 per character of `reply` + 16 when the
/// model did not reason first (its count then holds only the reply) and the reply was read
/// whole (`whole`).
pub fn usage_inflated(
    completion_tokens: u64,
    reply: &str,
    whole: bool,
    reasoned: bool,
    max_tokens: Option<u64>,
) -> Option<String> {
    if let Some(max) = max_tokens.filter(|max| completion_tokens > *max) {
        return Some(format!("completion_tokens {completion_tokens} above the request's max tokens {max}"));
    }
    let chars = reply.chars().count() as u64;
    let most = chars.saturating_mul(2).saturating_add(16);
    (whole && !reasoned && completion_tokens > most).then(|| {
        format!("completion_tokens {completion_tokens} for a reply of {chars} characters (at most {most} expected)")
    })
}

/// Text events of a stream all within this of each other: it was not streamed as generated.
pub const BUFFERED_WITHIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The detail of a `buffered_stream` flag, if `answer` is a stream whose text events all came
/// within [`BUFFERED_WITHIN`] of each other (a whole JSON reply is no stream, and not flagged).
pub fn buffered(answer: &super::sse::Answer) -> Option<String> {
    let (first, last) = (answer.first_token_at?, answer.last_token_at?);
    let span = last.saturating_sub(first);
    (span <= BUFFERED_WITHIN).then(|| {
        format!(
            "{} text events within {} ms: the reply was generated before it was sent",
            answer.text_events,
            span.as_millis()
        )
    })
}

/// Where each family's request body names its output limit (JSON pointers).
pub const MAX_TOKENS_POINTERS: [&str; 4] =
    ["/max_tokens", "/max_completion_tokens", "/max_output_tokens", "/generationConfig/maxOutputTokens"];

/// The output limit a request body asks for, in whichever family's name: `max_tokens`,
/// `max_completion_tokens`, `max_output_tokens`, or Gemini's `generationConfig.maxOutputTokens`.
pub fn max_tokens_of(body: &str) -> Option<u64> {
    let value: Value = serde_json::from_str(body).ok()?;
    MAX_TOKENS_POINTERS.iter().find_map(|pointer| value.pointer(pointer).and_then(Value::as_u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_is_the_median_of_the_first_five_and_three_in_a_row_above_it_are_flagged() {
        let mut b = PromptBaseline::default();
        for p in [20, 22, 19, 400, 21] {
            assert_eq!(b.observe(p), None);
        }
        assert_eq!(b.baseline(), Some(21), "one odd probe among the first five does not move it");
        // The bound: 21 + max(50, 21) = 71.
        assert_eq!(b.observe(71), None);
        assert_eq!(b.observe(900), None);
        assert_eq!(b.observe(900), None);
        assert!(b.observe(900).unwrap().starts_with("prompt_tokens 900 for 3 probes in a row, above 71 (baseline 21)"));
        assert!(b.observe(900).is_some(), "still flagged while it lasts");
        assert_eq!(b.observe(25), None, "back to normal");
        assert_eq!(b.observe(900), None, "counting starts again");
        // A large baseline: the bound is twice it.
        let mut big = PromptBaseline::default();
        for _ in 0..5 {
            big.observe(1_000);
        }
        for _ in 0..3 {
            assert_eq!(big.observe(2_000), None);
        }
    }

    #[test]
    fn completion_counts_beyond_the_limit_or_the_reply_are_flagged() {
        assert!(usage_inflated(33, "42", true, false, Some(32)).unwrap().contains("above the request's max tokens 32"));
        assert_eq!(usage_inflated(16, "42", true, false, Some(16)), None);
        // "42": at most 2 x 2 + 16 = 20.
        assert_eq!(usage_inflated(20, "42", true, false, None), None);
        assert!(usage_inflated(21, "42", true, false, None).unwrap().contains("a reply of 2 characters (at most 20"));
        assert_eq!(usage_inflated(500, "42", true, true, Some(1_000)), None, "reasoning tokens are in the count");
        assert_eq!(usage_inflated(500, "42", false, false, None), None, "a reply not read whole");
        // Characters, not bytes: "四十二" is 3.
        assert_eq!(usage_inflated(22, "四十二", true, false, None), None);
    }

    #[test]
    fn a_stream_whose_text_came_within_100_ms_is_buffered() {
        use super::super::sse::Answer;
        use std::time::Duration;
        let stream = |first: u64, last: u64| Answer {
            first_token_at: Some(Duration::from_millis(first)),
            last_token_at: Some(Duration::from_millis(last)),
            text_events: 41,
            ..Answer::default()
        };
        assert!(buffered(&stream(900, 1_000)).unwrap().starts_with("41 text events within 100 ms"));
        assert_eq!(buffered(&stream(900, 1_001)), None);
        assert_eq!(buffered(&Answer::default()), None, "a whole reply is no stream");
    }

    #[test]
    fn the_limit_is_read_from_each_familys_request() {
        assert_eq!(max_tokens_of(r#"{"model":"m","max_tokens":32}"#), Some(32));
        assert_eq!(max_tokens_of(r#"{"max_completion_tokens":2000}"#), Some(2_000));
        assert_eq!(max_tokens_of(r#"{"max_output_tokens":64}"#), Some(64));
        assert_eq!(max_tokens_of(r#"{"generationConfig":{"maxOutputTokens":16}}"#), Some(16));
        assert_eq!(max_tokens_of(r#"{"model":"m"}"#), None);
        assert_eq!(max_tokens_of("not json"), None);
    }
}
