//! From a validated config to a [`Plan`] (what), and its execution (how): stages run in the
//! configured order, each writing its own manifest; `run` writes one more manifest naming them.

use crate::emit::manifest::{new_run_id, Manifest};
use crate::error::{Error, Result};
use crate::ingest;
use crate::ingest::source::{expand_paths, plan_files, Ledger};
use crate::model::tier::{TierPeriod, TierScope};
use crate::pipeline::config::{expand_env, line_of, resolve_path, PipelineConfig};
use crate::progress::log;
use crate::rate::run::{RateOptions, Shard};
use crate::reconcile::run::{ReconcileOptions, ReconcileRequest};
use crate::report;
use crate::reserve::run::ReserveOptions;
use crate::store::Lake;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Kinds of input, in the order `ingest` reads them (reference data first, usage last but
/// one, so that prices and mappings are there before anything is rated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Reference CSVs.
    Reference,
    /// Price sheets.
    Prices,
    /// Utilization dumps.
    Usage,
    /// Reservation orders.
    Reservations,
}

impl InputKind {
    /// Name as in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Reference => "reference",
            InputKind::Prices => "prices",
            InputKind::Usage => "usage",
            InputKind::Reservations => "reservations",
        }
    }
}

/// One step of a plan.
#[derive(Debug)]
pub enum Step {
    /// `ingest <kind>` of these paths.
    Ingest(InputKind, Vec<PathBuf>),
    /// `rate`.
    Rate(RateOptions),
    /// `reserve`.
    Reserve(ReserveOptions),
    /// `reconcile` of one period.
    Reconcile(ReconcileOptions),
}

/// A validated pipeline.
#[derive(Debug)]
pub struct Plan {
    /// The config file.
    pub source: PathBuf,
    /// The lake.
    pub lake: String,
    /// Steps in order.
    pub steps: Vec<Step>,
}

const STAGES: [&str; 4] = ["ingest", "rate", "reserve", "reconcile"];

/// Read and validate a pipeline file; every problem is reported at once with its line.
pub fn load(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let name = path.display().to_string();
    let cfg: PipelineConfig = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(" (line {})", line_of(&text, s.start)))
            .unwrap_or_default();
        Error::config(format!("{name}{line}: {}", e.message()))
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut problems = Vec::new();
    let at = |s: &std::ops::Range<usize>| format!("{name}:{}", line_of(&text, s.start));
    let expand = |v: &Spanned<String>, problems: &mut Vec<String>| -> String {
        expand_env(v.get_ref()).unwrap_or_else(|e| {
            problems.push(format!("{}: {e}", at(&v.span())));
            String::new()
        })
    };
    let lake_text = expand(&cfg.lake, &mut problems);
    let lake = if lake_text.contains("://") {
        lake_text
    } else {
        resolve_path(&base, &lake_text).display().to_string()
    };
    let mut steps = Vec::new();
    if cfg.stages.get_ref().is_empty() {
        problems.push(format!(
            "{}: stages is empty; name at least one of {}",
            at(&cfg.stages.span()),
            STAGES.join(", ")
        ));
    }
    for stage in cfg.stages.get_ref() {
        match stage.as_str() {
            "ingest" => {
                let kinds = [
                    (InputKind::Reference, &cfg.ingest.reference),
                    (InputKind::Prices, &cfg.ingest.prices),
                    (InputKind::Usage, &cfg.ingest.usage),
                    (InputKind::Reservations, &cfg.ingest.reservations),
                ];
                let mut any = false;
                for (kind, entries) in kinds {
                    let mut paths = Vec::new();
                    for e in entries {
                        let p = resolve_path(&base, &expand(e, &mut problems));
                        if !p.exists() {
                            problems.push(format!(
                                "{}: ingest.{} path {} does not exist",
                                at(&e.span()),
                                kind.as_str(),
                                p.display()
                            ));
                        }
                        paths.push(p);
                    }
                    if !paths.is_empty() {
                        any = true;
                        // Each usage entry is one dump: ingested on its own, in order, so
                        // that a later dump restates an earlier one.
                        if kind == InputKind::Usage {
                            steps.extend(paths.into_iter().map(|p| Step::Ingest(kind, vec![p])));
                        } else {
                            steps.push(Step::Ingest(kind, paths));
                        }
                    }
                }
                if !any {
                    problems.push(format!(
                        "{}: stage ingest is listed but [ingest] names no paths",
                        at(&cfg.stages.span())
                    ));
                }
            }
            "rate" => {
                let r = &cfg.rate;
                let mut opts = RateOptions::default();
                if let Some(s) = &r.tier_scope {
                    match TierScope::parse(s.get_ref()) {
                        Some(v) => opts.scope = v,
                        None => problems.push(format!("{}: rate.tier_scope '{}': expected subscription, customer or organization", at(&s.span()), s.get_ref())),
                    }
                }
                if let Some(p) = &r.tier_period {
                    match TierPeriod::parse(p.get_ref()) {
                        Some(v) => opts.period = v,
                        None => problems.push(format!("{}: rate.tier_period '{}': expected calendar_month or billing_cycle:DAY (1..28)", at(&p.span()), p.get_ref())),
                    }
                }
                for mo in &r.months {
                    let ok = crate::model::time::parse_month(mo.get_ref())
                        .map(crate::model::time::month_of)
                        .as_deref()
                        == Some(mo.get_ref().as_str());
                    if ok {
                        opts.months.push(mo.get_ref().clone());
                    } else {
                        problems.push(format!(
                            "{}: rate.months '{}' is not YYYY-MM",
                            at(&mo.span()),
                            mo.get_ref()
                        ));
                    }
                }
                if let Some(t) = &r.threads {
                    if *t.get_ref() == 0 {
                        problems.push(format!(
                            "{}: rate.threads must be at least 1",
                            at(&t.span())
                        ));
                    }
                    opts.threads = Some(*t.get_ref());
                }
                if let Some(s) = &r.shard {
                    let text = expand(s, &mut problems);
                    match Shard::parse(&text) {
                        Some(v) => opts.shard = Some(v),
                        None => problems.push(format!(
                            "{}: rate.shard '{text}': expected i/n with 0 <= i < n",
                            at(&s.span())
                        )),
                    }
                }
                steps.push(Step::Rate(opts));
            }
            "reserve" => {
                let as_of = match &cfg.reserve.as_of {
                    None => chrono::Utc::now().date_naive(),
                    Some(d) => {
                        NaiveDate::parse_from_str(d.get_ref(), "%Y-%m-%d").unwrap_or_else(|_| {
                            problems.push(format!(
                                "{}: reserve.as_of '{}' is not YYYY-MM-DD",
                                at(&d.span()),
                                d.get_ref()
                            ));
                            NaiveDate::default()
                        })
                    }
                };
                steps.push(Step::Reserve(ReserveOptions { as_of }));
            }
            "reconcile" => {
                if cfg.reconcile.is_empty() {
                    problems.push(format!(
                        "{}: stage reconcile is listed but no [[reconcile]] table names a period",
                        at(&cfg.stages.span())
                    ));
                }
                for r in &cfg.reconcile {
                    let text = |v: &Option<Spanned<String>>, problems: &mut Vec<String>| {
                        v.as_ref().map(|v| expand(v, problems))
                    };
                    let file = |v: &Option<Spanned<String>>, problems: &mut Vec<String>| {
                        text(v, problems).map(|t| resolve_path(&base, &t))
                    };
                    let (from, to) = (r.from.get_ref(), r.to.get_ref());
                    let out = resolve_path(&base, &expand(&r.out, &mut problems));
                    let (org, tenant) =
                        (text(&r.org, &mut problems), text(&r.tenant, &mut problems));
                    let invoice = file(&r.invoice, &mut problems);
                    let subscription_map = file(&r.subscription_map, &mut problems);
                    let qt = text(&r.quantity_tolerance, &mut problems);
                    let ct = text(&r.cost_tolerance, &mut problems);
                    let request = ReconcileRequest {
                        from,
                        to,
                        out,
                        org: org.as_deref(),
                        tenant: tenant.as_deref(),
                        grain: if r.daily { "daily" } else { "period" },
                        invoice,
                        subscription_map,
                        quantity_tolerance: qt.as_deref().unwrap_or("0.000001"),
                        cost_tolerance: ct.as_deref().unwrap_or("0.005"),
                    };
                    // Problems of a table point at its first line.
                    let line = at(&r.from.span());
                    match request.validate(&|field| format!("reconcile.{field}")) {
                        Ok(opts) => steps.push(Step::Reconcile(opts)),
                        Err(p) => problems.extend(p.into_iter().map(|p| format!("{line}: {p}"))),
                    }
                }
            }
            other => problems.push(format!(
                "{}: unknown stage '{other}'; stages are {}",
                at(&cfg.stages.span()),
                STAGES.join(", ")
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Config { problems });
    }
    Ok(Plan {
        source: path.to_path_buf(),
        lake,
        steps,
    })
}

/// Print what the plan would do, reading the lake but writing nothing.
pub fn describe(plan: &Plan) -> Result<()> {
    println!("pipeline {} on lake {}", plan.source.display(), plan.lake);
    let lake_exists = plan.lake.contains("://") || Path::new(&plan.lake).exists();
    if !lake_exists {
        println!("  the lake does not exist yet: it would be created");
    }
    let lake = if lake_exists {
        Some(Lake::open(&plan.lake)?)
    } else {
        None
    };
    for (i, step) in plan.steps.iter().enumerate() {
        match step {
            Step::Ingest(kind, paths) => {
                let files = expand_paths(paths)?;
                let ledger = match &lake {
                    Some(l) => Ledger::load(l, kind.as_str())?,
                    None => Ledger::default(),
                };
                let (to_read, _) = plan_files(&files, &ledger)?;
                let bytes: u64 = to_read.iter().map(|f| f.bytes).sum();
                println!(
                    "  {}. ingest {}: {} files, {} new ({} bytes), {} already ingested",
                    i + 1,
                    kind.as_str(),
                    files.len(),
                    to_read.len(),
                    bytes,
                    files.len() - to_read.len()
                );
            }
            Step::Rate(opts) => {
                let months = match &lake {
                    Some(l) => {
                        crate::rate::run::rate(
                            l,
                            &RateOptions {
                                dry_run: true,
                                ..opts.clone()
                            },
                            &new_run_id(),
                        )?
                        .plan
                        .months
                    }
                    None => Vec::new(),
                };
                println!(
                    "  {}. rate (tier scope {}, tier period {}):",
                    i + 1,
                    opts.scope.as_str(),
                    opts.period.as_string()
                );
                if months.is_empty() {
                    println!("     no month has changed inputs now");
                }
                for mo in months {
                    println!("     {}: {}", mo.month, mo.why);
                }
                println!("     plus every month the new usage files above touch");
            }
            Step::Reserve(o) => println!("  {}. reserve as of {}", i + 1, o.as_of),
            Step::Reconcile(o) => println!(
                "  {}. reconcile {}{} into {}",
                i + 1,
                o.period,
                o.invoice
                    .as_ref()
                    .map(|p| format!(" against {}", p.display()))
                    .unwrap_or_default(),
                o.out.display()
            ),
        }
    }
    Ok(())
}

/// Execute a plan, printing each stage's summary.
pub fn execute(plan: &Plan, quiet: bool) -> Result<Manifest> {
    let started = std::time::Instant::now();
    let run_id = new_run_id();
    let lake = Lake::open(&plan.lake)?;
    let mut m = Manifest::start(
        &run_id,
        "run",
        serde_json::json!({ "config": plan.source, "lake": plan.lake }),
    );
    for step in &plan.steps {
        let child = new_run_id();
        match step {
            Step::Ingest(kind, paths) => {
                let paths = paths.clone();
                let cm = match kind {
                    InputKind::Reference => ingest::reference::ingest_reference(
                        &lake,
                        &ingest::reference::IngestReferenceOptions { paths },
                        &child,
                    )?,
                    InputKind::Prices => ingest::prices::ingest_prices(
                        &lake,
                        &ingest::prices::IngestPricesOptions { paths },
                        &child,
                    )?,
                    InputKind::Usage => ingest::usage::ingest_usage(
                        &lake,
                        &ingest::usage::IngestUsageOptions { paths },
                        &child,
                    )?,
                    InputKind::Reservations => ingest::orders::ingest_orders(
                        &lake,
                        &ingest::orders::IngestOrdersOptions { paths },
                        &child,
                    )?,
                };
                if !quiet {
                    report::print_ingest_summary(&cm);
                }
                m.notes.push(format!("{}: {}", cm.command, cm.run_id));
            }
            Step::Rate(opts) => {
                let r = crate::rate::run::rate(&lake, opts, &child)?;
                if !quiet {
                    report::print_rate_summary(&r);
                }
                m.notes.push(format!("rate: {}", r.manifest.run_id));
            }
            Step::Reserve(opts) => {
                let r = crate::reserve::run::reserve(&lake, opts, &child)?;
                if !quiet {
                    report::print_reserve_summary(&r);
                }
                m.notes.push(format!("reserve: {}", r.manifest.run_id));
            }
            Step::Reconcile(opts) => {
                let r = crate::reconcile::run::reconcile(&lake, opts, &child)?;
                if !quiet {
                    crate::reconcile::display::print_summary(&r);
                }
                m.notes.push(format!("reconcile: {}", r.manifest.run_id));
            }
        }
        *m.counts.entry("stages".into()).or_insert(0) += 1;
    }
    log(&format!(
        "run {}: {} stages done",
        plan.source.display(),
        plan.steps.len()
    ));
    m.finish(&lake, started)
}
