//! The Authorization header from basic_auth / bearer_token(_file) /
//! authorization. Credential files are small and re-read on every request, so
//! rotated credentials take effect on the next request.

use base64::Engine as _;
use http::HeaderValue;

use super::error::{ClientError, ErrorKind};
use super::secret::Secret;
use super::settings::ClientSettings;

#[derive(Debug, Clone)]
pub(super) enum Credential {
    Inline(Secret),
    File { field: &'static str, path: String },
}

#[derive(Debug, Clone)]
pub(super) enum AuthSource {
    None,
    Basic {
        username: String,
        password: Option<Credential>,
    },
    Scheme {
        scheme: String,
        credential: Option<Credential>,
    },
}

fn read_credential(c: &Credential) -> Result<Secret, ClientError> {
    match c {
        Credential::Inline(s) => Ok(s.clone()),
        Credential::File { field, path } => std::fs::read_to_string(path)
            // Trailing newlines of files written by editors or `echo` are not part of the value.
            .map(|s| Secret::new(s.trim()))
            .map_err(|e| {
                ClientError::new(
                    ErrorKind::Config,
                    format!("cannot read {field} {path:?}: {e}"),
                )
            }),
    }
}

impl AuthSource {
    pub(super) fn from_settings(s: &ClientSettings) -> AuthSource {
        if let Some(b) = &s.basic_auth {
            let password = match (&b.password, &b.password_file) {
                (Some(p), _) => Some(Credential::Inline(p.clone())),
                (None, Some(f)) => Some(Credential::File {
                    field: "basic_auth.password_file",
                    path: f.clone(),
                }),
                (None, None) => None,
            };
            return AuthSource::Basic {
                username: b.username.clone(),
                password,
            };
        }
        if let Some(a) = &s.authorization {
            let scheme = match a.type_.trim() {
                "" => "Bearer".to_owned(),
                t => t.to_owned(),
            };
            let credential = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => Some(Credential::Inline(c.clone())),
                (None, Some(f)) => Some(Credential::File {
                    field: "authorization.credentials_file",
                    path: f.clone(),
                }),
                (None, None) => None,
            };
            return AuthSource::Scheme { scheme, credential };
        }
        if let Some(t) = &s.bearer_token {
            return AuthSource::Scheme {
                scheme: "Bearer".to_owned(),
                credential: Some(Credential::Inline(t.clone())),
            };
        }
        if let Some(f) = &s.bearer_token_file {
            return AuthSource::Scheme {
                scheme: "Bearer".to_owned(),
                credential: Some(Credential::File {
                    field: "bearer_token_file",
                    path: f.clone(),
                }),
            };
        }
        AuthSource::None
    }

    /// The Authorization header value to send now (files are read now).
    pub(super) fn header(&self) -> Result<Option<HeaderValue>, ClientError> {
        let text = match self {
            AuthSource::None => return Ok(None),
            AuthSource::Basic { username, password } => {
                let pw = match password {
                    Some(c) => read_credential(c)?,
                    None => Secret::default(),
                };
                let raw = format!("{username}:{}", pw.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            AuthSource::Scheme { scheme, credential } => {
                let cred = match credential {
                    Some(c) => read_credential(c)?,
                    None => Secret::default(),
                };
                format!("{scheme} {}", cred.expose())
            }
        };
        let mut v = HeaderValue::from_str(&text).map_err(|_| {
            ClientError::new(
                ErrorKind::Config,
                "credentials contain characters not allowed in an HTTP header",
            )
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }
}
