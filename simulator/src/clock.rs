//! Wall-clock times as the stand-ins write them: ServiceNow's `YYYY-MM-DD HH:MM:SS` (UTC, whole
//! seconds) and iLert's ISO-8601 UTC. Written out (days-to-civil) rather than taken from a date
//! crate, which the simulator would need for nothing else.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as seconds and nanoseconds since the Unix epoch.
pub(crate) fn now() -> (i64, u32) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since_epoch.as_secs() as i64, since_epoch.subsec_nanos())
}

/// Now as ServiceNow stores a date-time: `2025-10-17 10:41:12`, UTC.
pub(crate) fn glide_now() -> String {
    glide_date_time(now().0)
}

/// Seconds since the epoch as ServiceNow stores a date-time: `2025-10-17 10:41:12`, UTC.
pub(crate) fn glide_date_time(seconds: i64) -> String {
    let (year, month, day, hour, minute, second) = civil(seconds);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

/// Seconds since the epoch of a ServiceNow date-time (`2025-10-17 10:41:12`, UTC); `None` for
/// anything else, an empty field included.
pub(crate) fn parse_glide_date_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 19
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// iLert's time format with milliseconds: `2025-10-17T10:41:12.004Z`.
pub(crate) fn iso_millis(seconds: i64, nanos: u32) -> String {
    let (year, month, day, hour, minute, second) = civil(seconds);
    let millis = nanos / 1_000_000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Milliseconds since the epoch of an ISO-8601 UTC date-time as iLert's API takes `from` and
/// `until` (`2021-05-25T21:24:56.771Z`, the fraction optional); `None` for anything else.
pub(crate) fn parse_iso_millis(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds = parse_glide_date_time(&whole.replacen('T', " ", 1))?;
    if whole.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let millis = match fraction.len() {
        0 => 0,
        1..=9 if fraction.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{fraction:0<3}")[..3].parse::<i64>().ok()?
        }
        _ => return None,
    };
    Some(seconds * 1000 + millis)
}

/// iLert's webhook `timestamp`, with nanoseconds: `2025-10-17T10:41:12.019377120Z`.
pub(crate) fn iso_nanos(seconds: i64, nanos: u32) -> String {
    let (year, month, day, hour, minute, second) = civil(seconds);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z")
}

/// Year, month, day, hour, minute, second (UTC) of seconds since the epoch.
fn civil(seconds: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (
        year,
        month,
        day,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Howard Hinnant's `days_from_civil`: the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_moments_format_and_parse_back() {
        assert_eq!(glide_date_time(0), "1970-01-01 00:00:00");
        // 2024 is a leap year: the day after February 28 is the 29th.
        assert_eq!(glide_date_time(1_709_164_800), "2024-02-29 00:00:00");
        assert_eq!(glide_date_time(1_760_697_672), "2025-10-17 10:41:12");
        assert_eq!(
            iso_millis(1_760_697_672, 4_900_000),
            "2025-10-17T10:41:12.004Z"
        );
        assert_eq!(
            iso_nanos(1_760_697_672, 19_377_120),
            "2025-10-17T10:41:12.019377120Z"
        );
        for seconds in [0, 951_782_400, 1_709_164_800, 1_760_697_672, 4_102_444_799] {
            assert_eq!(
                parse_glide_date_time(&glide_date_time(seconds)),
                Some(seconds)
            );
        }
        assert_eq!(parse_glide_date_time(""), None);
        assert_eq!(parse_glide_date_time("2025-10-17T10:41:12"), None);
        assert_eq!(parse_glide_date_time("2025-13-17 10:41:12"), None);
        assert_eq!(
            parse_iso_millis("2025-10-17T10:41:12.004Z"),
            Some(1_760_697_672_004)
        );
        assert_eq!(
            parse_iso_millis("2025-10-17T10:41:12Z"),
            Some(1_760_697_672_000)
        );
        assert_eq!(parse_iso_millis("2025-10-17 10:41:12.004Z"), None);
        assert_eq!(parse_iso_millis("2025-10-17T10:41:12.004"), None);
    }
}
