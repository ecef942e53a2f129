//! `cspcost pull`: fetch the raw inputs from Microsoft's APIs (pull.md) and save every page
//! byte for byte in the layout `ingest` reads. Nothing here validates records: `ingest`
//! stays the only stage that does; pull parses only what paging, selection and the summary
//! need.
//!
//! The module is async inside (reqwest on a small Tokio runtime it owns, as `store/` does
//! for object_store) and synchronous outside: [`run`] takes validated [`PullOptions`] built
//! by [`PullRequest::validate`], which both the CLI and the `[pull]` pipeline stage use.
//!
//! One file per concern: [`http`] (client, request log), [`auth`] (Entra tokens),
//! [`retry`] (what is retried and how long to wait), [`paging`] (the one paging loop),
//! [`state`] (per-subscription windows), [`writer`] (atomic files, page sets, manifest),
//! then one file per endpoint family.

pub mod auth;
pub mod customers;
pub mod fx;
pub mod http;
pub mod invoices;
pub mod paging;
pub mod prices;
pub mod ratecard;
pub mod retry;
pub mod state;
pub mod summary;
pub mod usage;
pub mod writer;

use crate::error::Result;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::path::PathBuf;
use url::Url;

/// What a pull fetches (the `pull` subcommands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullWhat {
    /// Customers, subscriptions, Azure utilization.
    Usage,
    /// Azure Retail Prices pages.
    Prices,
    /// Partner Center Azure rate card.
    Ratecard,
    /// Microsoft's monthly FX file.
    Fx,
    /// Invoices' Azure usage-based line items.
    Invoices,
}

impl PullWhat {
    /// Name as in the CLI and the pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            PullWhat::Usage => "usage",
            PullWhat::Prices => "prices",
            PullWhat::Ratecard => "ratecard",
            PullWhat::Fx => "fx",
            PullWhat::Invoices => "invoices",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<PullWhat> {
        [
            PullWhat::Usage,
            PullWhat::Prices,
            PullWhat::Ratecard,
            PullWhat::Fx,
            PullWhat::Invoices,
        ]
        .into_iter()
        .find(|w| w.as_str() == s)
    }
}

/// A pull as given (flags or a pipeline table): text, validated by [`PullRequest::validate`].
#[derive(Clone, Debug, Default)]
pub struct PullRequest {
    /// Directory the pages are written under.
    pub out: PathBuf,
    /// Lake whose registered tenants select the customers (usage).
    pub lake: Option<String>,
    /// First reporting time of a subscription never pulled before (`YYYY-MM-DD` or RFC 3339).
    pub from: Option<String>,
    /// Last reporting time (default now minus 2 hours).
    pub to: Option<String>,
    /// Days re-pulled before the end of a subscription's last complete window.
    pub overlap_days: Option<String>,
    /// Pull every Partner Center customer, registered or not.
    pub all_customers: bool,
    /// Currency of prices and rate card (default USD).
    pub currency: Option<String>,
    /// OData filter of the Retail Prices API.
    pub filter: Option<String>,
    /// Rate card region (default US).
    pub region: Option<String>,
    /// FX months (`YYYY-MM`).
    pub months: Vec<String>,
    /// Invoice IDs (default: every invoice with Azure usage line items).
    pub invoices: Vec<String>,
    /// Only invoices dated on or after this date.
    pub since: Option<String>,
    /// Requests in flight at most.
    pub concurrency: Option<usize>,
    /// List what would be requested; request and write nothing.
    pub dry_run: bool,
}

/// Default Retail Prices filter (pull.md).
pub const DEFAULT_PRICE_FILTER: &str = "priceType eq 'Consumption' or priceType eq 'Reservation'";
/// Default `--concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default `--overlap-days`.
pub const DEFAULT_OVERLAP_DAYS: i64 = 3;
/// Default look-back of a first pull (`--from`).
pub const DEFAULT_FROM_DAYS: i64 = 90;

/// A validated pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// What is fetched.
    pub what: PullWhat,
    /// Output directory.
    pub out: PathBuf,
    /// Lake of registered tenants.
    pub lake: Option<String>,
    /// First reporting time of a subscription never pulled before.
    pub from: DateTime<Utc>,
    /// Last reporting time.
    pub to: DateTime<Utc>,
    /// Overlap re-pulled before the last complete window's end.
    pub overlap: Duration,
    /// Every customer, registered or not.
    pub all_customers: bool,
    /// Currency (upper case).
    pub currency: String,
    /// Retail Prices filter.
    pub filter: String,
    /// Rate card region.
    pub region: String,
    /// FX months as `YYYYMM`.
    pub months: Vec<String>,
    /// Invoice IDs given.
    pub invoices: Vec<String>,
    /// Only invoices dated on or after.
    pub since: Option<NaiveDate>,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// List only.
    pub dry_run: bool,
    /// The options as given, for the manifest (no credentials: flags never carry any).
    pub echo: serde_json::Value,
}

impl PullRequest {
    /// Validate for `what`, reporting every problem at once; `flag` names a field the way
    /// the caller's user wrote it (`--from` on the command line, `pull.from` in a pipeline).
    pub fn validate(
        &self,
        what: PullWhat,
        flag: &dyn Fn(&str) -> String,
    ) -> std::result::Result<PullOptions, Vec<String>> {
        let mut problems = Vec::new();
        let window = self.window(what, flag, &mut problems);
        let overlap_days = self.overlap_days(flag, &mut problems);
        let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 || concurrency > 64 {
            problems.push(format!("{} must be 1..64", flag("concurrency")));
        }
        let currency = self.checked_currency(flag, &mut problems);
        let region = self.region.as_deref().unwrap_or("US").trim().to_string();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric()) {
            problems.push(format!(
                "{} '{region}': expected a country code like US",
                flag("region")
            ));
        }
        let months = self.fx_months(what, flag, &mut problems);
        let since = self.invoice_selection(flag, &mut problems);
        if what == PullWhat::Usage && self.lake.is_none() && !self.all_customers {
            problems.push(format!(
                "pull usage needs {} (its registered tenants select the customers) or {}",
                flag("lake"),
                flag("all_customers")
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let filter = self.filter.as_deref().unwrap_or(DEFAULT_PRICE_FILTER);
        let echo = serde_json::json!({
            "what": what.as_str(),
            "out": self.out.display().to_string(),
            "lake": self.lake,
            "from": window.from.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "to": window.to.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "overlap_days": overlap_days,
            "all_customers": self.all_customers,
            "currency": currency,
            "filter": filter,
            "region": region,
            "months": self.months,
            "invoices": self.invoices,
            "since": self.since,
            "concurrency": concurrency,
            "dry_run": self.dry_run,
        });
        Ok(PullOptions {
            what,
            out: self.out.clone(),
            lake: self.lake.clone(),
            from: window.from,
            to: window.to,
            overlap: Duration::days(overlap_days),
            all_customers: self.all_customers,
            currency,
            filter: filter.to_string(),
            region,
            months,
            invoices: self.invoices.clone(),
            since,
            concurrency,
            dry_run: self.dry_run,
            echo,
        })
    }

    /// `from` (default: midnight [`DEFAULT_FROM_DAYS`] ago) and `to` (default: two hours
    /// ago); a usage pull needs `from` before `to`.
    fn window(
        &self,
        what: PullWhat,
        flag: &dyn Fn(&str) -> String,
        problems: &mut Vec<String>,
    ) -> PullWindow {
        let now = Utc::now();
        let time = |field: &str, text: &Option<String>, problems: &mut Vec<String>| {
            text.as_deref().and_then(|t| {
                let parsed = parse_time(t);
                if parsed.is_none() {
                    problems.push(format!(
                        "{} '{t}': expected a date YYYY-MM-DD or a time like 2026-01-01T00:00:00Z",
                        flag(field)
                    ));
                }
                parsed
            })
        };
        let from = time("from", &self.from, problems)
            .unwrap_or_else(|| start_of_day(now - Duration::days(DEFAULT_FROM_DAYS)));
        let to = time("to", &self.to, problems).unwrap_or_else(|| now - Duration::hours(2));
        if what == PullWhat::Usage && from >= to {
            problems.push(format!(
                "{} {} is not before {} {}",
                flag("from"),
                from.format("%Y-%m-%dT%H:%M:%SZ"),
                flag("to"),
                to.format("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
        PullWindow { from, to }
    }

    /// `overlap_days`, 0..31 (default [`DEFAULT_OVERLAP_DAYS`]).
    fn overlap_days(&self, flag: &dyn Fn(&str) -> String, problems: &mut Vec<String>) -> i64 {
        match self.overlap_days.as_deref() {
            None => DEFAULT_OVERLAP_DAYS,
            Some(t) => t
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|d| (0..=31).contains(d))
                .unwrap_or_else(|| {
                    problems.push(format!(
                        "{} '{t}': expected a whole number of days 0..31",
                        flag("overlap_days")
                    ));
                    DEFAULT_OVERLAP_DAYS
                }),
        }
    }

    /// The currency in upper case (default USD), an ISO 4217 code.
    fn checked_currency(
        &self,
        flag: &dyn Fn(&str) -> String,
        problems: &mut Vec<String>,
    ) -> String {
        let currency = self
            .currency
            .as_deref()
            .unwrap_or("USD")
            .trim()
            .to_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(format!(
                "{} '{currency}': expected an ISO 4217 code like USD",
                flag("currency")
            ));
        }
        currency
    }

    /// The FX months as `YYYYMM`; `pull fx` needs one at least.
    fn fx_months(
        &self,
        what: PullWhat,
        flag: &dyn Fn(&str) -> String,
        problems: &mut Vec<String>,
    ) -> Vec<String> {
        let mut months = Vec::new();
        for m in &self.months {
            match crate::model::time::parse_month(m) {
                Some(d) if crate::model::time::month_of(d) == m.trim() => {
                    months.push(d.format("%Y%m").to_string())
                }
                _ => problems.push(format!("{} '{m}': expected YYYY-MM", flag("month"))),
            }
        }
        if what == PullWhat::Fx && months.is_empty() {
            problems.push(format!(
                "pull fx needs at least one {} YYYY-MM",
                flag("month")
            ));
        }
        months
    }

    /// Check the invoice numbers; the `since` date.
    fn invoice_selection(
        &self,
        flag: &dyn Fn(&str) -> String,
        problems: &mut Vec<String>,
    ) -> Option<NaiveDate> {
        for id in &self.invoices {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                problems.push(format!(
                    "{} '{id}': expected an invoice number (letters, digits, '-')",
                    flag("invoice")
                ));
            }
        }
        self.since.as_deref().and_then(|t| {
            let d = NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok();
            if d.is_none() {
                problems.push(format!("{} '{t}': expected YYYY-MM-DD", flag("since")));
            }
            d
        })
    }
}

/// The reporting times a pull covers.
struct PullWindow {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// A date (midnight UTC) or an RFC 3339 time, as UTC truncated to whole seconds.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        let utc = dt.with_timezone(&Utc);
        return Some(utc - Duration::nanoseconds(i64::from(utc.timestamp_subsec_nanos())));
    }
    NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

fn start_of_day(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// Where Microsoft's APIs are (environment, defaults of pull.md). URLs only: the
/// credentials are read by [`auth`] when a request needs them.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Entra token endpoint base.
    pub login: Url,
    /// Partner Center API base (`/v1/` is appended).
    pub partner_center: Url,
    /// Partner API base (FX).
    pub partner_api: Url,
    /// Azure Retail Prices base.
    pub retail_prices: Url,
}

impl Endpoints {
    /// Read the `CSPCOST_*_URL` variables (defaults: Microsoft's public endpoints).
    pub fn from_env() -> Result<Endpoints> {
        let mut problems = Vec::new();
        let mut read = |var: &str, default: &str| {
            let text = std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string());
            let with_slash = if text.ends_with('/') {
                text.clone()
            } else {
                format!("{text}/")
            };
            match Url::parse(&with_slash) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(u),
                _ => {
                    problems.push(format!("{var} '{text}' is not an http(s) URL"));
                    None
                }
            }
        };
        let login = read("CSPCOST_LOGIN_URL", "https://login.microsoftonline.com");
        let pc = read(
            "CSPCOST_PARTNER_CENTER_URL",
            "https://api.partnercenter.microsoft.com",
        );
        let api = read(
            "CSPCOST_PARTNER_API_URL",
            "https://api.partner.microsoft.com",
        );
        let retail = read("CSPCOST_RETAIL_PRICES_URL", "https://prices.azure.com");
        match (login, pc, api, retail) {
            (Some(login), Some(partner_center), Some(partner_api), Some(retail_prices)) => {
                Ok(Endpoints {
                    login,
                    partner_center,
                    partner_api,
                    retail_prices,
                })
            }
            _ => Err(crate::Error::Config { problems }),
        }
    }

    /// `{CSPCOST_PARTNER_CENTER_URL}/v1/`, the base relative `links.next` URIs resolve against.
    pub fn pc_v1(&self) -> Url {
        self.partner_center
            .join("v1/")
            .unwrap_or_else(|_| self.partner_center.clone())
    }

    /// For the manifest: URLs only.
    pub fn echo(&self) -> serde_json::Value {
        serde_json::json!({
            "login": self.login.as_str(),
            "partner_center": self.partner_center.as_str(),
            "partner_api": self.partner_api.as_str(),
            "retail_prices": self.retail_prices.as_str(),
        })
    }
}

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Entra refused a token; the sentence says what to do.
    #[error("{sentence}")]
    Auth {
        /// What happened and what to do.
        sentence: String,
    },
    /// The client secret's expiry date (`CSPCOST_PC_SECRET_EXPIRES_ON`) has passed.
    #[error("the Partner Center client secret expired on {date} (CSPCOST_PC_SECRET_EXPIRES_ON): create a new secret for the app in Entra, set CSPCOST_PC_CLIENT_SECRET and CSPCOST_PC_SECRET_EXPIRES_ON, then rerun")]
    SecretExpired {
        /// The expiry date.
        date: NaiveDate,
    },
    /// A required credential variable is not set.
    #[error("{var} is not set: {why}")]
    MissingCredential {
        /// The variable.
        var: &'static str,
        /// What it is for.
        why: &'static str,
    },
    /// An API answered 401 again after the token was refreshed.
    #[error("{endpoint}: 401 Unauthorized again after a fresh token: the app lacks access to this API (check its permissions and consent in Entra)")]
    Unauthorized {
        /// Method and path.
        endpoint: String,
    },
    /// A request that failed for good (status not retried, or retries used up).
    #[error("{endpoint}: {detail} (after {attempts} attempt(s), MS-RequestId {request_id})")]
    Request {
        /// Method and path.
        endpoint: String,
        /// Status or connection error.
        detail: String,
        /// Attempts made.
        attempts: u32,
        /// The request's MS-RequestId.
        request_id: String,
    },
    /// A response that cannot be paged (not the JSON collection expected).
    #[error("{endpoint}: {detail}")]
    BadPage {
        /// Method and path.
        endpoint: String,
        /// What was expected.
        detail: String,
    },
    /// Some subscriptions still failed after their retries (all the others were pulled).
    #[error("{} subscription(s) could not be pulled (the others were):{}", .failures.len(), .failures.iter().map(|f| format!("\n  - {f}")).collect::<String>())]
    SubscriptionsFailed {
        /// `tenant/subscription: cause`, one each.
        failures: Vec<String>,
    },
}

impl PullError {
    /// Exit code: 2 for credentials a person must fix, 1 for the API or the network.
    pub fn exit_code(&self) -> i32 {
        match self {
            PullError::Auth { .. }
            | PullError::SecretExpired { .. }
            | PullError::MissingCredential { .. } => 2,
            _ => 1,
        }
    }
}

/// What a finished pull reports.
#[derive(Debug)]
pub struct PullReport {
    /// The run ID (names `_pull/<run_id>.json`).
    pub run_id: String,
    /// The manifest written.
    pub manifest: writer::PullManifest,
}

/// Run a validated pull; the manifest is written last, also when some subscriptions failed
/// (then the error follows it).
pub fn run(opts: &PullOptions, command: &str, run_id: &str) -> Result<PullReport> {
    let endpoints = Endpoints::from_env()?;
    if opts.dry_run {
        return dry_run(opts, &endpoints).map(|manifest| PullReport {
            run_id: run_id.to_string(),
            manifest,
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cspcost-pull")
        .enable_all()
        .build()
        .map_err(|e| crate::Error::io("tokio runtime", e))?;
    // Read before the runtime starts: an object-store lake blocks on a runtime of its own.
    let registered = match (&opts.what, &opts.lake, opts.all_customers) {
        (PullWhat::Usage, Some(lake), false) => Some(usage::registered_tenants(lake)?),
        _ => None,
    };
    let out = writer::OutDir::new(&opts.out)?;
    let client = http::Client::new()?;
    let mut manifest = writer::PullManifest::start(run_id, command, opts, &endpoints);
    let result = runtime.block_on(async {
        match opts.what {
            PullWhat::Usage => {
                usage::pull_usage(
                    &client,
                    &endpoints,
                    opts,
                    &out,
                    &mut manifest,
                    registered.as_ref(),
                )
                .await
            }
            PullWhat::Prices => {
                prices::pull_prices(&client, &endpoints, opts, &out, &mut manifest).await
            }
            PullWhat::Ratecard => {
                ratecard::pull_ratecard(&client, &endpoints, opts, &out, &mut manifest).await
            }
            PullWhat::Fx => fx::pull_fx(&client, &endpoints, opts, &out, &mut manifest).await,
            PullWhat::Invoices => {
                invoices::pull_invoices(&client, &endpoints, opts, &out, &mut manifest).await
            }
        }
    });
    manifest.finish(&client, &out, result.as_ref().err())?;
    result?;
    if !manifest.failures.is_empty() {
        return Err(PullError::SubscriptionsFailed {
            failures: manifest.failures.clone(),
        }
        .into());
    }
    Ok(PullReport {
        run_id: run_id.to_string(),
        manifest,
    })
}

/// `tenants discover`: Partner Center customers with their registration in `lake` (which
/// must exist: a typo must not look like "nobody is registered").
pub fn discover(lake: &str) -> Result<Vec<customers::Discovered>> {
    let lake = crate::store::Lake::open_existing(lake)?;
    let endpoints = Endpoints::from_env()?;
    let reference = crate::model::reference::Reference::load(&lake)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cspcost-pull")
        .enable_all()
        .build()
        .map_err(|e| crate::Error::io("tokio runtime", e))?;
    let client = http::Client::new()?;
    runtime.block_on(customers::discover(&client, &endpoints, &reference))
}

/// What `--dry-run` prints: the first request of each kind, and usage windows planned from
/// the state, without a request or a file written.
fn dry_run(opts: &PullOptions, endpoints: &Endpoints) -> Result<writer::PullManifest> {
    let lines = match opts.what {
        PullWhat::Usage => usage::describe(opts, endpoints)?,
        PullWhat::Prices => vec![format!("GET {}", prices::first_url(endpoints, opts)?)],
        PullWhat::Ratecard => vec![format!(
            "GET {} -> {}",
            ratecard::url(endpoints, opts)?,
            ratecard::file_name(opts)
        )],
        PullWhat::Fx => opts
            .months
            .iter()
            .map(|m| {
                Ok(format!(
                    "GET {} -> reference/fx_rates_{m}.csv",
                    fx::url(endpoints, m)?
                ))
            })
            .collect::<Result<Vec<_>>>()?,
        PullWhat::Invoices => invoices::describe(opts, endpoints)?,
    };
    crate::outln!(
        "pull {} (dry run: nothing is requested or written)",
        opts.what.as_str()
    );
    for l in &lines {
        crate::outln!("  {l}");
    }
    Ok(writer::PullManifest::dry(opts, endpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(f: &str) -> String {
        format!("--{}", f.replace('_', "-"))
    }

    #[test]
    fn validate_reports_every_problem() {
        let req = PullRequest {
            from: Some("2026-13-01".into()),
            overlap_days: Some("x".into()),
            concurrency: Some(0),
            months: vec!["2026-1".into()],
            ..Default::default()
        };
        let p = req.validate(PullWhat::Usage, &flag).unwrap_err();
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p[0].starts_with("--from '2026-13-01'"), "{p:?}");
        assert!(p.iter().any(|p| p.contains("--lake")), "{p:?}");
    }

    #[test]
    fn defaults() {
        let req = PullRequest {
            lake: Some("l".into()),
            from: Some("2026-01-01".into()),
            to: Some("2026-03-01T12:30:00+01:00".into()),
            ..Default::default()
        };
        let o = req.validate(PullWhat::Usage, &flag).unwrap();
        assert_eq!(o.from.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(o.to.to_rfc3339(), "2026-03-01T11:30:00+00:00");
        assert_eq!(o.overlap, Duration::days(3));
        assert_eq!(o.concurrency, 4);
        assert_eq!(o.currency, "USD");
        assert_eq!(o.filter, DEFAULT_PRICE_FILTER);
    }
}
