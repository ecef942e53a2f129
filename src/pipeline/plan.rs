//! From a validated config to a [`Plan`] (what), and its execution (how): stages run in the
//! configured order, each writing its own manifest; `run` writes one more manifest naming them.

use crate::emit::manifest::{new_run_id, Manifest};
use crate::error::{Error, Result};
use crate::ingest::source::{expand_paths, plan_files};
use crate::ingest::{self, IngestRequest};
use crate::pipeline::config::{expand_env, line_of, resolve_path, PipelineConfig};
use crate::progress::log;
use crate::rate::run::RateOptions;
use crate::reconcile::run::{
    Grain, ReconcileOptions, ReconcileRequest, DEFAULT_COST_TOLERANCE, DEFAULT_QUANTITY_TOLERANCE,
};
use crate::report;
use crate::reserve::request::ReserveRequest;
use crate::reserve::run::ReserveOptions;
use crate::staged::ledger::Ledger;
use crate::store::Lake;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use crate::ingest::InputKind;

/// One step of a plan.
#[derive(Debug)]
pub enum Step {
    /// `ingest <kind>` of these paths.
    Ingest(IngestRequest),
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

impl Plan {
    /// The plan's lake: one that ingests may create it; one that only rates, reserves,
    /// reconciles or bills needs an existing lake.
    pub fn open_lake(&self) -> Result<Lake> {
        if self.steps.iter().any(|s| matches!(s, Step::Ingest(..))) {
            Lake::open(&self.lake)
        } else {
            Lake::open_existing(&self.lake)
        }
    }
}

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
    let mut loader = Loader {
        name,
        source: &text,
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        cfg: &cfg,
        problems: Vec::new(),
        steps: Vec::new(),
    };
    let lake = loader.lake();
    let pull_out = loader.pull_out();
    loader.check_stage_list();
    for stage in cfg.stages.get_ref() {
        match stage.as_str() {
            "ingest" => loader.ingest(pull_out.as_deref()),
            "rate" => loader.rate(),
            "reserve" => loader.reserve(),
            "reconcile" => loader.reconcile(),
            "pull" => loader.pull(&lake, pull_out.as_deref()),
            "bill" => loader.bill(),
            other => {
                let at = loader.stages_line();
                let known = STAGES.join(", ");
                loader.problem(format!("{at}: unknown stage '{other}'; stages are {known}"));
            }
        }
    }
    if !loader.problems.is_empty() {
        return Err(Error::Config {
            problems: loader.problems,
        });
    }
    Ok(Plan {
        source: path.to_path_buf(),
        lake,
        steps: loader.steps,
    })
}

/// A pipeline file being turned into steps: one method per stage table, each adding its
/// steps and its problems (with the file's line) in the order of the file's `stages`.
struct Loader<'c> {
    /// The file as the user named it.
    name: String,
    /// Its text, for line numbers.
    source: &'c str,
    /// Its directory, which relative paths start from.
    base: PathBuf,
    /// The parsed file.
    cfg: &'c PipelineConfig,
    /// Every problem so far.
    problems: Vec<String>,
    /// Steps so far.
    steps: Vec<Step>,
}

impl Loader<'_> {
    /// `file:line` of a span.
    fn at(&self, span: &Range<usize>) -> String {
        format!("{}:{}", self.name, line_of(self.source, span.start))
    }

    /// `file:line` of the `stages` list, for problems of a stage as a whole.
    fn stages_line(&self) -> String {
        self.at(&self.cfg.stages.span())
    }

    /// Record one problem (it names its own line).
    fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// A stage listed in `stages` whose table is missing or empty.
    fn stage_without_table(&mut self, stage: &str, missing: &str) {
        let at = self.stages_line();
        self.problem(format!("{at}: stage {stage} is listed but {missing}"));
    }

    /// A string with `${VAR}` expanded; an unset variable is a problem at its line.
    fn expand(&mut self, v: &Spanned<String>) -> String {
        expand_env(v.get_ref()).unwrap_or_else(|e| {
            let at = self.at(&v.span());
            self.problem(format!("{at}: {e}"));
            String::new()
        })
    }

    /// An optional string, expanded.
    fn text(&mut self, v: &Option<Spanned<String>>) -> Option<String> {
        v.as_ref().map(|v| self.expand(v))
    }

    /// A path, expanded and relative to the file's directory.
    fn path(&mut self, v: &Spanned<String>) -> PathBuf {
        let text = self.expand(v);
        resolve_path(&self.base, &text)
    }

    /// The lake: a URL as is, a directory relative to the file.
    fn lake(&mut self) -> String {
        let lake = self.expand(&self.cfg.lake);
        if lake.contains("://") {
            lake
        } else {
            resolve_path(&self.base, &lake).display().to_string()
        }
    }

    /// The pull stage's directory, when the pipeline pulls: paths under it may not exist
    /// before the pull has run.
    fn pull_out(&mut self) -> Option<PathBuf> {
        let cfg = self.cfg;
        match (&cfg.pull, cfg.stages.get_ref().iter().any(|s| s == "pull")) {
            (Some(p), true) => Some(self.path(&p.out)),
            _ => None,
        }
    }

    /// The `stages` list: not empty, and pull before the ingest that reads it.
    fn check_stage_list(&mut self) {
        let stages = self.cfg.stages.get_ref();
        let at = self.stages_line();
        let position = |name: &str| stages.iter().position(|s| s == name);
        if position("ingest").is_some() && position("ingest") < position("pull") {
            self.problem(format!(
                "{at}: stage pull must come before ingest (ingest reads what pull writes)"
            ));
        }
        if stages.is_empty() {
            let known = STAGES.join(", ");
            self.problem(format!(
                "{at}: stages is empty; name at least one of {known}"
            ));
        }
    }

    /// `[ingest]`: one step per kind; each usage entry is one dump, ingested on its own, in
    /// order, so that a later dump restates an earlier one.
    fn ingest(&mut self, pull_out: Option<&Path>) {
        let cfg = self.cfg;
        let kinds = [
            (InputKind::Reference, &cfg.ingest.reference),
            (InputKind::Prices, &cfg.ingest.prices),
            (InputKind::Usage, &cfg.ingest.usage),
            (InputKind::Reservations, &cfg.ingest.reservations),
        ];
        let mut any = false;
        for (kind, entries) in kinds {
            let paths = self.ingest_paths(kind, entries, pull_out);
            if paths.is_empty() {
                continue;
            }
            any = true;
            if kind == InputKind::Usage {
                let each = paths.into_iter().map(|p| IngestRequest {
                    kind,
                    paths: vec![p],
                });
                self.steps.extend(each.map(Step::Ingest));
            } else {
                self.steps.push(Step::Ingest(IngestRequest { kind, paths }));
            }
        }
        if !any {
            self.stage_without_table("ingest", "[ingest] names no paths");
        }
    }

    /// The paths of one `ingest.<kind>` list; each must exist unless the pull writes it.
    fn ingest_paths(
        &mut self,
        kind: InputKind,
        entries: &[Spanned<String>],
        pull_out: Option<&Path>,
    ) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for e in entries {
            let p = self.path(e);
            let pulled = pull_out.is_some_and(|o| p.starts_with(o));
            if !p.exists() && !pulled {
                let at = self.at(&e.span());
                self.problem(format!(
                    "{at}: ingest.{} path {} does not exist",
                    kind.as_str(),
                    p.display()
                ));
            }
            paths.push(p);
        }
        paths
    }

    /// `[rate]`, validated by [`crate::rate::run::RateRequest::validate`]; each problem
    /// points at the line of its own field (or month).
    fn rate(&mut self) {
        let cfg = self.cfg;
        let r = &cfg.rate;
        let request = crate::rate::run::RateRequest {
            months: r.months.iter().map(|m| m.get_ref().clone()).collect(),
            tier_scope: r.tier_scope.as_ref().map(|s| s.get_ref().clone()),
            tier_period: r.tier_period.as_ref().map(|s| s.get_ref().clone()),
            threads: r.threads.as_ref().map(|t| *t.get_ref()),
            shard: r.shard.as_ref().map(|s| self.expand(s)),
            dry_run: false,
        };
        let line = |field: &str, item: Option<usize>| {
            let span = match (field, item) {
                ("tier_scope", _) => r.tier_scope.as_ref().map(|s| s.span()),
                ("tier_period", _) => r.tier_period.as_ref().map(|s| s.span()),
                ("months", Some(i)) => r.months.get(i).map(|m| m.span()),
                ("threads", _) => r.threads.as_ref().map(|t| t.span()),
                ("shard", _) => r.shard.as_ref().map(|s| s.span()),
                _ => None,
            };
            let at_line = self.at(&span.unwrap_or_else(|| cfg.stages.span()));
            format!("{at_line}: rate.{field}")
        };
        let validated = request.validate(&line);
        self.add(validated.map(Step::Rate));
    }

    /// `[reserve]`, validated by [`ReserveRequest::validate`] as `cspcost reserve` is.
    fn reserve(&mut self) {
        let cfg = self.cfg;
        let as_of = cfg.reserve.as_of.as_ref();
        let request = ReserveRequest {
            as_of: as_of.map(|d| d.get_ref().clone()),
        };
        let span = as_of.map_or_else(|| cfg.stages.span(), |d| d.span());
        let at = self.at(&span);
        let validated = request.validate(&|field| format!("{at}: reserve.{field}"));
        self.add(validated.map(Step::Reserve));
    }

    /// Every `[[reconcile]]` table, validated by [`ReconcileRequest::validate`] as
    /// `cspcost reconcile` is; the problems of a table point at its first line.
    fn reconcile(&mut self) {
        let cfg = self.cfg;
        if cfg.reconcile.is_empty() {
            self.stage_without_table("reconcile", "no [[reconcile]] table names a period");
        }
        for r in &cfg.reconcile {
            let out = self.path(&r.out);
            let (org, tenant) = (self.text(&r.org), self.text(&r.tenant));
            let invoice = self.text(&r.invoice).map(|t| resolve_path(&self.base, &t));
            let subscription_map = self
                .text(&r.subscription_map)
                .map(|t| resolve_path(&self.base, &t));
            let qt = self.text(&r.quantity_tolerance);
            let ct = self.text(&r.cost_tolerance);
            let request = ReconcileRequest {
                from: r.from.get_ref(),
                to: r.to.get_ref(),
                out,
                org: org.as_deref(),
                tenant: tenant.as_deref(),
                grain: if r.daily { Grain::Daily } else { Grain::Period }.into(),
                invoice,
                subscription_map,
                quantity_tolerance: qt.as_deref().unwrap_or(DEFAULT_QUANTITY_TOLERANCE),
                cost_tolerance: ct.as_deref().unwrap_or(DEFAULT_COST_TOLERANCE),
            };
            let line = self.at(&r.from.span());
            let validated = request.validate(&|field| format!("reconcile.{field}"));
            self.add_at(&line, validated.map(Step::Reconcile));
        }
    }

    /// `[pull]`: one pull per entry of `what`, each validated by
    /// [`crate::pull::PullRequest::validate`] as `cspcost pull <what>` is.
    fn pull(&mut self, lake: &str, pull_out: Option<&Path>) {
        let cfg = self.cfg;
        let Some(p) = &cfg.pull else {
            return self.stage_without_table("pull", "there is no [pull] table");
        };
        let line = self.at(&p.out.span());
        let request = crate::pull::PullRequest {
            out: pull_out.map(Path::to_path_buf).unwrap_or_default(),
            lake: (!p.all_customers).then(|| lake.to_string()),
            from: self.text(&p.from),
            to: self.text(&p.to),
            overlap_days: p.overlap_days.as_ref().map(|d| d.get_ref().to_string()),
            all_customers: p.all_customers,
            currency: self.text(&p.currency),
            filter: self.text(&p.filter),
            region: self.text(&p.region),
            months: p.months.clone(),
            invoices: p.invoices.clone(),
            since: self.text(&p.since),
            concurrency: p.concurrency,
            dry_run: false,
        };
        let at_what = self.at(&p.what.span());
        if p.what.get_ref().is_empty() {
            self.problem(format!("{at_what}: pull.what is empty"));
        }
        for w in p.what.get_ref() {
            match crate::pull::PullWhat::parse(w) {
                None => self.problem(format!(
                    "{at_what}: pull.what '{w}': expected usage, prices, ratecard, fx or invoices"
                )),
                Some(what) => {
                    let validated = request.validate(what, &|f| format!("pull.{f}"));
                    self.add_at(&line, validated.map(Step::Pull));
                }
            }
        }
    }

    /// `[bill]`, validated by [`crate::bill::BillRequest::validate`] as `cspcost bill` is.
    fn bill(&mut self) {
        let cfg = self.cfg;
        let Some(b) = &cfg.bill else {
            return self.stage_without_table("bill", "there is no [bill] table naming the month");
        };
        let month = self.expand(&b.month);
        let org = self.text(&b.org);
        let request = crate::bill::BillRequest {
            month: &month,
            org: org.as_deref(),
            issue: b.issue,
        };
        let line = self.at(&b.month.span());
        let validated = request.validate(&|field| format!("bill.{field}"));
        self.add_at(&line, validated.map(Step::Bill));
    }

    /// A validated step, or its problems (which name their own lines).
    fn add(&mut self, validated: std::result::Result<Step, Vec<String>>) {
        match validated {
            Ok(step) => self.steps.push(step),
            Err(p) => self.problems.extend(p),
        }
    }

    /// A validated step, or its problems, each after `line`.
    fn add_at(&mut self, line: &str, validated: std::result::Result<Step, Vec<String>>) {
        self.add(validated.map_err(|p| p.into_iter().map(|p| format!("{line}: {p}")).collect()));
    }
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
        let n = i + 1;
        match step {
            Step::Pull(opts) => describe_pull(n, opts)?,
            Step::Ingest(request) => describe_ingest(n, request, lake.as_ref())?,
            Step::Rate(opts) => describe_rate(n, opts, lake.as_ref())?,
            Step::Reserve(o) => crate::outln!("  {n}. reserve as of {}", o.as_of),
            Step::Reconcile(o) => crate::outln!(
                "  {n}. reconcile {}{} into {}",
                o.period,
                o.invoice
                    .as_ref()
                    .map(|p| format!(" against {}", p.display()))
                    .unwrap_or_default(),
                o.out.display()
            ),
            Step::Bill(o) => crate::outln!(
                "  {n}. bill {}{}{}",
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

/// Step `n`, a pull: what it would request.
fn describe_pull(n: usize, opts: &crate::pull::PullOptions) -> Result<()> {
    let (what, out) = (opts.what.as_str(), opts.out.display());
    crate::outln!("  {n}. pull {what} into {out}:");
    let dry_run = crate::pull::PullOptions {
        dry_run: true,
        ..opts.clone()
    };
    crate::pull::run(&dry_run, "pull", &new_run_id())?;
    Ok(())
}

/// Step `n`, an ingest: how many of its files are new to the lake's ledger.
fn describe_ingest(n: usize, request: &IngestRequest, lake: Option<&Lake>) -> Result<()> {
    let kind = request.kind.as_str();
    // A directory the pull stage has not written yet has nothing to list.
    let paths: Vec<PathBuf> = request
        .paths
        .iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    let files = expand_paths(&paths)?;
    let ledger = match lake {
        Some(l) => Ledger::load(l, kind)?,
        None => Ledger::default(),
    };
    let (to_read, _) = plan_files(&files, &ledger)?;
    let bytes: u64 = to_read.iter().map(|f| f.bytes).sum();
    crate::outln!(
        "  {n}. ingest {kind}: {} files, {} new ({bytes} bytes), {} already ingested",
        files.len(),
        to_read.len(),
        files.len() - to_read.len()
    );
    Ok(())
}

/// Step `n`, a rate: the months whose inputs have changed now (the rate plan of a dry run).
fn describe_rate(n: usize, opts: &RateOptions, lake: Option<&Lake>) -> Result<()> {
    let months = match lake {
        Some(l) => {
            let dry_run = RateOptions {
                dry_run: true,
                ..opts.clone()
            };
            crate::rate::run::rate(l, &dry_run, &new_run_id())?
                .plan
                .months
        }
        None => Vec::new(),
    };
    crate::outln!(
        "  {n}. rate (tier scope {}, tier period {}):",
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
            Step::Ingest(request) => {
                let cm = ingest::ingest(&lake, request, &child)?;
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
