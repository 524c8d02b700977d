//! What a probe measured beyond its status: times, output speed, the model and the usage it
//! reported.

use std::time::Duration;

use super::outcome::Outcome;
use super::sse::Answer;

/// What a probe measured beyond latency, for storage and the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurements {
    /// Opening the connection, when the probe had to (DNS, TCP, TLS).
    pub connect_ms: Option<u32>,
    pub ttfb_ms: Option<u32>,
    pub ttft_ms: Option<u32>,
    pub tokens_per_s: Option<f64>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// What the reply's usage cost at the monitor's price, nano-USD (1e-9 USD).
    pub cost_nanos: Option<u64>,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Output speed: completion tokens (from the reported usage, else estimated from the text at
/// four characters a token) over the generation time (after the first token for a stream,
/// else the whole latency).
pub fn metrics(outcome: &Outcome, answer: Option<&Answer>) -> Measurements {
    let Outcome::Response { ttfb, latency, .. } = outcome else { return Measurements::default() };
    let mut m = Measurements { ttfb_ms: Some(millis(*ttfb)), ..Measurements::default() };
    let Some(answer) = answer else { return m };
    m.ttft_ms = answer.first_token_at.map(millis);
    m.model = answer.model.clone();
    m.prompt_tokens = answer.prompt_tokens;
    m.completion_tokens = answer.completion_tokens;
    let tokens = answer.completion_tokens.or_else(|| {
        let chars = answer.text.chars().count() as u64;
        (chars > 0).then(|| chars.div_ceil(4))
    });
    let generation = match answer.first_token_at {
        Some(first) if latency.saturating_sub(first) >= Duration::from_millis(1) => latency.saturating_sub(first),
        _ => *latency,
    };
    if let Some(tokens) = tokens.filter(|_| !generation.is_zero()) {
        m.tokens_per_s = Some((tokens as f64 / generation.as_secs_f64() * 10.0).round() / 10.0);
    }
    m
}
