//! The date-times OnCall's date filters read and print: Django's `parse_datetime` grammar
//! (hand-parsed: it is Django's own, looser than ISO 8601), calendar validity and arithmetic
//! from `jiff`, Python's `str(datetime)`, and Python's strftime on top of jiff's.

use jiff::civil;
use jiff::fmt::strtime::BrokenDownTime;
use jiff::tz::Offset;

/// A calendar date-time with an optional UTC offset, enough for OnCall's date filters.
#[derive(Debug, PartialEq)]
pub(super) struct DateTime {
    civil: civil::DateTime,
    offset_minutes: Option<i32>,
}

impl DateTime {
    /// Django's `parse_datetime` grammar: `YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]`.
    pub(super) fn parse(s: &str) -> Option<DateTime> {
        let s = s.trim();
        let (date, rest) = s.split_at_checked(10)?;
        let mut date_parts = date.split('-');
        let year = parse_digits(date_parts.next()?, 4, 4)?;
        let month = parse_digits(date_parts.next()?, 2, 2)?;
        let day = parse_digits(date_parts.next()?, 2, 2)?;
        let rest = rest.strip_prefix(['T', 't', ' '])?;

        let tz_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
        let (time, tz) = rest.split_at(tz_at);
        let (hms, fraction) = match time.trim_end().split_once(['.', ',']) {
            Some((hms, fraction)) => (hms, Some(fraction)),
            None => (time.trim_end(), None),
        };
        let mut time_parts = hms.split(':');
        let hour = parse_digits(time_parts.next()?, 1, 2)?;
        let minute = parse_digits(time_parts.next()?, 1, 2)?;
        let second = time_parts
            .next()
            .map_or(Some(0), |s| parse_digits(s, 1, 2))?;
        if time_parts.next().is_some() {
            return None;
        }
        let micros = match fraction {
            None => 0,
            Some(f) => {
                let digits = f.get(..f.len().min(6))?;
                parse_digits(f, 1, 12)?;
                parse_digits(digits, 1, 6)? * 10u32.pow(6 - digits.len() as u32)
            }
        };
        let offset_minutes = match tz {
            "" => None,
            "Z" | "z" => Some(0),
            _ => {
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                let tz = &tz[1..];
                let (hh, mm) = match tz.split_once(':') {
                    Some((hh, mm)) => (hh, mm),
                    None => tz.split_at_checked(2.min(tz.len()))?,
                };
                let hh = parse_digits(hh, 2, 2)?;
                let mm = if mm.is_empty() {
                    0
                } else {
                    parse_digits(mm, 2, 2)?
                };
                if hh > 23 || mm > 59 {
                    return None;
                }
                Some(sign * (hh * 60 + mm) as i32)
            }
        };
        let civil = civil::DateTime::new(
            i16::try_from(year).ok()?,
            i8::try_from(month).ok()?,
            i8::try_from(day).ok()?,
            i8::try_from(hour).ok()?,
            i8::try_from(minute).ok()?,
            i8::try_from(second).ok()?,
            i32::try_from(micros).ok()? * 1000,
        )
        .ok()?;
        Some(DateTime {
            civil,
            offset_minutes,
        })
    }

    /// The current UTC time.
    pub(super) fn now_utc() -> DateTime {
        DateTime {
            civil: jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .datetime(),
            offset_minutes: Some(0),
        }
    }

    /// Python's strftime (C locale): `%Y %y %m %d %H %I %M %S %f %p %b %B %a %A %j %z %Z %%`
    /// through jiff; any other directive is kept as written, as Python does.
    pub(super) fn format(&self, format: &str) -> String {
        let mut spec = String::with_capacity(format.len() + 8);
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                spec.push(c);
                continue;
            }
            match chars.next() {
                None => spec.push_str("%%"),
                Some(
                    d @ ('Y' | 'y' | 'm' | 'd' | 'H' | 'I' | 'M' | 'S' | 'p' | 'b' | 'B' | 'a'
                    | 'A' | 'j' | '%'),
                ) => {
                    spec.push('%');
                    spec.push(d);
                }
                Some('f') => spec.push_str("%6f"),
                Some('z') if self.offset_minutes.is_some() => spec.push_str("%z"),
                Some('z') => {}
                Some('Z') => spec.push_str(&self.zone_name()),
                Some(other) => {
                    spec.push_str("%%");
                    spec.push(other);
                }
            }
        }
        let mut time = BrokenDownTime::from(self.civil);
        if let Some(minutes) = self.offset_minutes {
            time.set_offset(Offset::from_seconds(minutes * 60).ok());
        }
        time.to_string(spec.as_str()).unwrap_or_default()
    }

    /// What Python's `%Z` prints for a fixed offset: `UTC`, `UTC+01:00`, or nothing.
    fn zone_name(&self) -> String {
        match self.offset_minutes {
            None => String::new(),
            Some(0) => "UTC".to_owned(),
            Some(m) => format!("UTC{}{:02}:{:02}", sign(m), m.abs() / 60, m.abs() % 60),
        }
    }
}

/// Python's `str(datetime)`: `2023-08-18 16:34:27.678406+00:00`.
impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.civil;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            c.year(),
            c.month(),
            c.day(),
            c.hour(),
            c.minute(),
            c.second()
        )?;
        let micros = c.subsec_nanosecond() / 1000;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        if let Some(m) = self.offset_minutes {
            write!(f, "{}{:02}:{:02}", sign(m), m.abs() / 60, m.abs() % 60)?;
        }
        Ok(())
    }
}

fn sign(minutes: i32) -> char {
    if minutes < 0 { '-' } else { '+' }
}

/// ASCII digits only, between `min` and `max` of them.
fn parse_digits(s: &str, min: usize, max: usize) -> Option<u32> {
    let ok = (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if ok { s.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_parser_accepts_djangos_forms() {
        let dt = DateTime::parse("2024-02-29 7:05-05:30").unwrap();
        assert_eq!(dt.to_string(), "2024-02-29 07:05:00-05:30");
        assert_eq!(dt.format("%A %B %y %H"), "Thursday February 24 07");
        let dt = DateTime::parse("2023-01-01T00:00:00,5+0100").unwrap();
        assert_eq!(dt.to_string(), "2023-01-01 00:00:00.500000+01:00");
        assert_eq!(
            DateTime::parse("2023-01-01T00:00:00")
                .unwrap()
                .format("%z%Z"),
            ""
        );
        assert_eq!(DateTime::parse("2023-13-01T00:00"), None);
        assert_eq!(DateTime::parse("2023-01-01"), None);
        assert_eq!(DateTime::parse("2023-02-29T00:00"), None);
        assert_eq!(DateTime::parse("2023-01-01T24:00"), None);
        let dt = DateTime::parse("2024-12-31T23:59:59.5Z").unwrap();
        assert_eq!(dt.format("%j %a %f %z %Z"), "366 Tue 500000 +0000 UTC");
        assert_eq!(
            DateTime::parse("2023-06-01T12:00+01:30")
                .unwrap()
                .format("%Z|%I%p|%"),
            "UTC+01:30|12PM|%"
        );
    }
}
