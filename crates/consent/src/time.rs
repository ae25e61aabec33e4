//! Dates and times, all in milliseconds since the Unix epoch, UTC: the one
//! place the consent model reads and writes timestamps. Calendar arithmetic
//! (month lengths, leap years, offsets) is `jiff`'s; this module adds only
//! the strict RFC 3339 layout Didomi sends, so a timestamp that merely
//! resembles one (`2026-11-23T10Z`, a basic-format `20261123T100000Z`, a
//! bracketed zone) is refused with a reason rather than guessed at.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};

/// A timestamp that is not strict RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not an RFC 3339 timestamp ({reason}); expected e.g. \
     2026-11-23T10:00:00Z or 2026-11-23T12:00:00.250+02:00"
)]
pub struct TimestampError {
    /// The text, cut to a readable length.
    pub text: String,
    /// The first rule it breaks.
    pub reason: &'static str,
}

/// Parses a strict RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`)
/// into milliseconds since the Unix epoch, UTC. Digits of the fraction past
/// milliseconds are dropped; a leap second (`:60`) counts as the next second's
/// start, so it still sorts after `:59`.
pub fn parse_rfc3339(text: &str) -> Result<i64, TimestampError> {
    let fail = |reason: &'static str| TimestampError {
        text: text.chars().take(64).collect(),
        reason,
    };
    let parts = Layout::read(text).map_err(fail)?;

    let date = Date::new(parts.year, parts.month, parts.day).map_err(|_| {
        fail(if (1..=12).contains(&parts.month) {
            "day out of range for the month"
        } else {
            "month out of range"
        })
    })?;
    // jiff has no leap seconds: `:60` is read as `:59` plus one second.
    let leap = i64::from(parts.second == 60);
    let time = Time::new(parts.hour, parts.minute, parts.second - leap as i8, 0)
        .map_err(|_| fail("time out of range"))?;
    // Measured on the civil calendar rather than through `jiff::Timestamp`,
    // whose range stops a day short of 9999-12-31 for the sake of offsets:
    // every date RFC 3339 can write has its instant.
    let since_epoch = date.to_datetime(time).duration_since(UNIX_EPOCH);
    let offset_ms = i64::from(parts.offset_minutes) * 60_000;
    Ok(since_epoch.as_millis() as i64 - offset_ms + leap * 1_000 + parts.millis)
}

/// 1970-01-01T00:00:00, the civil time milliseconds count from.
const UNIX_EPOCH: DateTime = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);

/// `2026-11-23T10:00:00.000Z` for milliseconds since the Unix epoch.
/// Instants beyond what a calendar date can name are shown at the nearest
/// one (year -9999 or 9999).
pub fn millis_to_rfc3339(ms: i64) -> String {
    let instant = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    format!("{instant:.3}")
}

/// The numbers of a timestamp written in RFC 3339's layout, not yet checked
/// against the calendar.
struct Layout {
    year: i16,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
    second: i8,
    millis: i64,
    offset_minutes: i32,
}

impl Layout {
    fn read(text: &str) -> Result<Layout, &'static str> {
        let bytes = text.as_bytes();
        let number = |start: usize, len: usize| -> Option<i32> {
            let digits = bytes.get(start..start + len)?;
            digits.iter().try_fold(0i32, |acc, &b| {
                b.is_ascii_digit().then(|| acc * 10 + i32::from(b - b'0'))
            })
        };
        let at =
            |index: usize, expected: &[u8]| bytes.get(index).is_some_and(|b| expected.contains(b));

        let (Some(year), Some(month), Some(day)) = (number(0, 4), number(5, 2), number(8, 2))
        else {
            return Err("the date must be YYYY-MM-DD");
        };
        if !at(4, b"-") || !at(7, b"-") {
            return Err("the date must be YYYY-MM-DD");
        }
        if !at(10, b"Tt") {
            return Err("the date and time must be separated by `T`");
        }
        let (Some(hour), Some(minute), Some(second)) =
            (number(11, 2), number(14, 2), number(17, 2))
        else {
            return Err("the time must be HH:MM:SS");
        };
        if !at(13, b":") || !at(16, b":") {
            return Err("the time must be HH:MM:SS");
        }

        let mut index = 19;
        let mut millis = 0;
        if at(index, b".") {
            index += 1;
            let start = index;
            while let Some(&digit) = bytes.get(index).filter(|b| b.is_ascii_digit()) {
                if index - start < 3 {
                    millis = millis * 10 + i64::from(digit - b'0');
                }
                index += 1;
            }
            match index - start {
                0 => return Err("a `.` must be followed by digits"),
                1 => millis *= 100,
                2 => millis *= 10,
                _ => {}
            }
        }

        let offset_minutes = match bytes.get(index) {
            Some(b'Z' | b'z') => {
                index += 1;
                0
            }
            Some(&sign @ (b'+' | b'-')) => {
                let (Some(hours), Some(minutes)) = (number(index + 1, 2), number(index + 4, 2))
                else {
                    return Err("the offset must be ±HH:MM");
                };
                if !at(index + 3, b":") {
                    return Err("the offset must be ±HH:MM");
                }
                if hours > 23 || minutes > 59 {
                    return Err("offset out of range");
                }
                index += 6;
                let minutes = hours * 60 + minutes;
                if sign == b'-' { -minutes } else { minutes }
            }
            _ => return Err("a time zone (`Z` or ±HH:MM) is required"),
        };
        if index != bytes.len() {
            return Err("unexpected text after the time zone");
        }
        // Two digits are below 100 and four below 10 000: the casts are exact.
        Ok(Layout {
            year: year as i16,
            month: month as i8,
            day: day as i8,
            hour: hour as i8,
            minute: minute as i8,
            second: second as i8,
            millis,
            offset_minutes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_become_utc_milliseconds() -> Result<(), TimestampError> {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-11-23T10:00:00Z"), Ok(1_795_428_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-23T12:00:00+02:00"),
            Ok(1_795_428_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T05:30:00-04:30"),
            Ok(1_795_428_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23t10:00:00.5z"),
            Ok(1_795_428_000_500)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T10:00:00.25Z"),
            Ok(1_795_428_000_250)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T10:00:00.123456Z"),
            Ok(1_795_428_000_123)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1_000));
        assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z"), Ok(1_483_228_800_000));
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59Z"),
            Ok(253_402_300_799_000)
        );
        assert_eq!(
            parse_rfc3339("0000-01-01T00:00:00+23:59"),
            Ok(-62_167_305_540_000)
        );
        assert_eq!(
            parse_rfc3339("0001-01-01T00:00:00Z"),
            Ok(-62_135_596_800_000)
        );
        assert!(
            parse_rfc3339("2026-11-23T10:00:00.999Z")? < parse_rfc3339("2026-11-23T10:00:01Z")?
        );
        Ok(())
    }

    #[test]
    fn malformed_timestamps_are_refused_with_a_reason() {
        let reason = |text: &str| parse_rfc3339(text).unwrap_err().reason;
        assert_eq!(
            reason("2026-11-23T10:00:00"),
            "a time zone (`Z` or ±HH:MM) is required"
        );
        assert_eq!(
            reason("2026-11-23 10:00:00Z"),
            "the date and time must be separated by `T`"
        );
        assert_eq!(
            reason("2026-11-23"),
            "the date and time must be separated by `T`"
        );
        assert_eq!(reason("26-11-23T10:00:00Z"), "the date must be YYYY-MM-DD");
        assert_eq!(
            reason("2026/11/23T10:00:00Z"),
            "the date must be YYYY-MM-DD"
        );
        assert_eq!(reason("2026-11-23T10.00.00Z"), "the time must be HH:MM:SS");
        assert_eq!(reason("2026-11-23T10:00Z"), "the time must be HH:MM:SS");
        assert_eq!(reason("20261123T100000Z"), "the date must be YYYY-MM-DD");
        assert_eq!(reason("2026-13-01T10:00:00Z"), "month out of range");
        assert_eq!(reason("2026-00-01T10:00:00Z"), "month out of range");
        assert_eq!(
            reason("2026-02-29T10:00:00Z"),
            "day out of range for the month"
        );
        assert_eq!(
            reason("2026-04-31T10:00:00Z"),
            "day out of range for the month"
        );
        assert_eq!(reason("2026-11-23T24:00:00Z"), "time out of range");
        assert_eq!(reason("2026-11-23T10:61:00Z"), "time out of range");
        assert_eq!(
            reason("2026-11-23T10:00:00.Z"),
            "a `.` must be followed by digits"
        );
        assert_eq!(
            reason("2026-11-23T10:00:00+0200"),
            "the offset must be ±HH:MM"
        );
        assert_eq!(reason("2026-11-23T10:00:00+24:00"), "offset out of range");
        assert_eq!(
            reason("2026-11-23T10:00:00Zjunk"),
            "unexpected text after the time zone"
        );
        assert_eq!(
            reason("2026-11-23T10:00:00+02:00[Europe/Paris]"),
            "unexpected text after the time zone"
        );
        assert_eq!(
            reason("２０２６-11-23T10:00:00Z"),
            "the date must be YYYY-MM-DD"
        );
        let err = parse_rfc3339("yesterday").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`yesterday` is not an RFC 3339 timestamp")
        );
    }

    #[test]
    fn timestamps_round_trip() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "2026-11-23T10:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            assert_eq!(millis_to_rfc3339(parse_rfc3339(text).unwrap()), text);
        }
    }

    #[test]
    fn instants_past_the_calendar_show_at_its_ends() {
        assert!(millis_to_rfc3339(i64::MAX).starts_with("9999-12-"));
        assert!(millis_to_rfc3339(i64::MIN).starts_with("-009999-"));
    }
}
