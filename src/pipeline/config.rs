//! Pipeline configuration (`pipelines/<name>.toml`): what `cspcost run` does, as serde types
//! with `deny_unknown_fields`. Validation collects every problem at once with the file and
//! line, and turns the config into a [`Plan`](crate::pipeline::plan::Plan).
//!
//! Strings may use `${VAR}` or `${VAR:-default}` (for the lake URL in a Kubernetes Job, say).
//! Relative paths are resolved against the directory of the config file.

use crate::model::choice::Choice;
use crate::model::tier::TierScope;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Lake directory or object-store URL.
    pub lake: Spanned<String>,
    /// Stages to run, in this order: any of `ingest`, `rate`, `reserve`, `reconcile`, `bill`.
    pub stages: Spanned<Vec<String>>,
    /// Options of the `pull` stage (fetch inputs from Microsoft's APIs before `ingest`).
    #[serde(default)]
    pub pull: Option<PullConfig>,
    /// Inputs of the `ingest` stage.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Options of the `rate` stage.
    #[serde(default)]
    pub rate: RateConfig,
    /// Options of the `reserve` stage.
    #[serde(default)]
    pub reserve: ReserveConfig,
    /// Periods of the `reconcile` stage, one table each.
    #[serde(default)]
    pub reconcile: Vec<ReconcileConfig>,
    /// Options of the `bill` stage.
    pub bill: Option<BillConfig>,
}

/// `bill` options (billing.md), validated by the same request type as `cspcost bill`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillConfig {
    /// Billing month (`YYYY-MM`).
    pub month: Spanned<String>,
    /// Only this organization.
    pub org: Option<Spanned<String>>,
    /// Issue the month's statements (they never change afterwards).
    #[serde(default)]
    pub issue: bool,
}

/// Files and directories to ingest, by kind (each read recursively in path order).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Reference CSVs (partnerships, organizations, tenants, transfers, fx_rates).
    #[serde(default)]
    pub reference: Vec<Spanned<String>>,
    /// Price sheets (Retail Prices pages, rate cards, CSV).
    #[serde(default)]
    pub prices: Vec<Spanned<String>>,
    /// Utilization dumps, ingested one entry at a time in the order given.
    #[serde(default)]
    pub usage: Vec<Spanned<String>>,
    /// Reservation orders.
    #[serde(default)]
    pub reservations: Vec<Spanned<String>>,
}

/// `pull` options (pull.md): one pull per entry of `what`, into `out`, which the `ingest`
/// stage then reads. Registered tenants come from the pipeline's lake. Credentials come
/// from the environment only, never from this file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// Directory the pages are written under (the directory `[ingest]` names).
    pub out: Spanned<String>,
    /// What to pull, in order: any of `usage`, `prices`, `ratecard`, `fx`, `invoices`.
    pub what: Spanned<Vec<String>>,
    /// First reporting date of a subscription never pulled (default 90 days ago).
    pub from: Option<Spanned<String>>,
    /// Last reporting time (default now minus 2 hours).
    pub to: Option<Spanned<String>>,
    /// Days pulled again before a subscription's last complete window ends (default 3).
    pub overlap_days: Option<Spanned<i64>>,
    /// Every Partner Center customer, registered or not.
    #[serde(default)]
    pub all_customers: bool,
    /// Currency of prices and rate card (default USD).
    pub currency: Option<Spanned<String>>,
    /// Rate card region (default US).
    pub region: Option<Spanned<String>>,
    /// Retail Prices OData filter.
    pub filter: Option<Spanned<String>>,
    /// FX months (`YYYY-MM`).
    #[serde(default)]
    pub months: Vec<String>,
    /// Invoice IDs (default: every invoice with Azure line items).
    #[serde(default)]
    pub invoices: Vec<String>,
    /// Only invoices dated on or after (`YYYY-MM-DD`).
    pub since: Option<Spanned<String>>,
    /// Requests in flight at most (default 4).
    pub concurrency: Option<usize>,
}

/// `rate` options (rating.md §6).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Months to rate (`YYYY-MM`); empty: the months whose inputs changed.
    #[serde(default)]
    pub months: Vec<Spanned<String>>,
    /// `subscription` (default), `customer` or `organization` (the words of `--tier-scope`).
    pub tier_scope: Option<Spanned<Choice<TierScope>>>,
    /// `calendar_month` (default) or `billing_cycle:<day>`.
    pub tier_period: Option<Spanned<String>>,
    /// Worker threads; default one per core.
    pub threads: Option<Spanned<usize>>,
    /// `i/n`: rate only organizations of shard i (also used by `reserve`). `${SHARD}` works.
    pub shard: Option<Spanned<String>>,
}

/// `reserve` options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveConfig {
    /// Date assets' status and installments billed are computed at; default today.
    pub as_of: Option<Spanned<String>>,
}

/// One reconciliation period.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// First day, inclusive (`YYYY-MM-DD`).
    pub from: Spanned<String>,
    /// Last day, inclusive.
    pub to: Spanned<String>,
    /// Output directory of the extract.
    pub out: Spanned<String>,
    /// Microsoft's invoice reconciliation file to compare with.
    pub invoice: Option<Spanned<String>>,
    /// Only this organization.
    pub org: Option<Spanned<String>>,
    /// Add the usage date to the key.
    #[serde(default)]
    pub daily: bool,
    /// Only this customer tenant.
    pub tenant: Option<Spanned<String>>,
    /// `SubscriptionId,subscription_id` CSV mapping the invoice's billing-platform IDs.
    pub subscription_map: Option<Spanned<String>>,
    /// Quantity tolerance as decimal text (default `"0.000001"`).
    pub quantity_tolerance: Option<Spanned<String>>,
    /// Cost tolerance as decimal text, in the invoice currency (default `"0.005"`).
    pub cost_tolerance: Option<Spanned<String>>,
}

/// Replace `${VAR}` and `${VAR:-default}` from the environment. Unset without a default is
/// a problem reported by the caller.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed ${{ in '{text}'"));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
            ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// 1-based line of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// A path from the config: environment expanded, relative to the config's directory
/// unless absolute or a URL.
pub fn resolve_path(base: &std::path::Path, text: &str) -> PathBuf {
    if text.contains("://") || std::path::Path::new(text).is_absolute() {
        PathBuf::from(text)
    } else {
        base.join(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        std::env::set_var("CSPCOST_TEST_LAKE", "az://lake/prod");
        assert_eq!(
            expand_env("${CSPCOST_TEST_LAKE}").unwrap(),
            "az://lake/prod"
        );
        assert_eq!(expand_env("x-${CSPCOST_TEST_UNSET:-d}-y").unwrap(), "x-d-y");
        assert!(expand_env("${CSPCOST_TEST_UNSET}")
            .unwrap_err()
            .contains("CSPCOST_TEST_UNSET is not set"));
        assert_eq!(expand_env("plain").unwrap(), "plain");
    }

    #[test]
    fn lines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
