//! Typed access to the YAML mappings of a config file: every problem becomes a line naming its
//! place and field, and no value is ever quoted in a type error.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::config::duration::{self, GoDuration};

/// Collects errors for one place in the file (`interval`, `monitors[2] 88code/cc`).
pub(super) struct Errors {
    pub lines: Vec<String>,
}

impl Errors {
    pub(super) fn push(&mut self, place: &str, field: &str, message: impl fmt::Display) {
        match (place.is_empty(), field.is_empty()) {
            (true, _) => self.lines.push(format!("{field}: {message}")),
            (false, true) => self.lines.push(format!("{place}: {message}")),
            (false, false) => self.lines.push(format!("{place}: {field}: {message}")),
        }
    }
}

/// Typed access to one YAML mapping, reporting unknown keys and type errors with their place.
pub(super) struct Fields<'a> {
    pub map: &'a Mapping,
    pub place: String,
}

impl<'a> Fields<'a> {
    pub(super) fn check_keys(&self, known: &[&str], errors: &mut Errors) {
        for key in self.map.keys() {
            match key.as_str() {
                Some(k) if known.contains(&k) => {}
                Some(k) => errors.push(&self.place, k, format!("unknown key (expected one of {})", known.join(", "))),
                None => errors.push(&self.place, "", format!("keys must be strings, found {}", describe(key))),
            }
        }
    }

    pub(super) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn get<T: DeserializeOwned>(&self, key: &str, errors: &mut Errors) -> Option<T> {
        let value = self.raw(key)?;
        match serde_yaml::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            // Never serde's message: it quotes the value, and a key pasted into the wrong field
            // would be printed, logged and shown on /health.
            Err(_) => {
                errors.push(&self.place, key, format!("must be {}, found {}", expected::<T>(), describe(value)));
                None
            }
        }
    }

    pub(super) fn duration(&self, key: &str, allow_days: bool, errors: &mut Errors) -> Option<Duration> {
        let text: String = self.get(key, errors)?;
        match duration::parse(&text, allow_days) {
            Ok(GoDuration { negative: true, .. }) => {
                errors.push(&self.place, key, format!("{text:?} is negative; it must be positive"));
                None
            }
            Ok(GoDuration { duration, .. }) if duration.is_zero() => {
                errors.push(&self.place, key, format!("{text:?} is zero; it must be positive"));
                None
            }
            Ok(GoDuration { duration, .. }) => Some(duration),
            Err(e) => {
                errors.push(&self.place, key, e);
                None
            }
        }
    }
}

/// What a field of type `T` takes, in words.
pub(super) fn expected<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    if name.ends_with("String") {
        "a quoted string"
    } else if name == "bool" {
        "true or false"
    } else if name == "f64" {
        "a number"
    } else if name.contains("Vec<") {
        "a list of quoted strings"
    } else if name.contains("Map<") {
        "a mapping of names to quoted strings"
    } else {
        "a value of another type"
    }
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
