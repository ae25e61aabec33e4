//! Schedules: intervals (`15m`) and five-field cron expressions, in UTC.

use std::time::Duration;

use crate::pipeline::records::civil_from_days;

/// Shortest interval a schedule may have: a run at most every second.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest interval a schedule may have: 366 days (a yearly run, leap years
/// included); longer is a manual activation.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);

/// `30s`, `15m`, `6h`, `1d`: a whole number and a unit, from one second to
/// 366 days. Numbers too large for any unit are refused, never wrapped.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_seconds: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    // Messages never quote the text: a value put in the wrong field may be a
    // secret (the field's path says where the problem is).
    if unit_seconds == 0 || number.is_empty() {
        return Err(
            "is not an interval; write a whole number and a unit: `30s`, `15m`, `6h` or `1d`"
                .to_string(),
        );
    }
    // Digits that do not fit u64 are certainly beyond the maximum.
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_seconds));
    match seconds.map(Duration::from_secs) {
        Some(interval) if (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) => Ok(interval),
        _ => Err("is out of range; an interval is from 1s to 366d".to_string()),
    }
}

/// A parsed cron expression: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// 0 = Sunday (7 is accepted for Sunday too).
    days_of_week: u64,
    /// Whether day-of-month and day-of-week were both restricted: then a
    /// day matching either runs (cron's classic rule).
    either_day: bool,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl Cron {
    /// `minute hour day-of-month month day-of-week`, each `*`, a number, a
    /// range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "has {} fields; cron takes 5: minute hour day-of-month month day-of-week",
                fields.len()
            ));
        }
        let mut sets = [0u64; 5];
        for (index, (field, &(name, low, high))) in fields.iter().zip(FIELDS.iter()).enumerate() {
            sets[index] = parse_field(field, low, high)
                .map_err(|why| format!("the {name} field (field {}): {why}", index + 1))?;
        }
        let mut days_of_week = sets[4];
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1],
            days_of_month: sets[2],
            months: sets[3],
            days_of_week,
            either_day: !fields[2].starts_with('*') && !fields[4].starts_with('*'),
        })
    }

    /// The first matching minute strictly after `now_ms`, within five years.
    pub fn next_after(&self, now_ms: i64) -> Option<i64> {
        let start_minute = now_ms.div_euclid(60_000) + 1;
        let first_day = start_minute.div_euclid(1_440);
        for day in first_day..first_day + 366 * 5 {
            let from = if day == first_day {
                start_minute.rem_euclid(1_440)
            } else {
                0
            };
            if self.day_matches(day) {
                for m in from..1_440 {
                    if self.hours & (1 << (m / 60)) != 0 && self.minutes & (1 << (m % 60)) != 0 {
                        return Some((day * 1_440 + m) * 60_000);
                    }
                }
            }
        }
        None
    }

    fn day_matches(&self, day: i64) -> bool {
        let (_, month, day_of_month) = civil_from_days(day);
        if self.months & (1 << month) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday.
        let weekday = (day + 4).rem_euclid(7);
        let by_month_day = self.days_of_month & (1 << day_of_month) != 0;
        let by_week_day = self.days_of_week & (1 << weekday) != 0;
        if self.either_day {
            by_month_day || by_week_day
        } else {
            by_month_day && by_week_day
        }
    }
}

fn parse_field(field: &str, low: u32, high: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| "a step is not a whole number above 0".to_string())?,
            ),
            None => (part, 1),
        };
        let number = |text: &str| -> Result<u32, String> {
            text.parse::<u32>()
                .ok()
                .filter(|n| (low..=high).contains(n))
                .ok_or_else(|| format!("a value is not a number from {low} to {high}"))
        };
        let (from, to) = match range {
            "*" => (low, high),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(range)?, high),
                None => {
                    let n = number(range)?;
                    (n, n)
                }
            },
        };
        if from > to {
            return Err(format!("the range {from}-{to} runs backwards"));
        }
        for value in (from..=to).step_by(step as usize) {
            set |= 1 << value;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T10:17:00Z, a Monday.
    const NOW: i64 = 1_796_033_820_000;

    fn at(text: &str) -> i64 {
        crate::consent::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn intervals_take_a_number_and_a_unit() {
        assert_eq!(parse_interval("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_interval("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5 minutes").unwrap_err().contains("`15m`"));
    }

    #[test]
    fn intervals_are_bounded_and_never_wrap() {
        assert_eq!(parse_interval("1s"), Ok(MIN_INTERVAL));
        assert_eq!(parse_interval("366d"), Ok(MAX_INTERVAL));
        assert_eq!(parse_interval("8784h"), Ok(MAX_INTERVAL));
        for text in [
            "367d",
            "31622401s",
            "0m",
            // u64::MAX days: wrapped to a few seconds before.
            "18446744073709551615d",
            "213503982334601s0",
            "99999999999999999999999999s",
        ] {
            let error = parse_interval(text).unwrap_err();
            assert!(
                error.contains("out of range") || error.contains("not an interval"),
                "{text}: {error}"
            );
        }
        assert!(
            parse_interval("18446744073709551615d")
                .unwrap_err()
                .contains("from 1s to 366d")
        );
    }

    #[test]
    fn cron_finds_the_next_matching_minute() {
        assert_eq!(NOW, at("2026-11-30T10:17:00Z"));
        let next = |expr: &str| Cron::parse(expr).unwrap().next_after(NOW).unwrap();
        assert_eq!(next("* * * * *"), at("2026-11-30T10:18:00Z"));
        assert_eq!(next("*/15 * * * *"), at("2026-11-30T10:30:00Z"));
        assert_eq!(next("0 3 * * *"), at("2026-12-01T03:00:00Z"));
        assert_eq!(next("30 9 * * 1-5"), at("2026-12-01T09:30:00Z"));
        assert_eq!(next("0 0 1 1 *"), at("2027-01-01T00:00:00Z"));
        // Sunday as 7; day-of-month or day-of-week when both are given.
        assert_eq!(next("0 12 * * 7"), at("2026-12-06T12:00:00Z"));
        assert_eq!(next("0 12 15 * 0"), at("2026-12-06T12:00:00Z"));
        assert_eq!(next("0 0 29 2 *"), at("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn bad_cron_fields_are_named() {
        assert!(Cron::parse("* * *").unwrap_err().contains("has 3 fields"));
        let error = Cron::parse("61 * * * *").unwrap_err();
        assert!(error.contains("minute field (field 1)"), "{error}");
        assert!(!error.contains("61"), "{error}");
        assert!(
            Cron::parse("* 5-2 * * *")
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            Cron::parse("*/0 * * * *")
                .unwrap_err()
                .contains("step is not")
        );
    }
}
