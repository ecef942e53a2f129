//! `cspcost reconcile`: read the invoice first (a bad line stops the run before any work),
//! then the rated rows of the months the periods touch, one organization at a time (tier
//! scopes never cross organizations, so memory is bounded by the largest organization, not
//! by the lake), build the extract and the computed side, join, write the outputs, and
//! record the run with its tolerances in `_runs/<run_id>.json`.

use crate::emit::manifest::{InputFile, Manifest};
use crate::error::Result;
use crate::model::choice::{Choice, OptionEnum};
use crate::model::decimal::Dec10;
use crate::model::reference::Reference;
use crate::pricing::price_book::PriceBook;
use crate::reconcile::cycle::retier_costs;
use crate::reconcile::extract::{
    load_rated_usage, organization_dirs, Extract, OrgSummary, RatedUsage,
};
use crate::reconcile::invoice::{read_invoice, read_subscription_map, Invoice, SubscriptionMap};
use crate::reconcile::period::Period;
use crate::reconcile::variance::{
    aggregate_invoice, choose_match, join, summarize, Computed, JoinContext, MatchOn, Tolerances,
    VarianceLine, VarianceReason, VarianceSummary,
};
use crate::reconcile::write::{lines_table, summary_table, variance_summary_table, variance_table};
use crate::reconcile::ReconcileError;
use crate::staged::prices::{load_prices, load_rejected_prices};
use crate::store::{sha256_file, Lake};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The key of an extract line besides organization, tenant, subscription and meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Grain {
    /// One line for the whole period.
    #[default]
    Period,
    /// One line per usage date (`--grain daily`).
    Daily,
}

impl OptionEnum for Grain {}

impl Grain {
    /// As written in options.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Period => "period",
            Grain::Daily => "daily",
        }
    }
}

/// Validated options of `reconcile`.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// `--from`..`--to`, inclusive.
    pub period: Period,
    /// Output directory.
    pub out: PathBuf,
    /// Only this organization.
    pub org: Option<String>,
    /// Only this customer tenant (lowercase GUID).
    pub tenant: Option<String>,
    /// Extract grain.
    pub grain: Grain,
    /// Microsoft's invoice reconciliation file.
    pub invoice: Option<PathBuf>,
    /// Billing-platform `SubscriptionId` -> subscription GUID.
    pub subscription_map: Option<PathBuf>,
    /// Quantity and cost tolerances.
    pub tolerances: Tolerances,
}

/// `--quantity-tolerance` and `reconcile.quantity_tolerance` when not given.
pub const DEFAULT_QUANTITY_TOLERANCE: &str = "0.000001";
/// `--cost-tolerance` and `reconcile.cost_tolerance` when not given.
pub const DEFAULT_COST_TOLERANCE: &str = "0.005";

/// `reconcile` options as text, from command-line flags or a pipeline file, before
/// validation.
#[derive(Clone, Debug)]
pub struct ReconcileRequest<'a> {
    /// First usage date, `YYYY-MM-DD`.
    pub from: &'a str,
    /// Last usage date, `YYYY-MM-DD`.
    pub to: &'a str,
    /// Output directory.
    pub out: PathBuf,
    /// Only this organization.
    pub org: Option<&'a str>,
    /// Only this customer tenant (a GUID, any case).
    pub tenant: Option<&'a str>,
    /// `period` or `daily`.
    pub grain: Choice<Grain>,
    /// Microsoft's invoice reconciliation file.
    pub invoice: Option<PathBuf>,
    /// `SubscriptionId,subscription_id` CSV.
    pub subscription_map: Option<PathBuf>,
    /// A decimal >= 0.
    pub quantity_tolerance: &'a str,
    /// A decimal >= 0.
    pub cost_tolerance: &'a str,
}

impl ReconcileRequest<'_> {
    /// Validated options, or every problem at once. `name` says how a field (`from`,
    /// `cost_tolerance`, ...) is called where the user wrote it: `--cost-tolerance` on the
    /// command line, `reconcile.cost_tolerance` in a pipeline file (which adds the line).
    pub fn validate(&self, name: &dyn Fn(&str) -> String) -> Result<ReconcileOptions, Vec<String>> {
        let mut problems = Vec::new();
        let mut date = |field: &str, v: &str| {
            let d = chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok();
            if d.is_none() {
                problems.push(format!("{} '{v}' is not a date (YYYY-MM-DD)", name(field)));
            }
            d
        };
        let (from, to) = (date("from", self.from), date("to", self.to));
        let period = match (from, to) {
            (Some(f), Some(t)) => Period::new(f, t).or_else(|| {
                problems.push(format!("{} {t} is before {} {f}", name("to"), name("from")));
                None
            }),
            _ => None,
        };
        let grain = self.grain.value().unwrap_or_else(|why| {
            problems.push(format!("{} {why}", name("grain")));
            Grain::Period
        });
        let mut tolerance = |field: &str, v: &str| match Dec10::parse(v) {
            Ok(t) if !t.is_negative() => t,
            _ => {
                problems.push(format!(
                    "{} '{v}' is not a decimal number >= 0",
                    name(field)
                ));
                Dec10::ZERO
            }
        };
        let tolerances = Tolerances {
            quantity: tolerance("quantity_tolerance", self.quantity_tolerance),
            cost: tolerance("cost_tolerance", self.cost_tolerance),
        };
        let tenant = self.tenant.and_then(|t| {
            let g = crate::model::ids::normalize_guid(t);
            if g.is_none() {
                problems.push(format!("{} '{t}' is not a GUID", name("tenant")));
            }
            g
        });
        for (field, p) in [
            ("invoice", &self.invoice),
            ("subscription_map", &self.subscription_map),
        ] {
            if let Some(p) = p.as_ref().filter(|p| !p.is_file()) {
                problems.push(format!("{} {}: no such file", name(field), p.display()));
            }
        }
        let out = self.out.display().to_string();
        if out.contains("://") && !out.starts_with("file://") {
            problems.push(format!(
                "{} {out}: write the reconciliation to a local directory",
                name("out")
            ));
        }
        if self.subscription_map.is_some() && self.invoice.is_none() {
            let (m, i) = (name("subscription_map"), name("invoice"));
            problems.push(format!("{m} needs {i}"));
        }
        match period {
            Some(period) if problems.is_empty() => Ok(ReconcileOptions {
                period,
                out: self.out.clone(),
                org: self.org.map(str::to_string),
                tenant,
                grain,
                invoice: self.invoice.clone(),
                subscription_map: self.subscription_map.clone(),
                tolerances,
            }),
            _ => Err(problems),
        }
    }
}

/// The comparison with an invoice.
#[derive(Debug)]
pub struct VarianceReport {
    /// The invoice file.
    pub invoice_path: String,
    /// Lines read from it.
    pub invoice_lines: u64,
    /// Its currency (USD when it has no lines).
    pub currency: String,
    /// What lines were matched on.
    pub on: MatchOn,
    /// Why.
    pub match_reason: String,
    /// Compared lines.
    pub lines: Vec<VarianceLine>,
    /// Per tenant, then the total.
    pub summaries: Vec<VarianceSummary>,
}

/// What `reconcile` did.
#[derive(Debug)]
pub struct ReconcileReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// The period.
    pub period: Period,
    /// Extract grain.
    pub grain: Grain,
    /// Output directory.
    pub out: PathBuf,
    /// Files written there.
    pub files: Vec<String>,
    /// Rated rows in the period (after filters).
    pub rows: u64,
    /// Extract lines.
    pub lines: u64,
    /// Per organization.
    pub orgs: Vec<OrgSummary>,
    /// With `--invoice`.
    pub variance: Option<VarianceReport>,
    /// Sentences for the reader.
    pub notes: Vec<String>,
}

fn input_file(path: &Path) -> Result<InputFile> {
    let (sha256, bytes) = sha256_file(path)?;
    Ok(InputFile {
        path: path.display().to_string(),
        bytes,
        sha256,
        status: "read".into(),
    })
}

/// The options as the manifest records them.
fn options_echo(opts: &ReconcileOptions) -> serde_json::Value {
    serde_json::json!({
        "from": opts.period.start.to_string(), "to": opts.period.end.to_string(),
        "out": opts.out.display().to_string(), "org": opts.org, "tenant": opts.tenant,
        "grain": opts.grain.as_str(),
        "invoice": opts.invoice.as_ref().map(|p| p.display().to_string()),
        "subscription_map": opts.subscription_map.as_ref().map(|p| p.display().to_string()),
        "quantity_tolerance": opts.tolerances.quantity.to_plain(),
        "cost_tolerance": opts.tolerances.cost.to_plain(),
    })
}

/// The variance tables: `variance` (CSV and Parquet) and `variance_summary`.
fn write_variance(out: &Lake, v: &VarianceReport) -> Result<Vec<String>> {
    let mut files = variance_table(&v.lines).write(out, "variance", true)?;
    files.extend(variance_summary_table(&v.summaries, &v.currency).write(
        out,
        "variance_summary",
        false,
    )?);
    Ok(files)
}

/// Run `reconcile`.
pub fn reconcile(lake: &Lake, opts: &ReconcileOptions, run_id: &str) -> Result<ReconcileReport> {
    let started = std::time::Instant::now();
    let mut m = Manifest::start(run_id, "reconcile", options_echo(opts));
    let invoice: Option<Invoice> = opts.invoice.as_deref().map(read_invoice).transpose()?;
    let map: Option<SubscriptionMap> = opts
        .subscription_map
        .as_deref()
        .map(read_subscription_map)
        .transpose()?;
    for p in opts.invoice.iter().chain(&opts.subscription_map) {
        m.inputs.push(input_file(p)?);
    }
    let reference = Reference::load(lake)?;
    let mut notes = Vec::new();
    let periods = periods_to_read(opts, invoice.as_ref(), &mut notes);
    let book = match &invoice {
        Some(_) => Some(PriceBook::build(&load_prices(lake)?).poison(&load_rejected_prices(lake)?)),
        None => None,
    };
    let read = read_rated(lake, opts, &periods, book.as_ref())?;
    let orgs = read.extract.summary()?;
    let rows: u64 = orgs.iter().map(|o| o.rows).sum();
    if rows == 0 {
        notes.push(format!(
            "no rated usage in {}: has `cspcost rate` run for {}?",
            opts.period,
            opts.period.months().join(", ")
        ));
    }

    let daily = opts.grain == Grain::Daily;
    let out = Lake::open(&opts.out.display().to_string())?;
    let mut files = lines_table(&read.extract, daily).write(&out, "lines", true)?;
    files.extend(summary_table(&orgs).write(&out, "summary", false)?);

    let variance = match invoice {
        Some(inv) => {
            let v = compare(opts, &reference, inv, map.as_ref(), &read.computed)?;
            files.extend(write_variance(&out, &v)?);
            notes.insert(
                0,
                format!("matched on {}: {}", v.on.as_str(), v.match_reason),
            );
            Some(v)
        }
        None => None,
    };

    let lines = read.extract.lines.len() as u64;
    record_counts(&mut m, read.rows_read, rows, lines, variance.as_ref())?;
    m.notes = notes.clone();
    m.notes.push(format!(
        "wrote {} to {}",
        files.join(", "),
        opts.out.display()
    ));
    let manifest = m.finish(lake, started)?;
    Ok(ReconcileReport {
        manifest,
        period: opts.period,
        grain: opts.grain,
        out: opts.out.clone(),
        files,
        rows,
        lines,
        orgs,
        variance,
        notes,
    })
}

/// The requested period plus every charge period of the invoice, with a note for the reader
/// when the invoice does not have the requested period or has others.
fn periods_to_read(
    opts: &ReconcileOptions,
    invoice: Option<&Invoice>,
    notes: &mut Vec<String>,
) -> BTreeSet<Period> {
    let mut periods: BTreeSet<Period> = [opts.period].into();
    let Some(inv) = invoice else {
        return periods;
    };
    periods.extend(inv.lines.iter().map(|l| l.charge_period));
    if !inv.lines.is_empty() && !inv.lines.iter().any(|l| l.charge_period == opts.period) {
        notes.push(format!(
            "no invoice line has the charge period {}: computed lines of that period are MISSING_IN_INVOICE; give the invoice's cycle as --from/--to",
            opts.period
        ));
    }
    let others: BTreeSet<Period> = periods
        .iter()
        .filter(|p| **p != opts.period)
        .copied()
        .collect();
    if !others.is_empty() {
        let shown: Vec<String> = others.iter().map(Period::to_string).collect();
        notes.push(format!(
            "invoice lines of charge period(s) {} are compared with the usage of their own period",
            shown.join(", ")
        ));
    }
    periods
}

/// What the rated rows of the periods gave: the extract of the requested period, the
/// computed side of every charge period (with an invoice), and how many rows were read.
struct RatedRead {
    extract: Extract,
    computed: Computed,
    rows_read: u64,
}

/// Read the rated rows of the months the periods touch, one organization at a time, into the
/// extract and (with a price book, that is with an invoice) the re-tiered computed side.
fn read_rated(
    lake: &Lake,
    opts: &ReconcileOptions,
    periods: &BTreeSet<Period>,
    book: Option<&PriceBook>,
) -> Result<RatedRead> {
    let months: Vec<String> = periods
        .iter()
        .flat_map(Period::months)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let daily = opts.grain == Grain::Daily;
    let tenant_ok = |t: &str| opts.tenant.as_deref().is_none_or(|x| x == t);
    let mut read = RatedRead {
        extract: Extract::default(),
        computed: Computed::default(),
        rows_read: 0,
    };
    for org_dir in organization_dirs(lake, opts.org.as_deref())? {
        let in_any = |d: i32| periods.iter().any(|p| p.contains_days(d));
        let rows = load_rated_usage(lake, &org_dir, &months, &in_any)?;
        read.rows_read += rows.len() as u64;
        read.extract.add_rows(
            rows.iter().filter(|r| {
                opts.period.contains_days(r.usage_date) && tenant_ok(&r.customer_tenant_id)
            }),
            daily,
        )?;
        let Some(book) = book else { continue };
        for p in periods {
            let in_p: Vec<&RatedUsage> = rows
                .iter()
                .filter(|r| p.contains_days(r.usage_date))
                .collect();
            // Re-tier before filtering by tenant: a customer or organization ladder climbs
            // on every tenant's usage, as it did when the month was rated.
            let costs = retier_costs(&in_p, book)?;
            let (kept, kept_costs): (Vec<&RatedUsage>, Vec<Dec10>) = in_p
                .into_iter()
                .zip(costs)
                .filter(|(r, _)| tenant_ok(&r.customer_tenant_id))
                .unzip();
            read.computed.add_period(*p, &kept, &kept_costs)?;
        }
    }
    Ok(read)
}

/// The manifest's counts; with an invoice, variance lines balance against their reasons.
fn record_counts(
    m: &mut Manifest,
    rows_read: u64,
    rows: u64,
    lines: u64,
    variance: Option<&VarianceReport>,
) -> Result<()> {
    m.counts.insert("rows_read".into(), rows_read);
    m.counts.insert("rows".into(), rows);
    m.counts.insert("lines".into(), lines);
    let Some(v) = variance else {
        return Ok(());
    };
    m.counts.insert("invoice_lines".into(), v.invoice_lines);
    m.counts
        .insert("variance_lines".into(), v.lines.len() as u64);
    let mut keys = Vec::new();
    for r in VarianceReason::ALL {
        let key = format!("variance_{}", r.as_str());
        let n = v.lines.iter().filter(|l| l.reason == r).count() as u64;
        m.counts.insert(key.clone(), n);
        keys.push(key);
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    m.check_balance("reconcile", "variance_lines", &keys)
}

/// The invoice side, the match, the join and the summaries.
fn compare(
    opts: &ReconcileOptions,
    reference: &Reference,
    inv: Invoice,
    map: Option<&SubscriptionMap>,
    computed: &Computed,
) -> Result<VarianceReport> {
    let (on, match_reason) = choose_match(&inv.lines, map, &computed.subscriptions());
    let items = aggregate_invoice(&inv.lines, on, map)?;
    let currency = inv.currency.clone().unwrap_or_else(|| "USD".into());
    let fx = |month: &str| -> Result<Dec10> {
        reference.fx_usd_per_unit(&currency, month).ok_or_else(|| {
            ReconcileError::NoFxRate {
                currency: currency.clone(),
                month: month.to_string(),
            }
            .into()
        })
    };
    let organization_of = |tenant: &str| {
        reference
            .tenants
            .get(tenant)
            .map(|t| t.organization_id.clone())
    };
    let keep = |l: &VarianceLine| {
        opts.tenant
            .as_deref()
            .is_none_or(|t| t == l.customer_tenant_id)
            && opts
                .org
                .as_deref()
                .is_none_or(|o| l.organization_id.as_deref() == Some(o))
    };
    let ctx = JoinContext {
        period: opts.period,
        currency: &currency,
        fx: &fx,
        organization_of: &organization_of,
        keep: &keep,
        on,
        tolerances: opts.tolerances,
    };
    let lines = join(&ctx, &items, computed)?;
    let summaries = summarize(&lines)?;
    Ok(VarianceReport {
        invoice_path: inv.path,
        invoice_lines: inv.lines.len() as u64,
        currency,
        on,
        match_reason,
        lines,
        summaries,
    })
}
