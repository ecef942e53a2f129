//! The HTTP client of every pull: reqwest over rustls, one logical request at a time with
//! its retries ([`retry`](super::retry)), the token refreshed once after a `401`
//! ([`auth`](super::auth)), and a log of every logical request for the manifest (method,
//! path, status, attempts, MS-RequestId, bytes: never a header value or a body).

use super::auth::{Secret, TokenSource};
use super::retry::{self, Verdict};
use super::PullError;
use crate::error::Result;
use bytes::Bytes;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// One logical request as the manifest lists it.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query (no host, no credentials: they travel in headers and bodies).
    pub path: String,
    /// Final status; `null` when the connection itself kept failing.
    pub status: Option<u16>,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// The MS-RequestId every attempt carried.
    pub ms_request_id: String,
    /// Body bytes of the final response.
    pub bytes: u64,
}

/// What one attempt got back.
struct Reply {
    status: u16,
    /// The `Retry-After` header, as text.
    retry_after: Option<String>,
    body: Bytes,
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Full URL.
    pub url: Url,
    /// Extra headers (e.g. `MS-ContinuationToken` from a `links.next`).
    pub headers: Vec<(String, String)>,
    /// `application/x-www-form-urlencoded` body (token requests; holds credentials, never logged).
    pub form: Option<String>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: Url) -> Request {
        Request {
            method: reqwest::Method::GET,
            url,
            headers: Vec::new(),
            form: None,
        }
    }

    /// `GET /path?query` as the log names it.
    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, path_of(&self.url))
    }
}

/// A final response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body exactly as received.
    pub body: Bytes,
    /// Attempts it took.
    pub attempts: u32,
    /// The MS-RequestId every attempt carried.
    pub request_id: String,
}

/// The client: connection pool, the run's MS-CorrelationId, the request log.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    correlation_id: String,
    log: Mutex<Vec<RequestRecord>>,
    retries: AtomicU64,
}

/// A new random GUID (MS-RequestId, MS-CorrelationId), version 4 layout.
pub fn new_guid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

impl Client {
    /// A client with a fresh MS-CorrelationId for this run.
    pub fn new() -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("cspcost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PullError::Request {
                endpoint: "HTTP client".into(),
                detail: e.to_string(),
                attempts: 0,
                request_id: String::new(),
            })?;
        Ok(Client {
            http,
            correlation_id: new_guid(),
            log: Mutex::new(Vec::new()),
            retries: AtomicU64::new(0),
        })
    }

    /// The run's MS-CorrelationId.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Every logical request so far, in completion order.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Retries so far (attempts beyond the first, all requests).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Send with retries; a 2xx answer, or the error naming the endpoint.
    pub async fn send_ok(&self, req: &Request, auth: Option<&TokenSource>) -> Result<Response> {
        let resp = self.send(req, auth).await?;
        if (200..300).contains(&resp.status) {
            Ok(resp)
        } else {
            Err(PullError::Request {
                endpoint: req.endpoint(),
                detail: format!("HTTP {}{}", resp.status, snippet(&resp.body)),
                attempts: resp.attempts,
                request_id: resp.request_id,
            }
            .into())
        }
    }

    /// Send one logical request: the same MS-RequestId on every attempt, retries as
    /// [`retry::classify`] says, the token refreshed once after a 401. Returns the final
    /// response whatever its status; errors only when retries are used up or the
    /// connection keeps failing.
    pub async fn send(&self, req: &Request, auth: Option<&TokenSource>) -> Result<Response> {
        let request_id = new_guid();
        let mut backoff = retry::backoff();
        let mut refreshed = false;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let token = match auth {
                Some(a) => Some(a.bearer(self).await?),
                None => None,
            };
            let outcome = self.attempt(req, &request_id, token.as_ref()).await;
            let (verdict, last) = match &outcome {
                Ok(reply) => (
                    retry::classify(reply.status, reply.retry_after.as_deref()),
                    format!("HTTP {}", reply.status),
                ),
                // Dropped connections, resets, timeouts: back off and retry.
                Err(e) => (
                    Verdict::Backoff,
                    format!("connection failed: {}", error_chain(e)),
                ),
            };
            let wait = match verdict {
                Verdict::Done => None,
                Verdict::Unauthorized => match (auth, refreshed) {
                    (Some(a), false) => {
                        refreshed = true;
                        if let Some(t) = &token {
                            a.invalidate(t).await;
                        }
                        Some(Duration::ZERO)
                    }
                    (Some(_), true) => {
                        self.record(req, Some(401), attempts, &request_id, 0);
                        return Err(PullError::Unauthorized {
                            endpoint: req.endpoint(),
                        }
                        .into());
                    }
                    (None, _) => None,
                },
                Verdict::Wait(d) => Some(d),
                Verdict::Backoff => Some(backoff.next().unwrap_or(Duration::from_secs(10))),
            };
            match (wait, outcome) {
                (None, Ok(reply)) => {
                    let status = reply.status;
                    let body = reply.body;
                    self.record(req, Some(status), attempts, &request_id, body.len() as u64);
                    return Ok(Response {
                        status,
                        body,
                        attempts,
                        request_id,
                    });
                }
                (Some(d), outcome) if attempts < retry::MAX_ATTEMPTS => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    drop(outcome);
                    tokio::time::sleep(d).await;
                }
                (_, outcome) => {
                    return Err(self.given_up(req, outcome, &last, attempts, request_id));
                }
            }
        }
    }

    /// One attempt: the request with its headers (and token), and the whole reply.
    async fn attempt(
        &self,
        req: &Request,
        request_id: &str,
        token: Option<&Secret>,
    ) -> std::result::Result<Reply, reqwest::Error> {
        let mut b = self
            .http
            .request(req.method.clone(), req.url.clone())
            .header("Accept", "application/json")
            .header("MS-CorrelationId", &self.correlation_id)
            .header("MS-RequestId", request_id);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if let Some(t) = token {
            b = b.bearer_auth(t.expose());
        }
        if let Some(form) = &req.form {
            b = b
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.clone());
        }
        let r = b.send().await?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Reply {
            status,
            retry_after,
            body: r.bytes().await?,
        })
    }

    /// The error of a request whose retries are used up (`last` says what the last attempt
    /// got), recorded in the log.
    fn given_up(
        &self,
        req: &Request,
        outcome: std::result::Result<Reply, reqwest::Error>,
        last: &str,
        attempts: u32,
        request_id: String,
    ) -> crate::error::Error {
        let status = outcome.as_ref().ok().map(|o| o.status);
        let bytes = outcome.as_ref().map(|o| o.body.len() as u64).unwrap_or(0);
        self.record(req, status, attempts, &request_id, bytes);
        let body = outcome.map(|o| o.body).unwrap_or_default();
        PullError::Request {
            endpoint: req.endpoint(),
            detail: format!("{last}{}", snippet(&body)),
            attempts,
            request_id,
        }
        .into()
    }

    fn record(&self, req: &Request, status: Option<u16>, attempts: u32, id: &str, bytes: u64) {
        if let Ok(mut l) = self.log.lock() {
            l.push(RequestRecord {
                method: req.method.to_string(),
                path: path_of(&req.url),
                status,
                attempts,
                ms_request_id: id.to_string(),
                bytes,
            });
        }
    }
}

/// The error and its causes on one line (reqwest hides the OS error in its sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The start of an error body, for the message (Microsoft's error JSON; never ours).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if t.is_empty() {
        String::new()
    } else {
        let cut: String = t.chars().take(200).collect();
        format!(": {}", cut.replace('\n', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_look_like_guids_and_differ() {
        let a = new_guid();
        let b = new_guid();
        assert_ne!(a, b);
        assert!(crate::model::ids::normalize_guid(&a).is_some(), "{a}");
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
