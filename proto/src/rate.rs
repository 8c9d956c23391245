//! Rates on the command line: bytes per second with K/M/G suffixes as powers of 1024
//! (`4M` = 4 MiB/s); `0` means unlimited.

/// Why a rate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("invalid rate {0:?}: use a number with K, M or G (e.g. 4M)")]
    Invalid(String),
    #[error("rate {0:?} is out of range")]
    OutOfRange(String),
}

/// Parses a rate; `Ok(None)` for 0 (unlimited).
pub fn parse_rate(text: &str) -> Result<Option<u64>, RateError> {
    let t = text.trim();
    let (digits, unit) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let multiplier: u64 = match unit.trim_end_matches(['B', 'b']).trim_end_matches("/s") {
        "" => 1,
        "K" | "k" | "Ki" => 1 << 10,
        "M" | "m" | "Mi" => 1 << 20,
        "G" | "g" | "Gi" => 1 << 30,
        _ => return Err(RateError::Invalid(text.to_string())),
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| RateError::Invalid(text.to_string()))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(RateError::OutOfRange(text.to_string()));
    }
    Ok(match bytes as u64 {
        0 => None,
        n => Some(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary() {
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(parse_rate("100"), Ok(Some(100)));
        assert_eq!(parse_rate("4K"), Ok(Some(4096)));
        assert_eq!(parse_rate("4M"), Ok(Some(4 << 20)));
        assert_eq!(parse_rate("1G"), Ok(Some(1 << 30)));
        assert_eq!(parse_rate("1.5M"), Ok(Some(3 << 19)));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("4X").is_err());
        assert!(parse_rate("").is_err());
    }
}
