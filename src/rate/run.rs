//! `cspcost rate`: choose the months to rate (given, or those whose inputs changed since the
//! last run), rate each month, publish its partitions and its quarantine state, and write a
//! manifest whose counts balance (`staged = rated + quarantined`).

use crate::emit::costs::{partition_dir, usage_batch, OrgMonthTotal, PartitionHeader};
use crate::emit::manifest::{Manifest, PartitionSummary};
use crate::emit::quarantine::{count_by_reason, write_quarantine};
use crate::error::{Error, Result};
use crate::model::choice::Choice;
use crate::model::decimal::Dec10;
use crate::model::ids::stable_hash64;
use crate::model::reference::{Reference, ALL_TABLES};
use crate::model::tier::{TierPeriod, TierScope};
use crate::model::time::{days_to_date, month_of, parse_month};
use crate::model::usage::{usage_from_batch, RawRef, UsageRecord, RATING_COLUMNS};
use crate::pricing::price_book::PriceBook;
use crate::pricing::rated::RatedRow;
use crate::progress::{log, Progress};
use crate::rate::engine::{output_order, rate_month, OutOfOrder, RateContext, StreamRater};
use crate::rate::runs::{merge_runs, OrgRun, RunWriter};
use crate::rate::stream::{plan_tasks, Task};
use crate::staged::prices::{load_prices, load_rejected_prices, PRICES_FILE, REJECTED_FILE};
use crate::staged::usage::{month_files, staged_months};
use crate::store::Lake;
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

/// `rate` options as given, by flags or by a pipeline's `[rate]` table, before validation:
/// both build one of these and call [`RateRequest::validate`], so every rule and message
/// exists once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateRequest {
    /// `YYYY-MM` months; empty: the months whose inputs changed.
    pub months: Vec<String>,
    /// `subscription`, `customer` or `organization`; default subscription.
    pub tier_scope: Option<Choice<TierScope>>,
    /// `calendar_month` or `billing_cycle:DAY`; default calendar_month.
    pub tier_period: Option<String>,
    /// Worker threads (at least 1); default one per core.
    pub threads: Option<usize>,
    /// `i/n` with `0 <= i < n`.
    pub shard: Option<String>,
    /// Print the plan only.
    pub dry_run: bool,
}

impl RateRequest {
    /// Check every field, reporting every problem at once. `name(field, item)` says how the
    /// caller spells a field (`--tier-scope`, or `bad.toml:6: rate.tier_scope`); `item` is the
    /// position in `months`.
    pub fn validate(
        &self,
        name: &dyn Fn(&str, Option<usize>) -> String,
    ) -> std::result::Result<RateOptions, Vec<String>> {
        let mut problems = Vec::new();
        let mut opts = RateOptions {
            dry_run: self.dry_run,
            threads: self.threads,
            ..RateOptions::default()
        };
        if let Some(s) = &self.tier_scope {
            match s.value() {
                Ok(v) => opts.scope = v,
                Err(why) => problems.push(format!("{} {why}", name("tier_scope", None))),
            }
        }
        if let Some(p) = &self.tier_period {
            match TierPeriod::parse(p) {
                Some(v) => opts.period = v,
                None => problems.push(format!(
                    "{} '{p}': expected calendar_month or billing_cycle:DAY with DAY 1..28",
                    name("tier_period", None)
                )),
            }
        }
        for (i, mo) in self.months.iter().enumerate() {
            if parse_month(mo).map(month_of).as_deref() == Some(mo.as_str()) {
                opts.months.push(mo.clone());
            } else {
                problems.push(format!("{} '{mo}' is not YYYY-MM", name("months", Some(i))));
            }
        }
        if self.threads == Some(0) {
            problems.push(format!("{} must be at least 1", name("threads", None)));
        }
        if let Some(s) = &self.shard {
            match Shard::parse(s) {
                Some(v) => opts.shard = Some(v),
                None => problems.push(format!(
                    "{} '{s}': expected i/n with 0 <= i < n",
                    name("shard", None)
                )),
            }
        }
        if problems.is_empty() {
            Ok(opts)
        } else {
            Err(problems)
        }
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
    pub plan: RatePlan,
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
        h.update(format!("{f}={}\n", lake.version_tag(&f)?.unwrap_or_default()).as_bytes());
    }
    // Only when present, so lakes without rejected prices keep their fingerprints.
    if let Some(tag) = lake.version_tag(REJECTED_FILE)? {
        h.update(format!("{REJECTED_FILE}={tag}\n").as_bytes());
    }
    Ok(hex::encode(h.finalize()))
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

/// What rating one month produced.
struct MonthOutput {
    staged: u64,
    rated: u64,
    quarantine: Vec<crate::model::reason::QuarantineRecord>,
    partitions: Vec<PartitionSummary>,
    totals: Vec<OrgMonthTotal>,
    /// Rated rows with unit strings missing from `PricingUnits.csv` (normalised by rule).
    unknown_units: crate::emit::focus::UnknownUnits,
}

fn load_for_rating(lake: &Lake, rel: &str) -> Result<Vec<UsageRecord>> {
    let mut rows = Vec::new();
    for b in lake
        .get_parquet_columns(rel, &RATING_COLUMNS)?
        .unwrap_or_default()
    {
        usage_from_batch(&b, &mut rows)?;
    }
    Ok(rows)
}

/// The original text of quarantined records, read back only for them: each file (only the
/// rows given, when given) is streamed once, never held.
pub(super) fn fill_raw(
    lake: &Lake,
    files: &[(String, Option<std::ops::Range<u64>>)],
    quarantine: &mut [crate::model::reason::QuarantineRecord],
) -> Result<()> {
    if quarantine.is_empty() {
        return Ok(());
    }
    let mut wanted: HashMap<(String, i64), Vec<usize>> = HashMap::new();
    for (i, q) in quarantine.iter().enumerate() {
        wanted
            .entry((q.source_file.clone(), q.source_row))
            .or_default()
            .push(i);
    }
    use crate::model::usage::col;
    let columns = [
        "source_file",
        "source_row",
        "raw",
        col::RAW_SOURCE,
        col::RAW_OFFSET,
        col::RAW_LENGTH,
    ];
    type Found = (usize, String, Option<RawRef>);
    let found: Vec<Vec<Found>> = files
        .par_iter()
        .map(|(f, rows)| {
            let mut found = Vec::new();
            for b in lake
                .parquet_batches(f, Some(&columns), rows.clone(), 8 * 1024)?
                .into_iter()
                .flatten()
            {
                let b = b?;
                let c = crate::model::schema::Cols(&b);
                let (sf, sr, raw) = (c.str("source_file")?, c.i64("source_row")?, c.str("raw")?);
                let refs = crate::model::usage::raw_refs(&b);
                for i in 0..b.num_rows() {
                    if let Some(idx) = wanted.get(&(sf.value(i).to_string(), sr.value(i))) {
                        let at = refs.as_ref().and_then(|r| r.at(i));
                        found.extend(
                            idx.iter()
                                .map(|&k| (k, raw.value(i).to_string(), at.clone())),
                        );
                    }
                }
            }
            Ok(found)
        })
        .collect::<Result<_>>()?;
    let found: Vec<Found> = found.into_iter().flatten().collect();
    let rows: Vec<(&str, Option<&RawRef>)> = found
        .iter()
        .map(|(_, raw, at)| (raw.as_str(), at.as_ref()))
        .collect();
    let texts = crate::staged::sources::texts_of(lake, &rows)?;
    for ((k, ..), text) in found.iter().zip(texts) {
        quarantine[*k].raw = text;
    }
    Ok(())
}

/// One month `rate` will rate, why, and the fingerprint of its inputs now (recorded in the
/// state once the month is published).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthToRate {
    /// `YYYY-MM`.
    pub month: String,
    /// A sentence: requested, never rated, or inputs changed.
    pub why: String,
    /// Digest of every input the month's rating depends on.
    pub fingerprint: String,
}

/// What `rate` will do, decided before anything is written: `--dry-run` prints it, execution
/// consumes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RatePlan {
    /// Months in the order they are rated.
    pub months: Vec<MonthToRate>,
}

/// Decide which months to rate: those given, else those whose fingerprint differs from the
/// state of the last run (or that were never rated).
pub fn plan_rate(lake: &Lake, opts: &RateOptions) -> Result<RatePlan> {
    let state: RateState = lake.get_json(&state_path(opts.shard))?.unwrap_or_default();
    let candidates = if opts.months.is_empty() {
        staged_months(lake)?
    } else {
        opts.months.clone()
    };
    let mut months = Vec::new();
    for month in candidates {
        let fingerprint = fingerprint(lake, &month, opts)?;
        let why = match state.months.get(&month) {
            _ if !opts.months.is_empty() => "requested with --month",
            None => "never rated",
            Some(s) if s.fingerprint != fingerprint => {
                "inputs changed since the last rate (usage, prices, reference or options)"
            }
            Some(_) => continue,
        };
        months.push(MonthToRate {
            month,
            why: why.to_string(),
            fingerprint,
        });
    }
    Ok(RatePlan { months })
}

/// Where a month's rating reaches back into the previous month (billing-cycle tiers): that
/// month, and the day numbers `[start, first_day)` of the cycle's part in it.
pub(super) struct CycleReach {
    pub(super) previous: String,
    start: i32,
    first_day: i32,
}

impl CycleReach {
    /// Whether a record of the previous month dated `day` belongs to the cycle.
    pub(super) fn holds(&self, day: i32) -> bool {
        day >= self.start && day < self.first_day
    }
}

fn cycle_reach(opts: &RateOptions, month: &str) -> Option<CycleReach> {
    let TierPeriod::BillingCycle(_) = opts.period else {
        return None;
    };
    let previous = previous_month(month)?;
    let first_day = parse_month(month)
        .map(crate::model::time::date_to_days)
        .unwrap_or(0);
    let start = crate::model::time::date_to_days(opts.period.period_start(days_to_date(first_day)));
    Some(CycleReach {
        previous,
        start,
        first_day,
    })
}

/// Everything rating one month needs, shared by its units of work.
pub(super) struct MonthJob<'a> {
    pub(super) lake: &'a Lake,
    pub(super) ctx: &'a RateContext<'a>,
    reference: &'a Reference,
    opts: &'a RateOptions,
    pub(super) month: &'a str,
    first_published: Option<&'a str>,
    pub(super) run_id: &'a str,
    pub(super) reach: Option<CycleReach>,
    pub(super) tmp: std::path::PathBuf,
}

/// What rating one unit of work produced.
#[derive(Default)]
pub(super) struct UnitOutput {
    pub(super) staged: u64,
    pub(super) rated: u64,
    pub(super) quarantine: Vec<crate::model::reason::QuarantineRecord>,
    pub(super) runs: Vec<OrgRun>,
    /// Rated rows with unit strings missing from `PricingUnits.csv`.
    pub(super) unknown_units: crate::emit::focus::UnknownUnits,
}

/// One organization's published partition of the month.
struct MergedPartition {
    summary: PartitionSummary,
    total: OrgMonthTotal,
}

impl MonthJob<'_> {
    /// Whether this process rates the record (its organization, or its tenant when unmapped,
    /// is in the shard).
    pub(super) fn owns(&self, r: &UsageRecord) -> bool {
        self.owns_tenant(&r.customer_tenant_id)
    }

    /// Whether this process rates the usage of `tenant`.
    pub(super) fn owns_tenant(&self, tenant: &str) -> bool {
        self.opts
            .shard
            .is_none_or(|s| s.owns(self.organization_or_tenant(tenant)))
    }

    /// The organization of `tenant`, or the tenant itself when it is unmapped.
    pub(super) fn organization_or_tenant<'t>(&'t self, tenant: &'t str) -> &'t str {
        self.reference
            .tenants
            .get(tenant)
            .map_or(tenant, |t| t.organization_id.as_str())
    }

    /// The same bucket of the previous month, when billing-cycle tiers reach into it.
    fn earlier_file(&self, file: &str) -> Option<String> {
        let reach = self.reach.as_ref()?;
        let bucket = file.split('/').find(|p| p.starts_with("bucket="))?;
        let f = format!(
            "staged/usage/month={}/{bucket}/data.parquet",
            reach.previous
        );
        self.lake.exists(&f).then_some(f)
    }

    /// Phase 1 for one unit: load its records (and the cycle's earlier part), rate them, and
    /// spill one sorted run per organization.
    fn rate_unit(&self, unit: usize, unit_files: &[String]) -> Result<UnitOutput> {
        let mut records = Vec::new();
        let mut earlier = Vec::new();
        for f in unit_files {
            records.extend(load_for_rating(self.lake, f)?);
            if let (Some(e), Some(reach)) = (self.earlier_file(f), self.reach.as_ref()) {
                earlier.extend(
                    load_for_rating(self.lake, &e)?
                        .into_iter()
                        .filter(|r| reach.holds(r.usage_date)),
                );
            }
        }
        let mut out = self.rate_loaded(unit, records, earlier)?;
        let whole: Vec<_> = unit_files.iter().map(|f| (f.clone(), None)).collect();
        fill_raw(self.lake, &whole, &mut out.quarantine)?;
        Ok(out)
    }

    /// Rate records held in memory (and the cycle's earlier part) and spill one sorted run
    /// per organization; the quarantine's original text is left for the caller to fill.
    pub(super) fn rate_loaded(
        &self,
        unit: usize,
        mut records: Vec<UsageRecord>,
        mut earlier: Vec<UsageRecord>,
    ) -> Result<UnitOutput> {
        records.retain(|r| self.owns(r));
        earlier.retain(|r| self.owns(r));
        let result = rate_month(self.ctx, self.month, &records, &earlier)?;
        let quarantine = result.quarantine;
        let rated = result.rows.len() as u64;
        let unknown_units = crate::emit::focus::UnknownUnits::count(
            result
                .rows
                .iter()
                .map(|r| [Some(r.version.unit_text.as_str()), r.rec.unit.as_deref()]),
        );
        let mut by_org: HashMap<&str, Vec<RatedRow>> = HashMap::new();
        for row in result.rows {
            by_org.entry(row.org.id.as_str()).or_default().push(row);
        }
        let runs = by_org
            .into_iter()
            .map(|(org_id, rows)| self.spill_org_run(unit, org_id, rows))
            .collect::<Result<_>>()?;
        Ok(UnitOutput {
            staged: records.len() as u64,
            rated,
            quarantine,
            runs,
            unknown_units,
        })
    }

    /// Sort one organization's rows of a unit into output order and write them as a run.
    fn spill_org_run(&self, unit: usize, org_id: &str, mut rows: Vec<RatedRow>) -> Result<OrgRun> {
        rows.sort_by(output_order);
        let org = rows[0].org;
        let mut w = RunWriter::create(&self.run_path(unit, org_id), org, self.month)?;
        let header = self.header(org);
        for c in rows.chunks(64 * 1024) {
            w.append(&usage_batch(&header, c, self.run_id)?)?;
        }
        w.finish()
    }

    /// The partition header of an organization's rows this month.
    pub(super) fn header<'h>(
        &'h self,
        org: &'h crate::model::reference::Organization,
    ) -> PartitionHeader<'h> {
        PartitionHeader {
            org,
            month: self.month,
            scope: self.opts.scope,
            partnerships: &self.reference.partnerships,
            first_published_run: self.first_published,
            subscription_names: &self.reference.subscription_names,
        }
    }

    /// Where a unit's run of an organization is spilled (runs merge in path order).
    pub(super) fn run_path(&self, unit: usize, org_id: &str) -> std::path::PathBuf {
        self.tmp.join(format!(
            "org={}/unit-{unit:06}.arrow",
            crate::emit::costs::partition_value(org_id)
        ))
    }

    /// Phase 1 of the default scope: every staged file cut into tasks at ladder boundaries,
    /// each rated as a stream. A file found out of staged order is rated as one unit.
    fn rate_streams(&self, files: &[String]) -> Result<Vec<UnitOutput>> {
        let planned: Vec<Vec<Task>> = files
            .par_iter()
            .map(|f| plan_tasks(self.lake, f))
            .collect::<Result<_>>()?;
        let tasks: Vec<(usize, Task)> = planned
            .into_iter()
            .enumerate()
            .flat_map(|(i, ts)| ts.into_iter().map(move |t| (i, t)))
            .collect();
        let results: Vec<(usize, std::result::Result<UnitOutput, OutOfOrder>)> = tasks
            .par_iter()
            .enumerate()
            .with_max_len(1)
            .map(|(unit, (file, task))| Ok((*file, self.rate_task(unit, task)?)))
            .collect::<Result<_>>()?;
        let unsorted: BTreeSet<usize> = results
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(f, _)| *f)
            .collect();
        let mut out = Vec::new();
        for (file, r) in results {
            match r {
                Ok(u) if unsorted.contains(&file) => {
                    for run in u.runs {
                        let _ = std::fs::remove_file(&run.path);
                    }
                }
                Ok(u) => out.push(u),
                Err(OutOfOrder) => {}
            }
        }
        for f in unsorted {
            log(&format!(
                "{} is not in staged order: rated as one unit",
                files[f]
            ));
            out.push(self.rate_unit(tasks.len() + f, &files[f..=f])?);
        }
        Ok(out)
    }

    /// Phase 2 for one organization: merge its runs (in unit order) into its partition.
    fn merge_org(&self, org: String, mut runs: Vec<OrgRun>) -> Result<MergedPartition> {
        runs.sort_by(|a, b| a.path.cmp(&b.path));
        let rel = format!("{}/usage-0.parquet", partition_dir(&org, self.month));
        let digest = crate::emit::costs::combine_digests(runs.iter().map(|r| r.digest.as_str()));
        let merged = merge_runs(self.lake, &rel, &runs.iter().collect::<Vec<_>>(), &digest)?;
        let sum = |f: fn(&OrgRun) -> Dec10| {
            runs.iter()
                .try_fold(Dec10::ZERO, |acc, r| acc.checked_add(f(r)))
                .ok_or_else(|| Error::Overflow {
                    context: format!(
                        "summing the partition of organization {org}, month {}",
                        self.month
                    ),
                })
        };
        let total = OrgMonthTotal {
            org: org.clone(),
            month: self.month.to_string(),
            rows: merged.rows,
            list_cost_usd: sum(|r| r.list_cost_usd)?,
            billed_cost: sum(|r| r.billed_cost)?,
            currency: runs[0].currency.clone(),
        };
        let action = if merged.written {
            "written"
        } else {
            "unchanged"
        };
        Ok(MergedPartition {
            summary: PartitionSummary {
                path: rel,
                rows: merged.rows,
                billed_cost: Some(total.billed_cost.to_string()),
                action: action.into(),
            },
            total,
        })
    }
}

/// Rate one month in two phases. Phase 1, per unit of work (a stretch of a staged file for the
/// default scope, a bucket of subscriptions for billing-cycle tiers, a group of ladders for
/// the customer and organization scopes, whose ladders span buckets: [`super::scopes`]):
/// rate, and spill one sorted run per organization. Phase 2, per organization: merge its runs
/// into the partition. Memory is bounded by the largest unit, not by the month.
fn rate_one_month(job: &MonthJob) -> Result<MonthOutput> {
    let files = month_files(job.lake, job.month)?;
    let phase1 = if StreamRater::new(job.ctx, job.month).is_some() {
        job.rate_streams(&files)?
    } else if job.opts.scope == TierScope::Subscription {
        // Buckets hash the subscription: the default scope's ladders never span buckets.
        files
            .par_iter()
            .enumerate()
            .with_max_len(1)
            .map(|(unit, f)| job.rate_unit(unit, std::slice::from_ref(f)))
            .collect::<Result<_>>()?
    } else {
        job.rate_groups(&files)?
    };
    let mut out = MonthOutput {
        staged: 0,
        rated: 0,
        quarantine: Vec::new(),
        partitions: Vec::new(),
        totals: Vec::new(),
        unknown_units: Default::default(),
    };
    let mut by_org: BTreeMap<String, Vec<OrgRun>> = BTreeMap::new();
    for unit in phase1 {
        out.unknown_units.add(&unit.unknown_units);
        out.staged += unit.staged;
        out.rated += unit.rated;
        out.quarantine.extend(unit.quarantine);
        for r in unit.runs {
            by_org.entry(r.org.clone()).or_default().push(r);
        }
    }
    out.quarantine
        .sort_by(|a, b| (&a.source_file, a.source_row).cmp(&(&b.source_file, b.source_row)));
    let by_org: Vec<(String, Vec<OrgRun>)> = by_org.into_iter().collect();
    let merged: Vec<MergedPartition> = by_org
        .into_par_iter()
        .with_max_len(1)
        .map(|(org, runs)| job.merge_org(org, runs))
        .collect::<Result<_>>()?;
    job.lake.remove_scratch(job.run_id);
    for p in merged {
        out.partitions.push(p.summary);
        out.totals.push(p.total);
    }
    Ok(out)
}

/// Run `rate`.
pub fn rate(lake: &Lake, opts: &RateOptions, run_id: &str) -> Result<RateReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::ThreadPool {
            threads: opts.threads.unwrap_or(0),
            detail: e.to_string(),
        })?;
    pool.install(|| rate_in_pool(lake, opts, run_id))
}

fn rate_in_pool(lake: &Lake, opts: &RateOptions, run_id: &str) -> Result<RateReport> {
    let started = std::time::Instant::now();
    let m = Manifest::start(
        run_id,
        "rate",
        serde_json::json!({
            "months": opts.months, "tier_scope": opts.scope.as_str(), "tier_period": opts.period.as_string(),
            "threads": opts.threads, "shard": opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        }),
    );
    let reference = Reference::load(lake)?;
    let problems = reference.registry_problems();
    if !problems.is_empty() {
        return Err(Error::Config { problems });
    }
    let plan = plan_rate(lake, opts)?;
    for mo in &plan.months {
        log(&format!("rate {}: {}", mo.month, mo.why));
    }
    if plan.months.is_empty() {
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
    execute_plan(lake, opts, run_id, &reference, plan, m, started)
}

/// Rate and publish every month of the plan, then record the state and the manifest.
fn execute_plan(
    lake: &Lake,
    opts: &RateOptions,
    run_id: &str,
    reference: &Reference,
    plan: RatePlan,
    mut m: Manifest,
    started: std::time::Instant,
) -> Result<RateReport> {
    let mut state: RateState = lake.get_json(&state_path(opts.shard))?.unwrap_or_default();
    let book = PriceBook::build(&load_prices(lake)?).poison(&load_rejected_prices(lake)?);
    let ctx = RateContext {
        reference,
        book: &book,
        scope: opts.scope,
        period: opts.period,
    };
    let (mut staged, mut rated) = (0u64, 0u64);
    let mut all_quarantine = BTreeMap::new();
    let mut unknown_units = crate::emit::focus::UnknownUnits::default();
    let mut totals = Vec::new();
    let mut progress = Progress::new("rate months", plan.months.len() as u64, false);
    for mo in &plan.months {
        let month = &mo.month;
        let first_published = state
            .months
            .get(month)
            .map(|s| s.first_published_run.clone())
            .filter(|s| !s.is_empty());
        let job = MonthJob {
            lake,
            ctx: &ctx,
            reference,
            opts,
            month,
            first_published: first_published.as_deref(),
            run_id,
            reach: cycle_reach(opts, month),
            tmp: lake
                .scratch_dir(run_id)?
                .join(format!("rate/month={month}")),
        };
        let out = rate_one_month(&job)?;
        staged += out.staged;
        rated += out.rated;
        unknown_units.add(&out.unknown_units);
        let live: BTreeSet<String> = out.totals.iter().map(|t| t.org.clone()).collect();
        m.partitions.extend(out.partitions);
        totals.extend(out.totals);
        m.partitions
            .extend(delete_vanished_partitions(lake, month, &live, opts.shard)?);
        let counts = publish_quarantine(lake, month, opts.shard, run_id, &out.quarantine)?;
        for (k, v) in &counts {
            *m.quarantined.entry(k.clone()).or_insert(0) += v;
        }
        all_quarantine.insert(month.clone(), counts);
        let entry = state.months.entry(month.clone()).or_default();
        entry.fingerprint = mo.fingerprint.clone();
        if entry.first_published_run.is_empty() {
            entry.first_published_run = run_id.to_string();
        }
        m.months.insert(month.clone(), mo.fingerprint.clone());
        progress.inc(1);
    }
    progress.finish();
    m.counts.insert("staged".into(), staged);
    m.counts.insert("rated".into(), rated);
    m.counts.insert("read".into(), staged);
    m.counts.insert("months".into(), plan.months.len() as u64);
    note_unknown_units(&mut m, &unknown_units);
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

/// outputs.md: a unit string FOCUS's table lacks is normalised by rule, never silently.
fn note_unknown_units(m: &mut Manifest, unknown_units: &crate::emit::focus::UnknownUnits) {
    if unknown_units.rows == 0 {
        return;
    }
    m.counts
        .insert("unknown_unit_rows".into(), unknown_units.rows);
    for (u, c) in &unknown_units.by_unit {
        let f = crate::emit::focus::focus_unit(u);
        m.notes.push(format!(
            "unit '{u}' is not in the FinOps toolkit's PricingUnits.csv: {c} rated rows carry it as '{}' with block size {}",
            f.unit,
            f.block.to_plain()
        ));
    }
}

/// Delete the month's usage files of organizations (in this shard) that have no rows any more
/// (tenant removed, usage restated away), returning what was deleted for the manifest.
fn delete_vanished_partitions(
    lake: &Lake,
    month: &str,
    live: &BTreeSet<String>,
    shard: Option<Shard>,
) -> Result<Vec<PartitionSummary>> {
    let mut deleted = Vec::new();
    for org_dir in lake.list_dir("costs")? {
        let org_id = partition_id(&org_dir);
        if live.contains(&org_id) || shard.map(|s| !s.owns(&org_id)).unwrap_or(false) {
            continue;
        }
        let dir = format!("costs/{org_dir}/month={month}");
        for f in lake.list_dir(&dir)? {
            if f.starts_with("usage-") && f.ends_with(".parquet") {
                lake.remove_file(&format!("{dir}/{f}"))?;
                deleted.push(PartitionSummary {
                    path: format!("{dir}/{f}"),
                    rows: 0,
                    billed_cost: None,
                    action: "deleted".into(),
                });
            }
        }
    }
    Ok(deleted)
}

/// Replace the month's rating quarantine (state, one file per shard) and count it by reason.
fn publish_quarantine(
    lake: &Lake,
    month: &str,
    shard: Option<Shard>,
    run_id: &str,
    quarantine: &[crate::model::reason::QuarantineRecord],
) -> Result<BTreeMap<String, u64>> {
    let qfile = format!(
        "quarantine/stage=rate/month={month}/part-{}.parquet",
        shard
            .map(|s| format!("{}-of-{}", s.index, s.count))
            .unwrap_or_else(|| "0".into())
    );
    write_quarantine(lake, &qfile, run_id, quarantine)?;
    Ok(count_by_reason(quarantine))
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
