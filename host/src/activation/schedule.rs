//! Schedules: intervals (`15m`) and cron expressions — five fields or an
//! alias such as `@daily` — read in a time zone, UTC unless one is named.
//! Parsing and the next-run search are the `croner` crate's; this module
//! pins its options to classic cron and words its errors.

use std::time::Duration;

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

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

/// An IANA time zone name (`Europe/Paris`, `UTC`), looked up in the host's
/// time zone database. Like every message here, the error does not quote
/// the name.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(
            "is empty; name an IANA time zone such as `Europe/Paris`, or leave it out for UTC"
                .to_string(),
        );
    }
    TimeZone::get(name).map_err(|_| {
        "is not a time zone this host knows; give an IANA name such as `Europe/Paris` or `UTC`"
            .to_string()
    })
}

/// A cron schedule: the expression and the zone whose wall clock it reads.
/// Runs are at most once a minute; the day-of-month and day-of-week fields
/// follow classic cron: when both are restricted (neither starts with `*`),
/// a day matching either runs.
#[derive(Clone)]
pub struct Cron {
    /// The expression, trimmed, its fields separated by single spaces.
    text: String,
    zone: TimeZone,
    /// Boxed: a parsed pattern is a few hundred bytes, which every
    /// `Schedule` would otherwise carry.
    cron: Box<croner::Cron>,
}

/// Equal when written alike and read in the same zone (croner's own value
/// keeps parse details that say nothing more).
impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.zone_name() == other.zone_name()
    }
}

impl std::fmt::Debug for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cron")
            .field("text", &self.text)
            .field("zone", &self.zone_name())
            .finish()
    }
}

/// What each of the five fields is called, the values it takes (for
/// messages), and the words allowed in it.
struct Field {
    name: &'static str,
    values: &'static str,
    words: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        values: "0-59",
        words: &[],
    },
    Field {
        name: "hour",
        values: "0-23",
        words: &[],
    },
    Field {
        name: "day of month",
        values: "1-31 (`L` the last day, `15W` the weekday nearest the 15th)",
        words: &["L", "W", "LW"],
    },
    Field {
        name: "month",
        values: "1-12 or JAN-DEC",
        words: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    Field {
        name: "day of week",
        values: "0-7 or SUN-SAT (0 and 7 are Sunday)",
        words: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "L"],
    },
];

const ALIASES: &str = "`@hourly`, `@daily`, `@weekly`, `@monthly` or `@yearly`";

impl Cron {
    /// `minute hour day-of-month month day-of-week`, each `*`, a number, a
    /// range `a-b`, a step `*/n`, `a/n` or `a-b/n`, or a comma list of those;
    /// months and weekdays also by name (`JAN`, `MON-FRI`); or one of the
    /// aliases `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Read
    /// in UTC until [`Cron::in_zone`].
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let cron = if text.trim_start().starts_with('@') {
            parser(false)
                .parse(text.trim())
                .map_err(|_| format!("is not a cron alias; use {ALIASES}, or five fields"))?
        } else {
            if fields.len() != 5 {
                let seconds = if fields.len() == 6 {
                    " (no seconds field: runs are at most once a minute)"
                } else {
                    ""
                };
                return Err(format!(
                    "has {} fields; cron takes 5{seconds}: minute hour day-of-month month day-of-week, or {ALIASES}",
                    fields.len()
                ));
            }
            for (index, (part, field)) in fields.iter().zip(FIELDS.iter()).enumerate() {
                check_field(index, part, field).map_err(|why| {
                    format!("the {} field (field {}): {why}", field.name, index + 1)
                })?;
            }
            // Classic cron: a day field starting with `*` (`*/2` too) leaves
            // the other one to decide alone, so the two must both match;
            // croner only treats a bare `*` that way.
            let starred = |field: &str| field.starts_with(['*', '?']);
            parser(starred(fields[2]) || starred(fields[4]))
                .parse(&fields.join(" "))
                .map_err(|_| {
                    "is not a valid cron expression; check each field: minute hour day-of-month month day-of-week"
                        .to_string()
                })?
        };
        // A date that never comes is a mistake to report now, not a
        // schedule that never runs.
        if never_dated(&cron) {
            return Err(
                "never matches a date (such as 30 February); check the day-of-month, month and day-of-week fields"
                    .to_string(),
            );
        }
        Ok(Cron {
            text: fields.join(" "),
            zone: TimeZone::UTC,
            cron: Box::new(cron),
        })
    }

    /// The same expression read on the wall clock of `zone`, an IANA name
    /// (see [`parse_time_zone`]).
    pub fn in_zone(mut self, zone: &str) -> Result<Cron, String> {
        self.zone = parse_time_zone(zone)?;
        Ok(self)
    }

    /// The zone's IANA name (`UTC` by default).
    pub fn zone_name(&self) -> &str {
        self.zone.iana_name().unwrap_or("UTC")
    }

    /// The first matching minute strictly after `now_ms` (ms since the
    /// epoch). In the zone's wall clock: a time skipped by a daylight-saving
    /// jump runs at the first minute after the jump, a time that happens
    /// twice runs once, at its first occurrence.
    pub fn next_after(&self, now_ms: i64) -> Option<i64> {
        let now = Timestamp::from_millisecond(now_ms)
            .ok()?
            .to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        Some(next.timestamp().as_millisecond())
    }
}

/// Five fields with minute resolution, no year; `a/n` accepted as before
/// (from `a` to the field's end).
fn parser(dom_and_dow: bool) -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .sloppy_ranges(true)
        .dom_and_dow(dom_and_dow)
        .build()
}

/// Whether the days the pattern allows never come: dates no month has (30
/// February), a day of month and a weekday that must both match and never
/// meet (`1 * +MON#2`), or a modifier that selects nothing. croner would
/// search up to the year 5000 before giving up, a fraction of a second per
/// look.
fn never_dated(cron: &croner::Cron) -> bool {
    let pattern = &cron.pattern;
    if !pattern.days.has_modifiers() && !pattern.days_of_week.has_modifiers() {
        // Plain values. A weekday alone, or either field, always comes
        // (every weekday comes every month); a day of month that must match
        // needs a month long enough, and each such date falls on every
        // weekday over the years (29 February included).
        let day_of_month_must_match = !pattern.is_dom_wildcard()
            && (pattern.is_dow_wildcard() || pattern.matches_dom_and_dow());
        let longest = |month: u16| match month {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let days = pattern.days.values();
        return day_of_month_must_match
            && !pattern
                .months
                .values()
                .into_iter()
                .any(|month| days.iter().any(|&day| day <= longest(month)));
    }
    // `L`, `W`, `#`: what matches depends on a month's length and the
    // weekday it starts on, and 2001-2028 holds every combination.
    let first = |values: Vec<u16>| values.first().copied().unwrap_or(0) as i8;
    let (hour, minute) = (
        first(pattern.hours.values()),
        first(pattern.minutes.values()),
    );
    let end = jiff::civil::date(2029, 1, 1);
    let mut day = jiff::civil::date(2001, 1, 1);
    while day < end {
        if cron
            .is_time_matching(&day.at(hour, minute, 0, 0))
            .unwrap_or(false)
        {
            return false;
        }
        day = match day.tomorrow() {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    true
}

/// One field on its own, so a mistake is reported with the field's name.
fn check_field(index: usize, text: &str, field: &Field) -> Result<(), String> {
    if text.split(',').any(str::is_empty) {
        return Err("a comma list has an empty item".to_string());
    }
    // croner swaps month and weekday names for numbers wherever they appear
    // (`MON` in the minute field would be minute 1): each field may only
    // hold its own words.
    let upper = text.to_ascii_uppercase();
    let foreign_word = upper
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|word| !word.is_empty() && !field.words.contains(&word));
    if foreign_word {
        return Err(format!(
            "holds a name or letter this field does not take; it takes {}",
            field.values
        ));
    }
    let mut probe = ["*"; 5];
    probe[index] = text;
    match parser(false).parse(&probe.join(" ")) {
        Ok(_) => Ok(()),
        Err(error) => Err(field_problem(&error, field)),
    }
}

/// A field's problem in words. croner's own messages quote the field, so
/// they are only read for their kind, never shown.
fn field_problem(error: &CronError, field: &Field) -> String {
    let values = field.values;
    let hint = match error {
        CronError::ComponentError(message) => message.to_ascii_lowercase(),
        CronError::IllegalCharacters(_) => {
            return format!(
                "holds a character this field does not take; write numbers ({values}), `*`, `,`, `-` and `/`"
            );
        }
        _ => String::new(),
    };
    if hint.contains("step cannot be zero") || hint.contains("invalid step.") {
        "a step is not a whole number above 0".to_string()
    } else if hint.contains("range") && hint.contains("bounds") {
        format!("a range runs backwards or goes outside {values}")
    } else if hint.contains("nth") || hint.contains('#') {
        "`#` takes a weekday and a week from 1 to 5 or `L`, as in `FRI#2` or `FRI#L`".to_string()
    } else if hint.contains("number") || hint.contains("bounds") {
        format!("a value is out of range; the field takes {values}")
    } else {
        format!(
            "is not a value, range `a-b`, step `*/n` or `a-b/n`, or a comma list of those ({values})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T10:17:00Z, a Monday.
    const NOW: i64 = 1_796_033_820_000;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn next(expr: &str) -> i64 {
        Cron::parse(expr).unwrap().next_after(NOW).unwrap()
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
        assert_eq!(next("* * * * *"), at("2026-11-30T10:18:00Z"));
        assert_eq!(next("*/15 * * * *"), at("2026-11-30T10:30:00Z"));
        assert_eq!(next("0 3 * * *"), at("2026-12-01T03:00:00Z"));
        assert_eq!(next("30 9 * * 1-5"), at("2026-12-01T09:30:00Z"));
        assert_eq!(next("0 0 1 1 *"), at("2027-01-01T00:00:00Z"));
        // Sunday as 7; day-of-month or day-of-week when both are given.
        assert_eq!(next("0 12 * * 7"), at("2026-12-06T12:00:00Z"));
        assert_eq!(next("0 12 15 * 0"), at("2026-12-06T12:00:00Z"));
        assert_eq!(next("0 0 29 2 *"), at("2028-02-29T00:00:00Z"));
        // `a/n` runs from `a` to the field's end, as the old parser had it.
        assert_eq!(next("20/30 * * * *"), at("2026-11-30T10:20:00Z"));
        assert_eq!(next("50/30 * * * *"), at("2026-11-30T10:50:00Z"));
    }

    #[test]
    fn the_next_run_is_strictly_after_now_at_minute_resolution() {
        let every_minute = Cron::parse("* * * * *").unwrap();
        assert_eq!(
            every_minute.next_after(NOW - 1),
            Some(NOW),
            "a millisecond before a matching minute"
        );
        assert_eq!(every_minute.next_after(NOW), Some(NOW + 60_000));
        assert_eq!(every_minute.next_after(NOW + 500), Some(NOW + 60_000));
        assert_eq!(every_minute.next_after(NOW + 59_999), Some(NOW + 60_000));
        // Instants jiff cannot represent have no next run.
        assert_eq!(every_minute.next_after(i64::MAX), None);
    }

    #[test]
    fn aliases_stand_for_their_five_fields() {
        assert_eq!(next("@daily"), at("2026-12-01T00:00:00Z"));
        assert_eq!(next("@hourly"), at("2026-11-30T11:00:00Z"));
        assert_eq!(next("@weekly"), at("2026-12-06T00:00:00Z"));
        assert_eq!(next("@monthly"), at("2026-12-01T00:00:00Z"));
        assert_eq!(next("@yearly"), at("2027-01-01T00:00:00Z"));
        assert_eq!(next("@annually"), at("2027-01-01T00:00:00Z"));
        assert_eq!(next(" @DAILY "), at("2026-12-01T00:00:00Z"));
        for bad in ["@reboot", "@daily 5", "@every"] {
            let error = Cron::parse(bad).unwrap_err();
            assert!(error.contains("not a cron alias"), "{bad}: {error}");
            assert!(!error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn months_and_weekdays_take_names() {
        // Monday 10:17: the next weekday 09:30 is Tuesday.
        assert_eq!(next("30 9 * * MON-FRI"), at("2026-12-01T09:30:00Z"));
        assert_eq!(next("30 9 * * mon-fri"), at("2026-12-01T09:30:00Z"));
        assert_eq!(next("0 8 * * SAT,SUN"), at("2026-12-05T08:00:00Z"));
        assert_eq!(next("0 0 1 JAN *"), at("2027-01-01T00:00:00Z"));
        assert_eq!(next("0 0 1 MAR-MAY *"), at("2027-03-01T00:00:00Z"));
        assert_eq!(next("0 18 * * FRI-SUN"), at("2026-12-04T18:00:00Z"));
        assert_eq!(
            Cron::parse("30 9 * * MON-FRI"),
            Cron::parse("30  9 * *   MON-FRI")
        );
        // A name only in its own field: croner would read `MON` as 1 anywhere.
        for (bad, field) in [
            ("MON * * * *", "minute field (field 1)"),
            ("0 JAN * * *", "hour field (field 2)"),
            ("0 0 * MON *", "month field (field 4)"),
            ("0 0 * * JAN", "day of week field (field 5)"),
            ("0 0 * * MONDAY", "day of week field (field 5)"),
        ] {
            let error = Cron::parse(bad).unwrap_err();
            assert!(error.contains(field), "{bad}: {error}");
            assert!(error.contains("name or letter"), "{bad}: {error}");
        }
    }

    #[test]
    fn both_day_fields_restricted_means_either_day() {
        // 15 December or any Sunday: Sunday 6 December comes first.
        assert_eq!(next("0 12 15 * SUN"), at("2026-12-06T12:00:00Z"));
        // The 1st or a Friday: Tuesday 1 December comes first.
        assert_eq!(next("0 0 1 * 5"), at("2026-12-01T00:00:00Z"));
        // A day field starting with `*` leaves the other to decide with it
        // (both must match), as in classic cron: odd days that are
        // Mondays, i.e. Monday 7 December 2026.
        assert_eq!(next("0 0 */2 * MON"), at("2026-12-07T00:00:00Z"));
        // The 1st when it is a Sunday (`*/7`: 0 and 7).
        assert_eq!(next("0 0 1 * */7"), at("2027-08-01T00:00:00Z"));
        // A bare `*` leaves the other field alone.
        assert_eq!(next("0 0 * * MON"), at("2026-12-07T00:00:00Z"));
        assert_eq!(next("0 0 13 * *"), at("2026-12-13T00:00:00Z"));
    }

    #[test]
    fn a_zone_reads_the_expression_on_its_wall_clock() {
        let paris = Cron::parse("30 9 * * MON-FRI")
            .unwrap()
            .in_zone("Europe/Paris")
            .unwrap();
        // 10:17Z is 11:17 in Paris (CET, +01:00): Tuesday's 09:30 Paris.
        assert_eq!(paris.next_after(NOW), Some(at("2026-12-01T08:30:00Z")));
        // In summer (CEST, +02:00) the same wall time is an hour earlier in UTC.
        assert_eq!(
            paris.next_after(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-01T07:30:00Z"))
        );
        let tokyo = Cron::parse("@daily")
            .unwrap()
            .in_zone("Asia/Tokyo")
            .unwrap();
        assert_eq!(tokyo.next_after(NOW), Some(at("2026-11-30T15:00:00Z")));
        assert_eq!(tokyo.zone_name(), "Asia/Tokyo");
        assert_eq!(Cron::parse("@daily").unwrap().zone_name(), "UTC");
        // Equal only in the same zone.
        assert_ne!(Cron::parse("@daily").unwrap(), tokyo);
        assert_eq!(
            Cron::parse("@daily").unwrap().in_zone("UTC").unwrap(),
            Cron::parse("@daily").unwrap()
        );
    }

    /// Europe/Paris, Sunday 29 March 2026: 02:00 CET jumps to 03:00 CEST.
    #[test]
    fn a_daily_run_survives_spring_forward_once() {
        let runs = |expr: &str, from: &str| -> Vec<i64> {
            let cron = Cron::parse(expr).unwrap().in_zone("Europe/Paris").unwrap();
            let mut now = at(from);
            (0..3)
                .map(|_| {
                    now = cron.next_after(now).unwrap();
                    now
                })
                .collect()
        };
        // 02:30 does not exist on the 29th: that day's run is at 03:00
        // CEST, the first minute after the jump; no day skipped or doubled.
        assert_eq!(
            runs("30 2 * * *", "2026-03-27T12:00:00Z"),
            [
                at("2026-03-28T01:30:00Z"), // 02:30 CET
                at("2026-03-29T01:00:00Z"), // 03:00 CEST
                at("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
        // A time outside the gap keeps its wall-clock time: 24h, then 23h.
        assert_eq!(
            runs("0 9 * * *", "2026-03-27T12:00:00Z"),
            [
                at("2026-03-28T08:00:00Z"),
                at("2026-03-29T07:00:00Z"),
                at("2026-03-30T07:00:00Z"),
            ]
        );
        // From inside the day, just before the gap.
        let cron = Cron::parse("30 2 * * *")
            .unwrap()
            .in_zone("Europe/Paris")
            .unwrap();
        assert_eq!(
            cron.next_after(at("2026-03-29T00:59:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
    }

    /// Europe/Paris, Sunday 25 October 2026: 03:00 CEST falls back to 02:00 CET.
    #[test]
    fn a_daily_run_in_the_repeated_hour_runs_once() {
        let cron = Cron::parse("30 2 * * *")
            .unwrap()
            .in_zone("Europe/Paris")
            .unwrap();
        let first = cron.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, at("2026-10-25T00:30:00Z"), "02:30 CEST");
        // Looked at again just after that run, the second 02:30 (CET) is
        // not a run: the next is Monday's.
        assert_eq!(
            cron.next_after(first + 5_000),
            Some(at("2026-10-26T01:30:00Z"))
        );
        // Nor when looked at from inside the repeated hour (a long run).
        assert_eq!(
            cron.next_after(at("2026-10-25T01:10:00Z")),
            Some(at("2026-10-26T01:30:00Z"))
        );
    }

    #[test]
    fn bad_zones_are_refused_without_echo() {
        for bad in [
            "Europe/Pariss",
            "Mars/Olympus",
            "",
            "  ",
            "../../etc/passwd",
            "+02:00",
        ] {
            let error = Cron::parse("@daily").unwrap().in_zone(bad).unwrap_err();
            assert!(
                error.contains("time zone") || error.contains("is empty"),
                "{bad:?}: {error}"
            );
            if !bad.trim().is_empty() {
                assert!(!error.contains(bad), "{bad}: {error}");
            }
        }
        assert!(parse_time_zone("Europe/Paris").is_ok());
        assert!(parse_time_zone("UTC").is_ok());
    }

    #[test]
    fn bad_cron_fields_are_named() {
        assert!(Cron::parse("* * *").unwrap_err().contains("has 3 fields"));
        let error = Cron::parse("61 * * * *").unwrap_err();
        assert!(error.contains("minute field (field 1)"), "{error}");
        assert!(error.contains("0-59"), "{error}");
        assert!(!error.contains("61"), "{error}");
        let error = Cron::parse("* 5-2 * * *").unwrap_err();
        assert!(error.contains("hour field (field 2)"), "{error}");
        assert!(error.contains("backwards"), "{error}");
        assert!(
            Cron::parse("*/0 * * * *")
                .unwrap_err()
                .contains("step is not")
        );
        let error = Cron::parse("0 * * * * *").unwrap_err();
        assert!(error.contains("has 6 fields"), "{error}");
        assert!(error.contains("no seconds field"), "{error}");
        let error = Cron::parse("1,,2 * * * *").unwrap_err();
        assert!(error.contains("empty item"), "{error}");
        let error = Cron::parse("0 0 32 * *").unwrap_err();
        assert!(error.contains("day of month field (field 3)"), "{error}");
        let error = Cron::parse("0 0 * 13 *").unwrap_err();
        assert!(error.contains("month field (field 4)"), "{error}");
        let error = Cron::parse("0 0 * * 8").unwrap_err();
        assert!(error.contains("day of week field (field 5)"), "{error}");
        let error = Cron::parse("0 0 * * FRI#9").unwrap_err();
        assert!(error.contains("`FRI#2`"), "{error}");
        for never in [
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 30-31 FEB */7",
            // The 1st is never the second Monday; the weekday nearest the
            // 15th is never a Saturday; `*/20` (1st, 21st) misses days 8-14.
            "0 0 1 * +MON#2",
            "0 0 15W * +SAT",
            "0 0 */20 * MON#2",
            // `L` alone in the weekday field names no weekday.
            "0 0 * * L",
        ] {
            let error = Cron::parse(never).unwrap_err();
            assert!(error.contains("never matches"), "{never}: {error}");
        }
        // Rare but real dates are not refused.
        for rare in [
            "0 0 29 2 *",
            "0 0 31 2,4 1",
            "0 0 L 2 *",
            "0 0 31 * *",
            "0 0 30-31 FEB MON",
            "0 0 29 2 +MON",
            "0 0 L 2 +MON",
            "0 0 * 2 MON#5",
            "0 0 */10 * MON#2",
        ] {
            assert!(Cron::parse(rare).is_ok(), "{rare}");
        }
        // Nothing the user wrote comes back, whatever the mistake.
        for bad in [
            "s3cr3t * * * *",
            "* * * * Hunter2",
            "0 0 * * 5#7",
            "@Hunter2",
            "1-99/5 * * * *",
        ] {
            let error = Cron::parse(bad).unwrap_err();
            for part in bad.split_whitespace().filter(|p| *p != "*") {
                assert!(!error.contains(part), "{bad}: {error}");
            }
        }
    }
}
