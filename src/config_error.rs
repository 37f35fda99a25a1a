//! The one error of reading configuration ([`ConfigError`]: the variable at fault and what was
//! wrong) and the number reader every settings parser shares. It sits below both `config` and the
//! modules that parse their own settings (`limits`), so neither imports the other for it.

use std::fmt;

/// A configuration value that is present but unusable. Its `Display` is the one line printed
/// before the process exits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What was wrong and what is expected.
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// A whole number in `range` from `variable`, or `default` when unset.
pub fn number_in<T>(
    var: &dyn Fn(&'static str) -> Option<String>,
    variable: &'static str,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match var(variable) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    variable,
                    format!(
                        "expected a whole number from {} to {}, got {text:?}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}
