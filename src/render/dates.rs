//! The date-times OnCall's date filters read and print: Django's `parse_datetime` grammar,
//! Python's `str(datetime)` and a strftime subset.

/// A calendar date-time with an optional UTC offset, enough for OnCall's date filters.
#[derive(Debug, PartialEq)]
pub(super) struct DateTime {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
    pub(super) micros: u32,
    pub(super) offset_minutes: Option<i32>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

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
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(i64::from(year), month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(DateTime {
            year: i64::from(year),
            month,
            day,
            hour,
            minute,
            second,
            micros,
            offset_minutes,
        })
    }

    /// A best-effort strftime: `%Y %y %m %d %H %I %M %S %f %p %b %B %a %A %j %z %Z %%`; any
    /// other directive is kept as written.
    pub(super) fn format(&self, format: &str) -> String {
        let mut out = String::with_capacity(format.len() + 16);
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(directive) = chars.next() else {
                out.push('%');
                break;
            };
            let month_name = MONTHS[self.month as usize - 1];
            let weekday_name = WEEKDAYS[self.weekday()];
            let piece = match directive {
                'Y' => format!("{:04}", self.year),
                'y' => format!("{:02}", self.year.rem_euclid(100)),
                'm' => format!("{:02}", self.month),
                'd' => format!("{:02}", self.day),
                'H' => format!("{:02}", self.hour),
                'I' => format!("{:02}", (self.hour + 11) % 12 + 1),
                'M' => format!("{:02}", self.minute),
                'S' => format!("{:02}", self.second),
                'f' => format!("{:06}", self.micros),
                'p' => (if self.hour < 12 { "AM" } else { "PM" }).to_owned(),
                'b' => month_name[..3].to_owned(),
                'B' => month_name.to_owned(),
                'a' => weekday_name[..3].to_owned(),
                'A' => weekday_name.to_owned(),
                'j' => format!("{:03}", self.day_of_year()),
                'z' => self.offset_minutes.map_or_else(String::new, |m| {
                    format!("{}{:02}{:02}", sign(m), m.abs() / 60, m.abs() % 60)
                }),
                'Z' => match self.offset_minutes {
                    None => String::new(),
                    Some(0) => "UTC".to_owned(),
                    Some(m) => format!("UTC{}{:02}:{:02}", sign(m), m.abs() / 60, m.abs() % 60),
                },
                '%' => "%".to_owned(),
                other => format!("%{other}"),
            };
            out.push_str(&piece);
        }
        out
    }

    /// 0 = Sunday.
    fn weekday(&self) -> usize {
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as usize
    }

    fn day_of_year(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) - days_from_civil(self.year, 1, 1) + 1
    }
}

/// Python's `str(datetime)`: `2023-08-18 16:34:27.678406+00:00`.
impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
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

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
        for days in [-719_468, -1, 0, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
