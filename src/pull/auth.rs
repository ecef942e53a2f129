//! Entra tokens (pull.md, endpoints and credentials): client credentials (app-only) for
//! Partner Center, the refresh-token grant (App+User, secure application model) for FX.
//! Credentials come only from the environment, are held in [`Secret`] (whose `Debug` is
//! redacted and which has no `Display`), and are sent only in a token request's body or an
//! `Authorization` header. A token is refreshed two minutes before it expires and once
//! after a `401`. Entra's error codes become sentences a person can act on.

use super::http::{Client, Request};
use super::PullError;
use crate::error::{Error, Result};
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Scope of Partner Center app-only tokens.
pub const PARTNER_CENTER_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default";
/// Scope of Partner API (FX) App+User tokens.
pub const PARTNER_API_SCOPE: &str = "https://api.partner.microsoft.com/.default";
/// A token this close to expiry is refreshed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// Days before `CSPCOST_PC_SECRET_EXPIRES_ON` that every run warns.
pub const SECRET_WARNING_DAYS: i64 = 30;

/// A credential or token: never printed (`Debug` shows `***`, no `Display`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(v: impl Into<String>) -> Secret {
        Secret(v.into())
    }
    /// The value, for a request body or header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How tokens are obtained.
#[derive(Debug)]
pub enum Grant {
    /// `client_credentials` (app-only).
    ClientCredentials,
    /// `refresh_token` from this file; the rotated token replaces the file's content.
    RefreshToken(PathBuf),
}

#[derive(Debug)]
struct Cached {
    access: Secret,
    expires_at: Instant,
}

/// Tokens for one API.
#[derive(Debug)]
pub struct TokenSource {
    token_url: url::Url,
    client_id: String,
    secret: Secret,
    grant: Grant,
    scope: &'static str,
    cached: Mutex<Option<Cached>>,
}

fn env_required(var: &'static str, why: &'static str) -> Result<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PullError::MissingCredential { var, why }.into())
}

/// What `CSPCOST_PC_SECRET_EXPIRES_ON` says about `today`: `Ok(Some(warning))` within 30
/// days of it, an error after it.
pub fn check_secret_expiry(expires_on: Option<&str>, today: NaiveDate) -> Result<Option<String>> {
    let Some(text) = expires_on.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|d| d.with_timezone(&chrono::Utc).date_naive())
        })
        .ok_or_else(|| {
            Error::config(format!(
                "CSPCOST_PC_SECRET_EXPIRES_ON '{text}': expected a date YYYY-MM-DD"
            ))
        })?;
    let left = (date - today).num_days();
    if left < 0 {
        return Err(PullError::SecretExpired { date }.into());
    }
    Ok((left <= SECRET_WARNING_DAYS).then(|| {
        format!(
            "warning: the Partner Center client secret expires on {date} ({left} day(s) left): create a new one in Entra and update CSPCOST_PC_CLIENT_SECRET and CSPCOST_PC_SECRET_EXPIRES_ON before then"
        )
    }))
}

impl TokenSource {
    /// App-only tokens for Partner Center, from `CSPCOST_PC_TENANT_ID`, `_CLIENT_ID`,
    /// `_CLIENT_SECRET`. Checks the secret's expiry date first (warning or exit 2).
    pub fn partner_center(login: &url::Url) -> Result<TokenSource> {
        TokenSource::from_env(login, Grant::ClientCredentials, PARTNER_CENTER_SCOPE)
    }

    /// App+User tokens for the Partner API (FX) from the refresh token in
    /// `CSPCOST_PC_REFRESH_TOKEN_FILE`.
    pub fn partner_api(login: &url::Url) -> Result<TokenSource> {
        let file = env_required(
            "CSPCOST_PC_REFRESH_TOKEN_FILE",
            "the FX file needs an App+User token: set it to the file holding the refresh token of the secure application model consent",
        )?;
        TokenSource::from_env(
            login,
            Grant::RefreshToken(PathBuf::from(file)),
            PARTNER_API_SCOPE,
        )
    }

    fn from_env(login: &url::Url, grant: Grant, scope: &'static str) -> Result<TokenSource> {
        if let Some(w) = check_secret_expiry(
            std::env::var("CSPCOST_PC_SECRET_EXPIRES_ON")
                .ok()
                .as_deref(),
            chrono::Utc::now().date_naive(),
        )? {
            crate::progress::log(&w);
        }
        let tenant = env_required(
            "CSPCOST_PC_TENANT_ID",
            "the partner's Entra tenant (GUID or domain) that owns the app",
        )?;
        let client_id = env_required(
            "CSPCOST_PC_CLIENT_ID",
            "the application (client) ID of the partner's Entra app",
        )?;
        let secret = Secret::new(env_required(
            "CSPCOST_PC_CLIENT_SECRET",
            "the client secret of the partner's Entra app",
        )?);
        if !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(Error::config(format!(
                "CSPCOST_PC_TENANT_ID '{tenant}': expected a tenant GUID or domain"
            )));
        }
        let token_url = login
            .join(&format!("{tenant}/oauth2/v2.0/token"))
            .map_err(|e| Error::config(format!("CSPCOST_LOGIN_URL: {e}")))?;
        Ok(TokenSource {
            token_url,
            client_id,
            secret,
            grant,
            scope,
            cached: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one unless it expires within two minutes.
    pub async fn bearer(&self, client: &Client) -> Result<Secret> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.expires_at > Instant::now() + REFRESH_MARGIN {
                return Ok(c.access.clone());
            }
        }
        // Boxed: `Client::send` awaits this function, so the futures would nest forever.
        let fresh = Box::pin(self.request_token(client)).await?;
        let access = fresh.access.clone();
        *cached = Some(fresh);
        Ok(access)
    }

    /// Forget `used` after an API refused it with 401 (a concurrent request may already
    /// have replaced it: then the newer token stays).
    pub async fn invalidate(&self, used: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().map(|c| &c.access == used).unwrap_or(false) {
            *cached = None;
        }
    }

    async fn request_token(&self, client: &Client) -> Result<Cached> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.secret.expose())
            .append_pair("scope", self.scope);
        match &self.grant {
            Grant::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
            }
            Grant::RefreshToken(file) => {
                let rt = read_refresh_token(file)?;
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", rt.expose());
            }
        }
        let req = Request {
            method: reqwest::Method::POST,
            url: self.token_url.clone(),
            headers: Vec::new(),
            form: Some(form.finish()),
        };
        let resp = client.send(&req, None).await?;
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        if !(200..300).contains(&resp.status) {
            return Err(PullError::Auth {
                sentence: self.explain(resp.status, &body),
            }
            .into());
        }
        let access = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PullError::Auth {
                sentence: format!("{}: the token response has no access_token", req.endpoint()),
            })?;
        let expires_in = match body.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        if let Grant::RefreshToken(file) = &self.grant {
            // Entra rotates the refresh token: the old one may stop working, so the new
            // one must be saved before anything else can fail.
            if let Some(new_rt) = body.get("refresh_token").and_then(|v| v.as_str()) {
                save_refresh_token(file, new_rt)?;
            }
        }
        Ok(Cached {
            access: Secret::new(access),
            expires_at: Instant::now() + Duration::from_secs(expires_in),
        })
    }

    /// The sentence for a refused token request (never the request itself: it holds the
    /// secret).
    fn explain(&self, status: u16, body: &serde_json::Value) -> String {
        let error = body.get("error").and_then(|v| v.as_str()).unwrap_or("");
        let desc = body
            .get("error_description")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let codes: Vec<u64> = body
            .get("error_codes")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
            .unwrap_or_default();
        let has = |code: u64| codes.contains(&code) || desc.contains(&format!("AADSTS{code}:"));
        let app = &self.client_id;
        if has(7000222) {
            return format!("Entra refused the Partner Center app {app}: its client secret has expired (AADSTS7000222). Create a new secret under App registrations > Certificates & secrets, set CSPCOST_PC_CLIENT_SECRET and CSPCOST_PC_SECRET_EXPIRES_ON, then rerun");
        }
        if has(700082) {
            let file = match &self.grant {
                Grant::RefreshToken(f) => f.display().to_string(),
                Grant::ClientCredentials => "CSPCOST_PC_REFRESH_TOKEN_FILE".into(),
            };
            return format!("Entra refused the refresh token in {file}, which has expired (AADSTS700082, unused for too long). Repeat the secure application model consent for app {app} as an admin agent and save the new refresh token in that file");
        }
        match error {
            "invalid_client" => format!("Entra refused the app credentials (invalid_client): check that CSPCOST_PC_CLIENT_ID ({app}) and CSPCOST_PC_CLIENT_SECRET belong to one app registered in tenant CSPCOST_PC_TENANT_ID, and that the secret is the value, not its ID"),
            "unauthorized_client" => format!("Entra does not allow app {app} this grant (unauthorized_client): the app must be a multi-tenant web app with the Partner Center API permission (user_impersonation) granted by an admin"),
            "invalid_grant" => format!("Entra refused the grant (invalid_grant): {}", first_line(desc)),
            _ => format!("the token endpoint answered HTTP {status}{}{}", if error.is_empty() { String::new() } else { format!(" {error}") }, if desc.is_empty() { String::new() } else { format!(": {}", first_line(desc)) }),
        }
    }
}

/// First line of Entra's description (it appends trace and correlation IDs on later lines).
fn first_line(desc: &str) -> String {
    desc.lines().next().unwrap_or("").trim().to_string()
}

fn read_refresh_token(file: &Path) -> Result<Secret> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::config(format!(
            "{}: the refresh-token file is empty (CSPCOST_PC_REFRESH_TOKEN_FILE)",
            file.display()
        )));
    }
    Ok(Secret::new(t))
}

/// Replace the refresh-token file's content atomically, readable by its owner only.
fn save_refresh_token(file: &Path, token: &str) -> Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "refresh-token".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(&tmp, e))?;
        }
        f.write_all(token.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, file).map_err(|e| Error::io(file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn secret_expiry_warns_then_refuses() {
        assert_eq!(check_secret_expiry(None, d("2026-01-01")).unwrap(), None);
        assert_eq!(
            check_secret_expiry(Some("2026-03-01"), d("2026-01-01")).unwrap(),
            None
        );
        let w = check_secret_expiry(Some("2026-01-31"), d("2026-01-01"))
            .unwrap()
            .unwrap();
        assert!(w.contains("expires on 2026-01-31 (30 day(s) left)"), "{w}");
        assert!(check_secret_expiry(Some("2026-01-01"), d("2026-01-01"))
            .unwrap()
            .is_some());
        let e = check_secret_expiry(Some("2025-12-31"), d("2026-01-01")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("expired on 2025-12-31"), "{e}");
        assert_eq!(
            check_secret_expiry(Some("soon"), d("2026-01-01"))
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
    }

    #[test]
    fn refresh_token_saved_atomically_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rt");
        std::fs::write(&f, "old\n").unwrap();
        save_refresh_token(&f, "new-token").unwrap();
        assert_eq!(read_refresh_token(&f).unwrap().expose(), "new-token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
