//! `prices:` (issue 14): USD per million tokens by model, over the built-in table:
//! `prices: {gpt-4o: {input: 2.5, output: 10, cached_input: 1.25}}`.

use serde_yaml::Value;

use super::fields::{describe, Errors, Fields};
use crate::probe::cost::{Price, PriceTable};

const PRICE_KEYS: &[&str] = &["input", "output", "cached_input"];
/// No model costs more than this per million tokens; a larger figure is a typo (a price per
/// thousand, say).
const MAX_PRICE: f64 = 10_000.0;

pub(super) fn parse_prices(value: Option<&Value>, errors: &mut Errors) -> PriceTable {
    let mut table = PriceTable::default();
    let Some(value) = value else { return table };
    let Value::Mapping(map) = value else {
        errors.push("", "prices", format!("must be a mapping of model to prices, found {}", describe(value)));
        return table;
    };
    for (model, prices) in map {
        let Some(name) = model.as_str().map(str::trim).filter(|m| !m.is_empty()) else {
            errors.push("prices", describe(model), "a model name must be a non-empty string");
            continue;
        };
        let place = format!("prices.{name}");
        let Value::Mapping(fields) = prices else {
            errors.push(
                "prices",
                name,
                format!("must be a mapping of input, output, cached_input, found {}", describe(prices)),
            );
            continue;
        };
        let fields = Fields { map: fields, place: place.clone() };
        fields.check_keys(PRICE_KEYS, errors);
        let mut get = |key: &str, required: bool| -> Option<f64> {
            match fields.get::<f64>(key, errors) {
                Some(v) if v.is_finite() && (0.0..=MAX_PRICE).contains(&v) => Some(v),
                Some(v) => {
                    errors.push(&place, key, format!("{v} is outside 0..{MAX_PRICE} (USD per million tokens)"));
                    None
                }
                None if required => {
                    errors.push(&place, key, "is required (USD per million tokens)");
                    None
                }
                None => None,
            }
        };
        let (input, output, cached) = (get("input", true), get("output", true), get("cached_input", false));
        if let (Some(input), Some(output)) = (input, output) {
            if table.overrides.keys().any(|m| m.eq_ignore_ascii_case(name)) {
                errors.push("prices", name, "is listed twice");
                continue;
            }
            table.overrides.insert(name.to_string(), Price { input, output, cached_input: cached.unwrap_or(input) });
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> (PriceTable, Vec<String>) {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let mut errors = Errors { lines: Vec::new() };
        let table = parse_prices(Some(&value), &mut errors);
        (table, errors.lines)
    }

    #[test]
    fn prices_override_the_table_and_cached_input_defaults_to_input() {
        let (table, errors) =
            parse("{gpt-4o: {input: 2, output: 8, cached_input: 1}, my-model: {input: 0.5, output: 1.5}}");
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(table.lookup("gpt-4o-2024-08-06"), Some(Price { input: 2.0, output: 8.0, cached_input: 1.0 }));
        assert_eq!(table.lookup("my-model"), Some(Price { input: 0.5, output: 1.5, cached_input: 0.5 }));
    }

    #[test]
    fn bad_prices_are_named() {
        let (table, errors) = parse(
            "{a: {input: -1, output: 2}, b: {output: 2}, c: {input: 1, output: 2, price: 3}, d: 5, e: {input: 1e9, output: 1}}",
        );
        let text = errors.join("\n");
        for wanted in [
            "prices.a: input: -1 is outside",
            "prices.b: input: is required",
            "price",
            "prices: d: must be a mapping",
            "prices.e: input: 1000000000 is outside",
        ] {
            assert!(text.contains(wanted), "{wanted} in\n{text}");
        }
        assert!(table.lookup("b").is_none() && table.lookup("a").is_none());
    }
}
