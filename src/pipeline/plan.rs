//! From a validated config to a [`Plan`] (what), and its execution (how): stages run in the
//! configured order, each writing its own manifest; `run` writes one more manifest naming them.

use crate::emit::manifest::{new_run_id, Manifest};
use crate::error::{Error, Result};
use crate::ingest;
use crate::ingest::source::{expand_paths, plan_files};
use crate::pipeline::config::{expand_env, line_of, resolve_path, PipelineConfig};
use crate::progress::log;
use crate::rate::run::RateOptions;
use crate::reconcile::run::{ReconcileOptions, ReconcileRequest};
use crate::report;
use crate::reserve::run::ReserveOptions;
use crate::staged::ledger::Ledger;
use crate::store::Lake;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use crate::ingest::InputKind;

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
    /// `pull <what>` into a directory.
    Pull(crate::pull::PullOptions),
    /// `bill` of one month.
    Bill(crate::bill::BillOptions),
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

const STAGES: [&str; 6] = ["pull", "ingest", "rate", "reserve", "reconcile", "bill"];

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
    // Paths under the pull stage's directory may not exist before the pull has run.
    let pull_out = match (&cfg.pull, cfg.stages.get_ref().iter().any(|s| s == "pull")) {
        (Some(p), true) => Some(resolve_path(&base, &expand(&p.out, &mut problems))),
        _ => None,
    };
    if cfg.stages.get_ref().iter().position(|s| s == "ingest")
        < cfg.stages.get_ref().iter().position(|s| s == "pull")
        && cfg.stages.get_ref().iter().any(|s| s == "ingest")
    {
        problems.push(format!(
            "{}: stage pull must come before ingest (ingest reads what pull writes)",
            at(&cfg.stages.span())
        ));
    }
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
                        let pulled = pull_out.as_ref().is_some_and(|o| p.starts_with(o));
                        if !p.exists() && !pulled {
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
                let request = crate::rate::run::RateRequest {
                    months: r.months.iter().map(|m| m.get_ref().clone()).collect(),
                    tier_scope: r.tier_scope.as_ref().map(|s| s.get_ref().clone()),
                    tier_period: r.tier_period.as_ref().map(|s| s.get_ref().clone()),
                    threads: r.threads.as_ref().map(|t| *t.get_ref()),
                    shard: r.shard.as_ref().map(|s| expand(s, &mut problems)),
                    dry_run: false,
                };
                // Each problem points at the line of its own field (or month).
                let line = |field: &str, item: Option<usize>| {
                    let span = match (field, item) {
                        ("tier_scope", _) => r.tier_scope.as_ref().map(|s| s.span()),
                        ("tier_period", _) => r.tier_period.as_ref().map(|s| s.span()),
                        ("months", Some(i)) => r.months.get(i).map(|m| m.span()),
                        ("threads", _) => r.threads.as_ref().map(|t| t.span()),
                        ("shard", _) => r.shard.as_ref().map(|s| s.span()),
                        _ => None,
                    };
                    let at_line = at(&span.unwrap_or_else(|| cfg.stages.span()));
                    format!("{at_line}: rate.{field}")
                };
                match request.validate(&line) {
                    Ok(opts) => steps.push(Step::Rate(opts)),
                    Err(p) => problems.extend(p),
                }
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
            "pull" => match &cfg.pull {
                None => problems.push(format!(
                    "{}: stage pull is listed but there is no [pull] table",
                    at(&cfg.stages.span())
                )),
                Some(p) => {
                    let line = at(&p.out.span());
                    let text = |v: &Option<Spanned<String>>, problems: &mut Vec<String>| {
                        v.as_ref().map(|v| expand(v, problems))
                    };
                    let request = crate::pull::PullRequest {
                        out: pull_out.clone().unwrap_or_default(),
                        lake: (!p.all_customers).then(|| lake.clone()),
                        from: text(&p.from, &mut problems),
                        to: text(&p.to, &mut problems),
                        overlap_days: p.overlap_days.as_ref().map(|d| d.get_ref().to_string()),
                        all_customers: p.all_customers,
                        currency: text(&p.currency, &mut problems),
                        filter: text(&p.filter, &mut problems),
                        region: text(&p.region, &mut problems),
                        months: p.months.clone(),
                        invoices: p.invoices.clone(),
                        since: text(&p.since, &mut problems),
                        concurrency: p.concurrency,
                        dry_run: false,
                    };
                    if p.what.get_ref().is_empty() {
                        problems.push(format!("{}: pull.what is empty", at(&p.what.span())));
                    }
                    for w in p.what.get_ref() {
                        match crate::pull::PullWhat::parse(w) {
                            None => problems.push(format!(
                                "{}: pull.what '{w}': expected usage, prices, ratecard, fx or invoices",
                                at(&p.what.span())
                            )),
                            Some(what) => match request.validate(what, &|f| format!("pull.{f}")) {
                                Ok(opts) => steps.push(Step::Pull(opts)),
                                Err(ps) => problems.extend(ps.into_iter().map(|p| format!("{line}: {p}"))),
                            },
                        }
                    }
                }
            },
            "bill" => match &cfg.bill {
                None => problems.push(format!(
                    "{}: stage bill is listed but there is no [bill] table naming the month",
                    at(&cfg.stages.span())
                )),
                Some(b) => {
                    let month = expand(&b.month, &mut problems);
                    let org = b.org.as_ref().map(|o| expand(o, &mut problems));
                    let request = crate::bill::BillRequest {
                        month: &month,
                        org: org.as_deref(),
                        issue: b.issue,
                    };
                    let line = at(&b.month.span());
                    match request.validate(&|field| format!("bill.{field}")) {
                        Ok(opts) => steps.push(Step::Bill(opts)),
                        Err(p) => problems.extend(p.into_iter().map(|p| format!("{line}: {p}"))),
                    }
                }
            },
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
    crate::outln!("pipeline {} on lake {}", plan.source.display(), plan.lake);
    let lake_exists = plan.lake.contains("://") || Path::new(&plan.lake).exists();
    if !lake_exists {
        crate::outln!("  the lake does not exist yet: it would be created");
    }
    let lake = if lake_exists {
        Some(Lake::open(&plan.lake)?)
    } else {
        None
    };
    for (i, step) in plan.steps.iter().enumerate() {
        match step {
            Step::Pull(opts) => {
                crate::outln!(
                    "  {}. pull {} into {}:",
                    i + 1,
                    opts.what.as_str(),
                    opts.out.display()
                );
                crate::pull::run(
                    &crate::pull::PullOptions {
                        dry_run: true,
                        ..opts.clone()
                    },
                    "pull",
                    &new_run_id(),
                )?;
            }
            Step::Ingest(kind, paths) => {
                // A directory the pull stage has not written yet has nothing to list.
                let paths: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
                let files = expand_paths(&paths)?;
                let ledger = match &lake {
                    Some(l) => Ledger::load(l, kind.as_str())?,
                    None => Ledger::default(),
                };
                let (to_read, _) = plan_files(&files, &ledger)?;
                let bytes: u64 = to_read.iter().map(|f| f.bytes).sum();
                crate::outln!(
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
                crate::outln!(
                    "  {}. rate (tier scope {}, tier period {}):",
                    i + 1,
                    opts.scope.as_str(),
                    opts.period.as_string()
                );
                if months.is_empty() {
                    crate::outln!("     no month has changed inputs now");
                }
                for mo in months {
                    crate::outln!("     {}: {}", mo.month, mo.why);
                }
                crate::outln!("     plus every month the new usage files above touch");
            }
            Step::Reserve(o) => crate::outln!("  {}. reserve as of {}", i + 1, o.as_of),
            Step::Reconcile(o) => crate::outln!(
                "  {}. reconcile {}{} into {}",
                i + 1,
                o.period,
                o.invoice
                    .as_ref()
                    .map(|p| format!(" against {}", p.display()))
                    .unwrap_or_default(),
                o.out.display()
            ),
            Step::Bill(o) => crate::outln!(
                "  {}. bill {}{}{}",
                i + 1,
                o.month,
                o.org
                    .as_ref()
                    .map(|g| format!(" for organization {g}"))
                    .unwrap_or_default(),
                if o.issue { ", issuing it" } else { "" }
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
                let request = ingest::IngestRequest {
                    kind: *kind,
                    paths: paths.clone(),
                };
                let cm = ingest::ingest(&lake, &request, &child)?;
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
            Step::Pull(opts) => {
                let r = crate::pull::run(opts, &format!("pull {}", opts.what.as_str()), &child)?;
                if !quiet {
                    crate::pull::summary::print_summary(&r.manifest);
                }
                m.notes
                    .push(format!("pull {}: {}", opts.what.as_str(), r.run_id));
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
            Step::Bill(opts) => {
                let r = crate::bill::bill(&lake, opts, &child)?;
                if !quiet {
                    crate::bill::run::print_summary(&r);
                }
                m.notes.push(format!("bill: {}", r.manifest.run_id));
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
