//! Credentials embedded in a URL (`https://user:password@host/...`): the masked form every
//! API output, log entry and status shows, the stored URL an update that sends the masked form
//! back keeps, and the basic auth a delivery sends them as (the request line and `Host` never
//! carry them).

use crate::model::SECRET_PLACEHOLDER;

/// Byte range of the userinfo (without the `@`) in `url`, if it has one.
fn userinfo_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_len = url[start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - start);
    let at = url[start..start + authority_len].rfind('@')?;
    Some((start, start + at))
}

/// Whether `url` carries credentials.
pub fn has_credentials(url: &str) -> bool {
    userinfo_range(url).is_some()
}

/// `url` with its credentials masked: `user:password@` shows as `user:****************@`, a
/// lone user part (often a token) as `****************@`.
pub fn mask(url: &str) -> String {
    let Some((start, end)) = userinfo_range(url) else {
        return url.to_string();
    };
    let shown = match url[start..end].split_once(':') {
        Some((user, _)) => format!("{user}:{SECRET_PLACEHOLDER}"),
        None => SECRET_PLACEHOLDER.to_string(),
    };
    format!("{}{shown}{}", &url[..start], &url[end..])
}

/// The URL an update stores: the stored URL whose masked form `given` is (a client sending
/// back what it read), else `given`.
pub fn unmask<'a>(given: String, stored: impl IntoIterator<Item = &'a String>) -> String {
    stored
        .into_iter()
        .find(|url| mask(url) == given)
        .cloned()
        .unwrap_or(given)
}

/// Splits the credentials off `url`: the URL without them, and `(user, password)`
/// percent-decoded (the password empty when absent).
pub fn split(url: &str) -> (String, Option<(String, String)>) {
    let Some((start, end)) = userinfo_range(url) else {
        return (url.to_string(), None);
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = url[start..end]
        .split_once(':')
        .unwrap_or((&url[start..end], ""));
    let bare = format!("{}{}", &url[..start], &url[end + 1..]);
    (bare, Some((decode(user), decode(password))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_nothing_else_changes() {
        assert_eq!(
            mask("https://bob:hunter2@example.com/a@b?x=@"),
            "https://bob:****************@example.com/a@b?x=@"
        );
        assert_eq!(
            mask("https://tok3n@example.com"),
            "https://****************@example.com"
        );
        assert_eq!(
            mask("https://example.com/p?mail=a@b"),
            "https://example.com/p?mail=a@b"
        );
        assert_eq!(mask("not a url"), "not a url");
    }

    #[test]
    fn the_masked_form_sent_back_keeps_the_stored_url() {
        let stored = ["https://bob:hunter2@example.com/".to_string()];
        assert_eq!(unmask(mask(&stored[0]), &stored), stored[0]);
        assert_eq!(
            unmask("https://bob:new@example.com/".into(), &stored),
            "https://bob:new@example.com/"
        );
        assert_eq!(
            unmask("https://other.example/".into(), &stored),
            "https://other.example/"
        );
    }

    #[test]
    fn credentials_split_off_percent_decoded() {
        assert_eq!(
            split("http://bob:p%40ss@127.0.0.1:9/hook"),
            (
                "http://127.0.0.1:9/hook".to_string(),
                Some(("bob".to_string(), "p@ss".to_string()))
            )
        );
        assert_eq!(
            split("https://tok@h/x"),
            (
                "https://h/x".to_string(),
                Some(("tok".to_string(), String::new()))
            )
        );
        assert_eq!(split("https://h/x"), ("https://h/x".to_string(), None));
    }
}
