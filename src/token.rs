//! xDS client tokens: proof of a proxy's namespace and service account.
//!
//! Without a token, the identity a proxy gets a certificate for comes from
//! its node metadata, which any process that reaches the xDS port can
//! claim. With `sextant serve --require-token`, every ADS stream must carry
//! `authorization: Bearer <token>` (gRPC metadata; `sextant bootstrap
//! --token-file` puts it in Envoy's `initial_metadata`), where the token is
//! a JWT (HS256) that `sextant token` signed with a key only Sextant holds,
//! and whose subject names the namespace and service account the node
//! claims: `system:serviceaccount:<namespace>:<service account>`, the form
//! of Kubernetes service-account tokens that istiod reviews.
//!
//! The signing key is 32 random bytes in `<ca-dir>/xds-token.key` (mode
//! 0600), generated on first use, so tokens stay valid across restarts;
//! delete the file to revoke every token at once.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// File name of the signing key inside the CA directory.
pub const KEY_FILE: &str = "xds-token.key";
/// The `iss` and `aud` claims of every token.
const ISSUER: &str = "sextant";
const AUDIENCE: &str = "sextant-xds";
/// Length of the HS256 key, in bytes.
const KEY_BYTES: usize = 32;

/// Why a token could not be issued or was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the key file failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists with the wrong length.
    #[error("{}: a token key is {KEY_BYTES} bytes, this file has {length}", path.display())]
    BadKey {
        /// Bytes in the file.
        length: usize,
        /// The key file.
        path: PathBuf,
    },
    /// The key could not be used for HS256.
    #[error("{}: not a usable signing key: {source}", path.display())]
    Signing {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// No random bytes for a new key.
    #[error("no random bytes for a token key: {0}")]
    Random(getrandom::Error),
    /// The stream carried no `authorization: Bearer` metadata.
    #[error("no token: the stream carries no `authorization: Bearer <token>` metadata (see `sextant token` and `sextant bootstrap --token-file`)")]
    Missing,
    /// Signature, expiry, issuer or audience check failed.
    #[error("invalid token: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    /// The token proves another identity than the node claims.
    #[error("the token is for {token}, but the node claims {claimed}")]
    Mismatch {
        /// `system:serviceaccount:<ns>:<sa>` of the token.
        token: String,
        /// The same form, from the node metadata.
        claimed: String,
    },
}

/// The claims of a token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    /// Issued at, Unix seconds.
    iat: u64,
    /// Expiry, Unix seconds.
    exp: u64,
}

/// Issues and checks tokens with one signing key.
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAuthority { key: <redacted> }")
    }
}

/// `system:serviceaccount:<namespace>:<service account>`.
pub fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

impl TokenAuthority {
    /// Reads the key in `ca_dir` ([`KEY_FILE`]), or generates and writes it
    /// (mode 0600; the directory is created 0700 if missing).
    ///
    /// # Errors
    /// [`TokenError::Io`], [`TokenError::BadKey`], [`TokenError::Random`].
    pub fn load_or_generate(ca_dir: &Path) -> Result<Self, TokenError> {
        let path = ca_dir.join(KEY_FILE);
        let io = |action| {
            let path = path.clone();
            move |source| TokenError::Io {
                path,
                action,
                source,
            }
        };
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(ca_dir)
                .map_err(io("creating the directory"))?;
            let mut key = [0u8; KEY_BYTES];
            getrandom::fill(&mut key).map_err(TokenError::Random)?;
            // create_new: two processes starting at once keep one key.
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => file.write_all(&key).map_err(io("writing"))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("creating")(e)),
            }
        }
        let key = fs::read(&path).map_err(io("reading"))?;
        if key.len() != KEY_BYTES {
            return Err(TokenError::BadKey {
                length: key.len(),
                path,
            });
        }
        let signing = |source| TokenError::Signing {
            path: path.clone(),
            source,
        };
        Ok(TokenAuthority {
            encoding: EncodingKey::from_secret(&key).map_err(signing)?,
            decoding: DecodingKey::from_secret(&key).map_err(signing)?,
        })
    }

    /// A token for `namespace`/`service_account`, valid for `ttl` from `now`.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] only if encoding fails (it does not with a valid key).
    pub fn issue(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, TokenError> {
        let iat = unix_seconds(now);
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: subject(namespace, service_account),
            iat,
            exp: iat + ttl.as_secs(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(TokenError::Invalid)
    }

    /// Checks the `authorization` metadata of a stream (`Bearer <token>`)
    /// against the identity its node claims; `Ok` when the token is valid
    /// now (signature, issuer, audience, expiry with no leeway) and names
    /// that identity.
    ///
    /// # Errors
    /// [`TokenError::Missing`], [`TokenError::Invalid`], [`TokenError::Mismatch`].
    pub fn check(
        &self,
        authorization: Option<&str>,
        namespace: &str,
        service_account: &str,
    ) -> Result<(), TokenError> {
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(TokenError::Missing)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(TokenError::Invalid)?
            .claims;
        let claimed = subject(namespace, service_account);
        if claims.sub != claimed {
            return Err(TokenError::Mismatch {
                token: claims.sub,
                claimed,
            });
        }
        Ok(())
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> (tempfile::TempDir, TokenAuthority) {
        let dir = tempfile::tempdir().unwrap();
        let authority = TokenAuthority::load_or_generate(&dir.path().join("ca")).unwrap();
        (dir, authority)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_token_proves_the_identity_it_names_and_no_other() {
        let (_dir, authority) = authority();
        let token = authority
            .issue("shop", "cart", Duration::from_secs(60), SystemTime::now())
            .unwrap();
        authority
            .check(Some(&bearer(&token)), "shop", "cart")
            .unwrap();
        let err = authority
            .check(Some(&bearer(&token)), "shop", "payments")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("system:serviceaccount:shop:cart")
                && err.contains("system:serviceaccount:shop:payments"),
            "{err}"
        );
        assert!(matches!(
            authority.check(None, "shop", "cart"),
            Err(TokenError::Missing)
        ));
        assert!(matches!(
            authority.check(Some(&token), "shop", "cart"),
            Err(TokenError::Missing)
        ));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let (_dir, authority) = authority();
        let expired = authority
            .issue(
                "shop",
                "cart",
                Duration::from_secs(60),
                SystemTime::now() - Duration::from_secs(120),
            )
            .unwrap();
        let err = authority
            .check(Some(&bearer(&expired)), "shop", "cart")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid token") && err.contains("xpired"),
            "{err}"
        );

        let (_other_dir, other) = self::authority();
        let foreign = other
            .issue("shop", "cart", Duration::from_secs(60), SystemTime::now())
            .unwrap();
        assert!(matches!(
            authority.check(Some(&bearer(&foreign)), "shop", "cart"),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            authority.check(Some("Bearer not.a.jwt"), "shop", "cart"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn the_key_is_kept_private_and_survives_a_restart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = TokenAuthority::load_or_generate(dir.path()).unwrap();
        let token = first
            .issue("shop", "cart", Duration::from_secs(60), SystemTime::now())
            .unwrap();
        let again = TokenAuthority::load_or_generate(dir.path()).unwrap();
        again.check(Some(&bearer(&token)), "shop", "cart").unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(format!("{again:?}"), "TokenAuthority { key: <redacted> }");

        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = TokenAuthority::load_or_generate(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("xds-token.key") && err.contains("32 bytes"),
            "{err}"
        );
    }
}
