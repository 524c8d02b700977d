//! What a probe costs (issue 14): a price table (USD per million tokens: input, output, cached
//! input) with built-in defaults and the config's `prices:` over them, looked up by the
//! monitor's `model` with the model-identity rules (a name and its snapshots are one model),
//! and the cost of a reply's usage, in nano-USD (1e-9 USD), never rounded coarser.
//!
//! What the families report, and what is priced how:
//! - OpenAI (chat and Responses) and Gemini report the whole prompt, cached tokens included
//!   (`prompt_tokens_details.cached_tokens`, `input_tokens_details.cached_tokens`,
//!   `cachedContentTokenCount`): uncached input is the prompt minus the cached part.
//! - Anthropic reports `input_tokens` without cache reads (`cache_read_input_tokens`) or cache
//!   writes (`cache_creation_input_tokens`): uncached input is `input_tokens`, and cache writes
//!   are priced as input.
//! - Thinking tokens are output: OpenAI's reasoning tokens and Anthropic's thinking are already
//!   inside the completion count; Gemini reports `thoughtsTokenCount` apart, and it is added.

use std::collections::BTreeMap;

use super::model::same_model;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached (cache-read) input; the input price when a model has no cache price.
    pub cached_input: f64,
}

/// A built-in price: the model (a base name: its snapshots match it) and the vendor's list
/// price on `as_of`.
pub struct DefaultPrice {
    pub model: &'static str,
    pub price: Price,
    pub as_of: &'static str,
}

const fn p(input: f64, output: f64, cached_input: f64) -> Price {
    Price { input, output, cached_input }
}

/// The vendors' list prices (USD per million tokens; the first tier where a vendor has tiers)
/// for the common models, and the date they were last checked (the README names the copies
/// they were checked against): prices change, so check the vendor's page; the config's
/// `prices:` overrides any of them, and adds others.
pub const DEFAULT_PRICES: &[DefaultPrice] = &[
    DefaultPrice { model: "gpt-4o", price: p(2.5, 10.0, 1.25), as_of: CHECKED },
    DefaultPrice { model: "gpt-4o-mini", price: p(0.15, 0.6, 0.075), as_of: CHECKED },
    DefaultPrice { model: "gpt-4.1", price: p(2.0, 8.0, 0.5), as_of: CHECKED },
    DefaultPrice { model: "gpt-4.1-mini", price: p(0.4, 1.6, 0.1), as_of: CHECKED },
    DefaultPrice { model: "gpt-4.1-nano", price: p(0.1, 0.4, 0.025), as_of: CHECKED },
    DefaultPrice { model: "o3", price: p(2.0, 8.0, 0.5), as_of: CHECKED },
    DefaultPrice { model: "o4-mini", price: p(1.1, 4.4, 0.275), as_of: CHECKED },
    DefaultPrice { model: "gpt-5", price: p(1.25, 10.0, 0.125), as_of: CHECKED },
    DefaultPrice { model: "gpt-5-mini", price: p(0.25, 2.0, 0.025), as_of: CHECKED },
    DefaultPrice { model: "claude-opus-4-1", price: p(15.0, 75.0, 1.5), as_of: CHECKED },
    DefaultPrice { model: "claude-opus-4-5", price: p(5.0, 25.0, 0.5), as_of: CHECKED },
    DefaultPrice { model: "claude-sonnet-4", price: p(3.0, 15.0, 0.3), as_of: CHECKED },
    DefaultPrice { model: "claude-sonnet-4-5", price: p(3.0, 15.0, 0.3), as_of: CHECKED },
    DefaultPrice { model: "claude-sonnet-4-6", price: p(3.0, 15.0, 0.3), as_of: CHECKED },
    DefaultPrice { model: "claude-3-5-haiku", price: p(0.8, 4.0, 0.08), as_of: CHECKED },
    DefaultPrice { model: "claude-haiku-4-5", price: p(1.0, 5.0, 0.1), as_of: CHECKED },
    DefaultPrice { model: "gemini-2.5-pro", price: p(1.25, 10.0, 0.31), as_of: CHECKED },
    DefaultPrice { model: "gemini-2.5-flash", price: p(0.3, 2.5, 0.075), as_of: CHECKED },
];

/// When the built-in prices were last checked.
pub const CHECKED: &str = "2026-11-27";

/// The prices in force: the config's first (by model name, as written), then the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    pub overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The price of `model`: a configured one, else a default one (see [`PriceTable::find`]).
    pub fn lookup(&self, model: &str) -> Option<Price> {
        self.find(model).map(|(_, price)| price)
    }

    /// The entry that prices `model`, and its name: among the configured ones, then among the
    /// defaults, the one named exactly so (in any case), else one that is the same model (its
    /// snapshots match a base name, and a pinned name matches only its own snapshot; a pinned
    /// entry before a base one).
    pub fn find(&self, model: &str) -> Option<(&str, Price)> {
        let configured: Vec<(&str, Price)> = self.overrides.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let defaults: Vec<(&str, Price)> = DEFAULT_PRICES.iter().map(|d| (d.model, d.price)).collect();
        [configured, defaults].into_iter().find_map(|entries| best_of(&entries, model))
    }
}

fn best_of<'a>(entries: &[(&'a str, Price)], model: &str) -> Option<(&'a str, Price)> {
    let exact = entries.iter().find(|(name, _)| name.eq_ignore_ascii_case(model));
    let pinned = || entries.iter().find(|(name, _)| same_model(name, model) && super::model::is_pinned(name));
    let same = || entries.iter().find(|(name, _)| same_model(name, model));
    exact.or_else(pinned).or_else(same).copied()
}

/// More tokens than any probe reply plausibly used: a usage above it is not priced (an
/// upstream's number, which could otherwise spend a day's budget or swamp a total at once).
pub const MAX_PLAUSIBLE_TOKENS: u64 = 10_000_000;

/// How a family counts its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// The prompt count includes the cached part (OpenAI, Gemini).
    PromptIncludesCached,
    /// The input count leaves out cache reads and writes (Anthropic).
    InputExcludesCache,
}

/// A reply's usage, as its family reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `prompt_tokens` / `input_tokens` / `promptTokenCount`, as reported.
    pub prompt: u64,
    /// Cache reads.
    pub cached: u64,
    /// Cache writes (Anthropic).
    pub cache_write: u64,
    /// `completion_tokens` / `output_tokens` / `candidatesTokenCount`.
    pub completion: u64,
    /// Thinking tokens reported apart from the completion (Gemini's `thoughtsTokenCount`).
    pub thinking_apart: u64,
}

impl Usage {
    /// Every count within [`MAX_PLAUSIBLE_TOKENS`].
    pub fn plausible(&self) -> bool {
        [self.prompt, self.cached, self.cache_write, self.completion, self.thinking_apart]
            .iter()
            .all(|n| *n <= MAX_PLAUSIBLE_TOKENS)
    }
}

/// The cost of `usage` at `price`, in nano-USD (1e-9 USD), rounded to the nearest.
pub fn cost_nanos(usage: &Usage, counting: Counting, price: &Price) -> u64 {
    let uncached = match counting {
        Counting::PromptIncludesCached => usage.prompt.saturating_sub(usage.cached),
        Counting::InputExcludesCache => usage.prompt.saturating_add(usage.cache_write),
    };
    let output = usage.completion.saturating_add(usage.thinking_apart);
    // USD per million tokens is nano-USD per thousandth of a token: x 1,000 per token.
    let nanos = uncached as f64 * price.input * 1_000.0
        + usage.cached as f64 * price.cached_input * 1_000.0
        + output as f64 * price.output * 1_000.0;
    nanos.round().clamp(0.0, u64::MAX as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-checked: each row's cost worked out on paper from the vendor's price page.
    #[test]
    fn costs_match_a_hand_checked_table() {
        let table = PriceTable::default();
        let rows: &[(&str, Usage, Counting, u64)] = &[
            // gpt-4o: 1,000 prompt of which 400 cached, 200 out:
            // 600 x 2.5 + 400 x 1.25 + 200 x 10 = 1500 + 500 + 2000 = 4000 USD/M-tokens = $0.004.
            (
                "gpt-4o-2024-08-06",
                Usage { prompt: 1_000, cached: 400, completion: 200, ..Usage::default() },
                Counting::PromptIncludesCached,
                4_000_000,
            ),
            // claude-sonnet-4-5: 20 input + 1,000 cache write (as input) + 3,000 cache read, 10 out:
            // 1020 x 3 + 3000 x 0.3 + 10 x 15 = 3060 + 900 + 150 = 4110 -> $0.00411.
            (
                "claude-sonnet-4-5-20250929",
                Usage { prompt: 20, cached: 3_000, cache_write: 1_000, completion: 10, ..Usage::default() },
                Counting::InputExcludesCache,
                4_110_000,
            ),
            // gemini-2.5-flash: 14 prompt, 1 out, 120 thoughts apart: 14 x 0.3 + 121 x 2.5 =
            // 4.2 + 302.5 = 306.7 -> $0.0003067.
            (
                "gemini-2.5-flash",
                Usage { prompt: 14, completion: 1, thinking_apart: 120, ..Usage::default() },
                Counting::PromptIncludesCached,
                306_700,
            ),
            // gpt-4o-mini, a two-token probe: 20 x 0.15 + 2 x 0.6 = 3 + 1.2 = 4.2 -> 4,200 nano-USD.
            (
                "gpt-4o-mini",
                Usage { prompt: 20, completion: 2, ..Usage::default() },
                Counting::PromptIncludesCached,
                4_200,
            ),
        ];
        for (model, usage, counting, want) in rows {
            let price = table.lookup(model).unwrap_or_else(|| panic!("{model} has a price"));
            assert_eq!(cost_nanos(usage, *counting, &price), *want, "{model}");
        }
    }

    #[test]
    fn the_config_overrides_defaults_and_snapshots_match_their_model() {
        let mut table = PriceTable::default();
        assert_eq!(table.lookup("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(0.15), "a snapshot of gpt-4o-mini");
        assert_eq!(table.lookup("gpt-4o").map(|p| p.input), Some(2.5), "gpt-4o is not gpt-4o-mini");
        assert_eq!(table.lookup("my-private-model"), None, "no price: no cost");
        table.overrides.insert("gpt-4o".into(), p(2.0, 8.0, 1.0));
        table.overrides.insert("my-private-model".into(), p(0.5, 0.5, 0.5));
        assert_eq!(table.lookup("GPT-4o-2024-11-20").map(|p| p.output), Some(8.0));
        assert_eq!(table.lookup("my-private-model").map(|p| p.cached_input), Some(0.5));
        assert_eq!(table.lookup("gpt-4o-mini").map(|p| p.input), Some(0.15), "other defaults stay");
        // A pinned snapshot's own price wins over its base name's, whatever their order.
        table.overrides.insert("GPT-4o-2024-05-13".into(), p(5.0, 15.0, 5.0));
        assert_eq!(table.lookup("gpt-4o-2024-05-13").map(|p| p.input), Some(5.0));
        assert_eq!(table.lookup("gpt-4o-2024-11-20").map(|p| p.input), Some(2.0));
        assert_eq!(table.find("gpt-4o").map(|(n, _)| n), Some("gpt-4o"));
    }

    #[test]
    fn an_implausible_usage_is_not_priced() {
        assert!(Usage { prompt: 20, completion: 2, ..Usage::default() }.plausible());
        assert!(!Usage { prompt: 1_000_000_000_000_000, ..Usage::default() }.plausible());
        assert!(!Usage { completion: MAX_PLAUSIBLE_TOKENS + 1, ..Usage::default() }.plausible());
    }

    /// The README's table of built-in prices is this table.
    #[test]
    fn the_readme_lists_every_default_price() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `") && l.matches('|').count() == 5).collect();
        for d in DEFAULT_PRICES {
            let row = rows
                .iter()
                .find(|l| l.starts_with(&format!("| `{}` |", d.model)))
                .unwrap_or_else(|| panic!("{} is not in the README", d.model));
            let cells: Vec<f64> = row
                .split('|')
                .skip(2)
                .filter_map(|c| c.split_whitespace().next().and_then(|v| v.parse().ok()))
                .collect();
            assert_eq!(cells, vec![d.price.input, d.price.output, d.price.cached_input], "{row}");
        }
        assert!(readme.contains(&format!("checked on {CHECKED}")), "the README gives the date");
    }

    #[test]
    fn every_default_is_found_by_its_own_name_and_no_two_collide() {
        let table = PriceTable::default();
        for d in DEFAULT_PRICES {
            assert_eq!(table.find(d.model), Some((d.model, d.price)), "{}", d.model);
            assert!(d.price.cached_input <= d.price.input && d.price.input <= d.price.output, "{}", d.model);
        }
    }

    #[test]
    fn a_cost_keeps_nano_dollars() {
        let price = p(0.01875, 0.075, 0.01);
        let usage = Usage { prompt: 1, ..Usage::default() };
        // 1 x 0.01875 USD per million = 18.75 nano-USD: rounded to the nearest nano-USD.
        assert_eq!(cost_nanos(&usage, Counting::PromptIncludesCached, &price), 19);
        let many = Usage { prompt: 1_000_000, completion: 1_000_000, ..Usage::default() };
        assert_eq!(cost_nanos(&many, Counting::PromptIncludesCached, &price), 18_750_000 + 75_000_000);
    }
}
