//! `cspcost rate`: choose the months to rate (given, or those whose inputs changed since the
//! last run), rate each month, publish its partitions and its quarantine state, and write a
//! manifest whose counts balance (`staged = rated + quarantined`).

use crate::emit::costs::{
    col, partition_dir, sum_decimal, usage_batch, write_if_changed, PartitionHeader,
};
use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::emit::quarantine::{count_by_reason, write_quarantine};
use crate::error::{Error, Result};
use crate::ingest::prices::{load_prices, PRICES_FILE};
use crate::ingest::usage::{month_files, read_partition, staged_months};
use crate::model::decimal::Dec10;
use crate::model::ids::stable_hash64;
use crate::model::reference::{Organization, Reference, ALL_TABLES};
use crate::model::time::{days_to_date, month_of, parse_month};
use crate::model::usage::UsageRecord;
use crate::progress::{log, Progress};
use crate::rate::engine::{output_order, rate_month, RateContext, RatedRow, TierPeriod, TierScope};
use crate::rate::price_book::PriceBook;
use crate::store::Lake;
use arrow::array::RecordBatch;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `--shard i/n`: this process handles organizations whose stable hash mod n is i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parse `i/n` with `0 <= i < n`.
    pub fn parse(s: &str) -> Option<Shard> {
        let (i, n) = s.split_once('/')?;
        let (index, count): (u32, u32) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
        (count > 0 && index < count).then_some(Shard { index, count })
    }

    /// Whether `key` (an organization ID, or a tenant for unmapped usage) is in this shard.
    pub fn owns(self, key: &str) -> bool {
        stable_hash64(key) % self.count as u64 == self.index as u64
    }

    fn suffix(self) -> String {
        format!("-shard-{}-of-{}", self.index, self.count)
    }
}

/// Options of `rate`.
#[derive(Clone, Debug, Default)]
pub struct RateOptions {
    /// Months to rate; empty = the months whose inputs changed.
    pub months: Vec<String>,
    /// Tier scope.
    pub scope: TierScope,
    /// Tier period.
    pub period: TierPeriod,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Shard of organizations.
    pub shard: Option<Shard>,
    /// Only print what would be rated.
    pub dry_run: bool,
}

/// Totals of one published partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgMonthTotal {
    /// Organization.
    pub org: String,
    /// Month.
    pub month: String,
    /// Rows.
    pub rows: u64,
    /// Sum of `x_ListCostUsd`.
    pub list_cost_usd: Dec10,
    /// Sum of `BilledCost`.
    pub billed_cost: Dec10,
    /// Billing currency.
    pub currency: String,
}

impl OrgMonthTotal {
    /// Totals of a cost partition's batch (usage or purchases) of `org` in `month`.
    pub fn of_batch(org: &Organization, month: &str, batch: &RecordBatch) -> Result<OrgMonthTotal> {
        Ok(OrgMonthTotal {
            org: org.id.clone(),
            month: month.to_string(),
            rows: batch.num_rows() as u64,
            list_cost_usd: sum_decimal(batch, col::LIST_COST_USD)?,
            billed_cost: sum_decimal(batch, col::BILLED_COST)?,
            currency: org.billing_currency.clone(),
        })
    }
}

/// What `rate` did.
#[derive(Debug)]
pub struct RateReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Per organization and month.
    pub totals: Vec<OrgMonthTotal>,
    /// Month -> reason -> count.
    pub quarantined: BTreeMap<String, BTreeMap<String, u64>>,
    /// Months rated and why.
    pub plan: Vec<(String, String)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MonthState {
    fingerprint: String,
    first_published_run: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RateState {
    months: BTreeMap<String, MonthState>,
}

fn state_path(shard: Option<Shard>) -> String {
    format!(
        "_state/rate{}.json",
        shard.map(Shard::suffix).unwrap_or_default()
    )
}

/// The month before `month` (for billing-cycle tiers that reach back into it).
fn previous_month(month: &str) -> Option<String> {
    let first = parse_month(month)?;
    first.pred_opt().map(month_of)
}

/// Digest of every input a month's rating depends on.
fn fingerprint(lake: &Lake, month: &str, opts: &RateOptions) -> Result<String> {
    let mut h = Sha256::new();
    h.update(
        format!(
            "v1|{}|{}|{:?}\n",
            opts.scope.as_str(),
            opts.period.as_string(),
            opts.shard
        )
        .as_bytes(),
    );
    let mut files = month_files(lake, month)?;
    if matches!(opts.period, TierPeriod::BillingCycle(_)) {
        if let Some(prev) = previous_month(month) {
            files.extend(month_files(lake, &prev)?);
        }
    }
    files.push(PRICES_FILE.to_string());
    for t in ALL_TABLES {
        files.push(format!("staged/reference/{}.parquet", t.name));
    }
    for f in files {
        h.update(format!("{f}={}\n", lake.sha256(&f)?.unwrap_or_default()).as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

fn load_month(lake: &Lake, month: &str) -> Result<Vec<UsageRecord>> {
    let files = month_files(lake, month)?;
    let parts: Vec<Vec<UsageRecord>> = files
        .par_iter()
        .map(|f| read_partition(lake, f))
        .collect::<Result<_>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// Percent-decoding of a Hive partition value.
fn partition_id(dir_name: &str) -> String {
    let v = dir_name.trim_start_matches("org=");
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Run `rate`.
pub fn rate(lake: &Lake, opts: &RateOptions, run_id: &str) -> Result<RateReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::config(format!("--threads: {e}")))?;
    pool.install(|| rate_in_pool(lake, opts, run_id))
}

fn rate_in_pool(lake: &Lake, opts: &RateOptions, run_id: &str) -> Result<RateReport> {
    let started = std::time::Instant::now();
    let mut m = Manifest::start(
        run_id,
        "rate",
        serde_json::json!({
            "months": opts.months, "tier_scope": opts.scope.as_str(), "tier_period": opts.period.as_string(),
            "threads": opts.threads, "shard": opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        }),
    );
    let mut problems = Vec::new();
    for mo in &opts.months {
        if parse_month(mo).map(month_of).as_deref() != Some(mo.as_str()) {
            problems.push(format!("--month '{mo}' is not YYYY-MM"));
        }
    }
    let reference = Reference::load(lake)?;
    problems.extend(reference.registry_problems());
    if !problems.is_empty() {
        return Err(Error::Config { problems });
    }
    let mut state: RateState = lake.get_json(&state_path(opts.shard))?.unwrap_or_default();
    let mut plan = Vec::new();
    let candidates = if opts.months.is_empty() {
        staged_months(lake)?
    } else {
        opts.months.clone()
    };
    let mut fingerprints = BTreeMap::new();
    for mo in candidates {
        let fp = fingerprint(lake, &mo, opts)?;
        let why = match state.months.get(&mo) {
            _ if !opts.months.is_empty() => Some("requested with --month".to_string()),
            None => Some("never rated".to_string()),
            Some(s) if s.fingerprint != fp => Some(
                "inputs changed since the last rate (usage, prices, reference or options)"
                    .to_string(),
            ),
            Some(_) => None,
        };
        if let Some(why) = why {
            plan.push((mo.clone(), why));
            fingerprints.insert(mo, fp);
        }
    }
    for (mo, why) in &plan {
        log(&format!("rate {mo}: {why}"));
    }
    if plan.is_empty() {
        log("rate: every month is up to date; nothing to rate");
    }
    if opts.dry_run {
        return Ok(RateReport {
            manifest: m,
            totals: Vec::new(),
            quarantined: BTreeMap::new(),
            plan,
        });
    }
    let book = PriceBook::build(&load_prices(lake)?);
    let ctx = RateContext {
        reference: &reference,
        book: &book,
        scope: opts.scope,
        period: opts.period,
    };
    let (mut staged, mut rated) = (0u64, 0u64);
    let mut all_quarantine = BTreeMap::new();
    let mut totals = Vec::new();
    let mut progress = Progress::new("rate months", plan.len() as u64, false);
    for (month, _) in &plan {
        let owned = |r: &UsageRecord| match opts.shard {
            None => true,
            Some(s) => match reference.tenants.get(&r.customer_tenant_id) {
                Some(t) => s.owns(&t.organization_id),
                None => s.owns(&r.customer_tenant_id),
            },
        };
        let mut records = load_month(lake, month)?;
        records.retain(owned);
        let mut earlier = Vec::new();
        if let TierPeriod::BillingCycle(_) = opts.period {
            if let Some(prev) = previous_month(month) {
                let first_day = parse_month(month)
                    .map(crate::model::time::date_to_days)
                    .unwrap_or(0);
                let cycle_start = crate::model::time::date_to_days(
                    opts.period.period_start(days_to_date(first_day)),
                );
                earlier = load_month(lake, &prev)?;
                earlier.retain(|r| {
                    owned(r) && r.usage_date >= cycle_start && r.usage_date < first_day
                });
            }
        }
        let result = rate_month(&ctx, month, &records, &earlier)?;
        staged += records.len() as u64;
        rated += result.rows.len() as u64;
        let first_published = state
            .months
            .get(month)
            .map(|s| s.first_published_run.clone())
            .filter(|s| !s.is_empty());
        let mut by_org: HashMap<&str, Vec<RatedRow>> = HashMap::new();
        for row in result.rows {
            by_org.entry(row.org.id.as_str()).or_default().push(row);
        }
        let mut orgs: Vec<(&str, Vec<RatedRow>)> = by_org.into_iter().collect();
        orgs.sort_by(|a, b| a.0.cmp(b.0));
        let written: Vec<(PartitionSummary, OrgMonthTotal)> = orgs
            .into_par_iter()
            .map(|(org_id, mut rows)| {
                rows.sort_by(output_order);
                let org = rows[0].org;
                let header = PartitionHeader {
                    org,
                    month,
                    scope: opts.scope,
                    partnerships: &reference.partnerships,
                    first_published_run: first_published.as_deref(),
                };
                let batch = usage_batch(&header, &rows, run_id)?;
                let total = OrgMonthTotal::of_batch(org, month, &batch)?;
                let rel = format!("{}/usage-0.parquet", partition_dir(org_id, month));
                let action = write_if_changed(lake, &rel, batch)?.as_str();
                Ok((
                    PartitionSummary {
                        path: rel,
                        rows: total.rows,
                        billed_cost: Some(total.billed_cost.to_string()),
                        action: action.into(),
                    },
                    total,
                ))
            })
            .collect::<Result<_>>()?;
        let live: BTreeSet<String> = written.iter().map(|(_, t)| t.org.clone()).collect();
        for (p, t) in written {
            m.partitions.push(p);
            totals.push(t);
        }
        // Partitions whose rows all disappeared (tenant removed, usage restated away).
        for org_dir in lake.list_dir("costs")? {
            let org_id = partition_id(&org_dir);
            if live.contains(&org_id) || opts.shard.map(|s| !s.owns(&org_id)).unwrap_or(false) {
                continue;
            }
            let dir = format!("costs/{org_dir}/month={month}");
            for f in lake.list_dir(&dir)? {
                if f.starts_with("usage-") && f.ends_with(".parquet") {
                    lake.remove_file(&format!("{dir}/{f}"))?;
                    m.partitions.push(PartitionSummary {
                        path: format!("{dir}/{f}"),
                        rows: 0,
                        billed_cost: None,
                        action: "deleted".into(),
                    });
                }
            }
        }
        let qfile = format!(
            "quarantine/stage=rate/month={month}/part-{}.parquet",
            opts.shard
                .map(|s| format!("{}-of-{}", s.index, s.count))
                .unwrap_or_else(|| "0".into())
        );
        write_quarantine(lake, &qfile, run_id, &result.quarantine)?;
        let counts = count_by_reason(&result.quarantine);
        for (k, v) in &counts {
            *m.quarantined.entry(k.clone()).or_insert(0) += v;
        }
        all_quarantine.insert(month.clone(), counts);
        let fp = fingerprints.get(month).cloned().unwrap_or_default();
        let entry = state.months.entry(month.clone()).or_default();
        entry.fingerprint = fp.clone();
        if entry.first_published_run.is_empty() {
            entry.first_published_run = run_id.to_string();
        }
        m.months.insert(month.clone(), fp);
        progress.inc(1);
    }
    progress.finish();
    m.counts.insert("staged".into(), staged);
    m.counts.insert("rated".into(), rated);
    m.counts.insert("read".into(), staged);
    m.counts.insert("months".into(), plan.len() as u64);
    m.check_balance("rate", "staged", &["rated"])?;
    lake.put_json(&state_path(opts.shard), &state)?;
    let manifest = m.finish(lake, started)?;
    totals.sort_by(|a, b| (&a.org, &a.month).cmp(&(&b.org, &b.month)));
    Ok(RateReport {
        manifest,
        totals,
        quarantined: all_quarantine,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_keys() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for key in ["contoso", "fabrikam", "adatum", "x", "y"] {
            assert_eq!(shards.iter().filter(|s| s.owns(key)).count(), 1);
        }
        assert_eq!(Shard::parse("1/3"), Some(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::parse("3/3"), None);
        assert_eq!(Shard::parse("0/0"), None);
    }

    #[test]
    fn partition_ids_round_trip() {
        let enc = crate::emit::costs::partition_value("a b/c%");
        assert_eq!(enc, "a%20b%2Fc%25");
        assert_eq!(partition_id(&format!("org={enc}")), "a b/c%");
        assert_eq!(previous_month("2026-01").as_deref(), Some("2025-12"));
    }
}
