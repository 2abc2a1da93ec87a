//! Authentication and authorization: the admin token, account tokens (random, stored as
//! SHA-256 hashes, with scopes), and the caller they identify. Accepts `Bearer <token>`
//! and OnCall's bare `<token>`. Error texts never contain the presented token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Service;
use crate::error::{Error, FieldViolation, Result};
use crate::ids::{self, Kind};
use crate::model::{ApiToken, Scope};

/// Who is calling: an account and what its token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account whose data the call sees.
    pub account_id: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// PERMISSION_DENIED unless the caller has `scope`.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "this token lacks the {} scope",
                scope.as_str()
            )))
        }
    }
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token: `whk_` + 32 random bytes, base64url.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The token of an Authorization value: `Bearer <t>`, `Token <t>` or a bare `<t>`.
fn presented_token(authorization: Option<&str>) -> Result<&str> {
    let value = authorization
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Unauthenticated("authentication credentials were not provided".into())
        })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .or_else(|| value.strip_prefix("Token "))
        .unwrap_or(value)
        .trim();
    Ok(token)
}

fn invalid_token() -> Error {
    Error::Unauthenticated("invalid token".into())
}

/// What an account route answers to the admin token, which opens the admin API only.
fn admin_token_on_account_route() -> Error {
    Error::Unauthenticated(
        "this is the admin token, which only opens the admin API (/admin/v1/, \
         webhooks.v1.AdminService); account routes need an account token: create one with \
         POST /admin/v1/tokens or AdminService/CreateApiToken"
            .into(),
    )
}

impl Service {
    /// The caller identified by an Authorization value (an account token; the admin token is
    /// refused with a message saying what it is).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller> {
        let token = presented_token(authorization)?;
        // While the store is lost, at once rather than after waiting for a connection.
        self.health.check()?;
        let presented = hash_token(token);
        let Some(stored) = self.store.token_by_hash(&presented).await? else {
            return Err(if self.is_admin_hash(&presented) {
                admin_token_on_account_route()
            } else {
                invalid_token()
            });
        };
        Ok(Caller {
            account_id: stored.account_id,
            scopes: stored.scopes,
        })
    }

    /// UNAUTHENTICATED unless the Authorization value carries the admin token.
    pub fn authenticate_admin(&self, authorization: Option<&str>) -> Result<()> {
        let token = presented_token(authorization)?;
        if self.is_admin_hash(&hash_token(token)) {
            Ok(())
        } else {
            Err(invalid_token())
        }
    }

    /// Whether a token hash is the admin token's. Compares hashes: equal-length, no early
    /// exit on the secret itself.
    fn is_admin_hash(&self, presented: &[u8; 32]) -> bool {
        presented
            .iter()
            .zip(self.admin_token_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Issues an account token; the clear token is returned only here.
    pub async fn create_token(
        &self,
        account_id: &str,
        scopes: &[String],
    ) -> Result<(ApiToken, String)> {
        let mut violations = Vec::new();
        if account_id.trim().is_empty() {
            violations.push(FieldViolation::new("account_id", "This field is required."));
        } else if account_id.len() > 128 || account_id.chars().any(|c| c.is_control()) {
            violations.push(FieldViolation::new(
                "account_id",
                "must be at most 128 characters without control characters",
            ));
        }
        let mut parsed = Vec::new();
        if scopes.is_empty() {
            violations.push(FieldViolation::new(
                "scopes",
                "at least one of webhooks:read, webhooks:write is required",
            ));
        }
        for scope in scopes {
            match Scope::parse(scope) {
                Some(s) if !parsed.contains(&s) => parsed.push(s),
                Some(_) => {}
                None => violations.push(FieldViolation::new(
                    "scopes",
                    format!("unknown scope {scope:?}; expected webhooks:read or webhooks:write"),
                )),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let token = generate_token();
        let stored = ApiToken {
            id: self.store.next_id().await?,
            account_id: account_id.to_string(),
            scopes: parsed,
        };
        self.store.put_token(&hash_token(&token), &stored).await?;
        Ok((stored, token))
    }

    /// Revokes a token by id; NOT_FOUND when there is none.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let not_found = || Error::NotFound {
            kind: "token",
            id: id.to_string(),
        };
        let n = ids::parse(Kind::Token, id).ok_or_else(not_found)?;
        if !self.store.delete_token(n).await? {
            return Err(not_found());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_accepted_bare_or_as_bearer() {
        assert_eq!(presented_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(presented_token(Some("abc")).unwrap(), "abc");
        assert_eq!(presented_token(Some("Token abc")).unwrap(), "abc");
        assert!(presented_token(Some("  ")).is_err());
        assert!(presented_token(None).is_err());
    }

    #[test]
    fn generated_tokens_are_unique_and_hash_stably() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with("whk_") && a.len() > 40);
        assert_eq!(hash_token(&a), hash_token(&a));
    }
}
