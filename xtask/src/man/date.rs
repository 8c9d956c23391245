//! The pages' date: `SOURCE_DATE_EPOCH` when it is set, so that a package build is
//! reproducible, else today.

use anyhow::{Context, Result};

/// `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, or of today.
pub fn man_date() -> Result<String> {
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => parse_epoch(&text)?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    Ok(date_of(secs))
}

/// A `SOURCE_DATE_EPOCH` value: seconds since 1970-01-01 UTC.
fn parse_epoch(text: &str) -> Result<i64> {
    text.trim()
        .parse::<i64>()
        .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds"))
}

/// `YYYY-MM-DD` (UTC) of `secs` seconds since the epoch.
fn date_of(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_to_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_507), (2026, 2, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn source_date_epoch() {
        assert_eq!(date_of(parse_epoch("1700000000").unwrap()), "2023-11-14");
        // The last second of a day is still that day; a newline from a file is fine.
        assert_eq!(date_of(parse_epoch("951868799\n").unwrap()), "2000-02-29");
        assert_eq!(date_of(parse_epoch("-1").unwrap()), "1969-12-31");
        let err = parse_epoch("yesterday").unwrap_err().to_string();
        assert!(err.contains("SOURCE_DATE_EPOCH=\"yesterday\""), "{err}");
    }
}
