//! External identifiers: a one-letter kind prefix followed by the 13-character Crockford
//! base32 of a u64, so ids sort like the numbers the store keys on (e.g. `W000000000001`).

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Kinds of identifiers, each with its prefix letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A webhook (`W...`).
    Webhook,
    /// An event (`E...`).
    Event,
    /// A delivery (`D...`).
    Delivery,
    /// An API token (`T...`).
    Token,
}

impl Kind {
    fn prefix(self) -> char {
        match self {
            Kind::Webhook => 'W',
            Kind::Event => 'E',
            Kind::Delivery => 'D',
            Kind::Token => 'T',
        }
    }
}

/// Formats `n` as an id of `kind`.
pub fn format(kind: Kind, n: u64) -> String {
    let mut out = String::with_capacity(14);
    out.push(kind.prefix());
    for i in (0..13).rev() {
        out.push(ALPHABET[((n >> (i * 5)) & 31) as usize] as char);
    }
    out
}

/// Parses an id of `kind`; None when it is not one (callers answer NOT_FOUND).
pub fn parse(kind: Kind, id: &str) -> Option<u64> {
    let rest = id.strip_prefix(kind.prefix())?;
    if rest.len() != 13 {
        return None;
    }
    let mut n: u64 = 0;
    for (i, c) in rest.bytes().enumerate() {
        let digit = ALPHABET.iter().position(|&a| a == c)? as u64;
        if i == 0 && digit > 15 {
            return None; // more than 64 bits
        }
        n = (n << 5) | digit;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_like_their_numbers() {
        for n in [0, 1, 31, 32, 1 << 40, u64::MAX] {
            assert_eq!(parse(Kind::Webhook, &format(Kind::Webhook, n)), Some(n));
        }
        assert!(format(Kind::Event, 9) < format(Kind::Event, 10));
        assert!(format(Kind::Event, 31) < format(Kind::Event, 32));
    }

    #[test]
    fn foreign_or_malformed_ids_do_not_parse() {
        let id = format(Kind::Webhook, 7);
        assert_eq!(parse(Kind::Event, &id), None);
        assert_eq!(parse(Kind::Webhook, "W123"), None);
        assert_eq!(parse(Kind::Webhook, "WZZZZZZZZZZZZZ"), None);
        assert_eq!(parse(Kind::Webhook, "W00000000000I"), None);
        assert_eq!(parse(Kind::Webhook, ""), None);
    }
}
