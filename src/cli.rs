//! Command line: clap derive definitions, their conversion into the stages' typed requests
//! (the ones pipeline tables build too, each with the one `validate` that owns its rules and
//! messages), and one small dispatch per command that runs the request under the writer
//! lease and prints its summary. Enum flags are [`Choice`]s of clap `ValueEnum`s. No
//! business logic lives here.

use crate::bill::BillRequest;
use crate::emit::manifest::new_run_id;
use crate::error::Result;
use crate::ingest::{self, IngestRequest, InputKind};
use crate::model::choice::{strict_parser, Choice};
use crate::model::tier::TierScope;
use crate::progress::LogFormat;
use crate::rate::run::RateRequest;
use crate::reconcile::run::{
    Grain, ReconcileRequest, DEFAULT_COST_TOLERANCE, DEFAULT_QUANTITY_TOLERANCE,
};
use crate::report;
use crate::reserve::assets::AssetStatus;
use crate::reserve::request::ReserveRequest;
use crate::store::Lake;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// cspcost: rate Azure CSP usage, bill organizations, reconcile Microsoft invoices.
#[derive(Parser, Debug)]
#[command(name = "cspcost", version, about, long_about = None)]
pub struct Cli {
    /// No progress bars or summaries; errors only.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Log lines on stderr: `text` (`cspcost: ...`) or `json` (one object per line with
    /// `ts`, `level`, `msg` and fields, for log collectors; no progress bar).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = strict_parser::<LogFormat>())]
    pub log_format: LogFormat,
    /// Writing commands: if another run holds the lake's writer lease, wait up to DURATION
    /// (`30s`, `5m`, `500ms`) for it instead of exiting 2 at once.
    #[arg(long, global = true, value_name = "DURATION")]
    pub wait: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read raw files into staged Parquet, quarantining bad records.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// The registry of customer tenants (several tenants per organization).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Counts of quarantined records by stage and reason code.
    Quarantine {
        /// Lake directory (or file:// URL).
        #[arg(long)]
        lake: String,
    },
    /// Rate staged usage into costs/ partitions (graduated tiers per month).
    Rate(RateArgs),
    /// Price staged reservation orders: purchase charges in costs/, assets, quarantine.
    Reserve(ReserveArgs),
    /// Table of reservation assets written by the last `reserve`.
    Assets(AssetsArgs),
    /// Run a configured pipeline (pipelines/<name>.toml).
    Run {
        /// The pipeline file.
        config: PathBuf,
        /// Print the plan (files to ingest, months to re-rate and why) and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Cut rated usage to any period and compare it with Microsoft's invoice.
    Reconcile(ReconcileArgs),
    /// Fetch raw inputs from Microsoft's APIs into DIR, byte for byte, in the layout
    /// `ingest` reads (credentials from the environment only).
    #[command(subcommand)]
    Pull(PullCommand),
    /// Statements of a month per organization and reseller (bills/), optionally issued.
    Bill(BillArgs),
    /// Past runs (manifests), newest first: start time, duration, command, counts.
    Runs {
        /// Lake directory (or file:// URL).
        #[arg(long)]
        lake: String,
    },
}

/// `rate` flags.
#[derive(clap::Args, Debug)]
pub struct RateArgs {
    /// Lake directory (or file:// URL).
    #[arg(long)]
    pub lake: String,
    /// Month to rate (YYYY-MM), repeatable; default: the months whose inputs changed.
    #[arg(long = "month")]
    pub months: Vec<String>,
    /// What accumulates on one tier ladder: subscription, customer or organization.
    #[arg(long, default_value = "subscription")]
    pub tier_scope: Choice<TierScope>,
    /// calendar_month or billing_cycle:DAY (1..28).
    #[arg(long, default_value = "calendar_month")]
    pub tier_period: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rate only organizations in shard i of n (`i/n`, 0-based).
    #[arg(long)]
    pub shard: Option<String>,
    /// Print which months would be rated and why; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `reserve` flags.
#[derive(clap::Args, Debug)]
pub struct ReserveArgs {
    /// Lake directory (or file:// URL).
    #[arg(long)]
    pub lake: String,
    /// Date (YYYY-MM-DD, UTC) for asset status and installments billed so far; default today.
    #[arg(long)]
    pub as_of: Option<String>,
}

/// `assets` flags.
#[derive(clap::Args, Debug)]
pub struct AssetsArgs {
    /// Lake directory (or file:// URL).
    #[arg(long)]
    pub lake: String,
    /// Only this organization ID.
    #[arg(long)]
    pub org: Option<String>,
    /// Only `active` or `expired` assets.
    #[arg(long)]
    pub status: Option<Choice<AssetStatus>>,
}

/// `reconcile` flags.
#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// Lake directory (or file:// URL).
    #[arg(long)]
    pub lake: String,
    /// First usage date of the period (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub from: String,
    /// Last usage date of the period (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub to: String,
    /// Directory for lines, summary and variance files (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Only this organization.
    #[arg(long)]
    pub org: Option<String>,
    /// Only this customer tenant (GUID).
    #[arg(long)]
    pub tenant: Option<String>,
    /// `period` (one line per organization, tenant, subscription, meter) or `daily`.
    #[arg(long, default_value = "period")]
    pub grain: Choice<Grain>,
    /// Microsoft's invoice reconciliation file (usage line items, CSV or API JSON).
    #[arg(long)]
    pub invoice: Option<PathBuf>,
    /// CSV `SubscriptionId,subscription_id` mapping billing-platform IDs to subscription GUIDs.
    #[arg(long)]
    pub subscription_map: Option<PathBuf>,
    /// Largest quantity difference that still counts as the same quantity.
    #[arg(long, default_value = DEFAULT_QUANTITY_TOLERANCE)]
    pub quantity_tolerance: String,
    /// Largest cost difference (invoice currency) that still counts as the same cost.
    #[arg(long, default_value = DEFAULT_COST_TOLERANCE)]
    pub cost_tolerance: String,
}

/// `bill` flags.
#[derive(clap::Args, Debug)]
pub struct BillArgs {
    /// Lake directory (or file:// URL).
    #[arg(long)]
    pub lake: String,
    /// Billing month (YYYY-MM).
    #[arg(long)]
    pub month: String,
    /// Only this organization.
    #[arg(long)]
    pub org: Option<String>,
    /// Issue the month's statements: they never change afterwards.
    #[arg(long)]
    pub issue: bool,
}

/// `ingest <kind>`.
#[derive(Subcommand, Debug)]
pub enum IngestCommand {
    /// Partner Center utilization pages, NDJSON or CSV (.gz accepted).
    Usage(IngestArgs),
    /// Retail Prices pages, Partner Center rate cards, CSV price sheets.
    Prices(IngestArgs),
    /// partnerships.csv, organizations.csv, tenants.csv, transfers.csv, fx_rates*.csv,
    /// resellers.csv, reservation_settings.csv, reservation_skus.csv, price_lists.csv.
    Reference(IngestArgs),
    /// Reservation orders (CSV or JSON).
    Reservations(IngestArgs),
}

/// Arguments shared by every ingest.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Lake directory (or file:// URL).
    #[arg(long)]
    pub lake: String,
    /// Files or directories (read recursively in sorted path order).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `pull <what>` (pull.md).
#[derive(Subcommand, Debug)]
pub enum PullCommand {
    /// Customers, subscriptions and Azure utilization of legacy Azure CSP subscriptions.
    Usage(PullUsageArgs),
    /// Every page of the Azure Retail Prices API.
    Prices(PullPricesArgs),
    /// The Partner Center Azure rate card.
    Ratecard(PullRatecardArgs),
    /// Microsoft's monthly FX file (App+User token).
    Fx(PullFxArgs),
    /// Invoices' Azure usage-based line items.
    Invoices(PullInvoicesArgs),
}

/// Flags of every `pull`.
#[derive(clap::Args, Debug)]
pub struct PullCommonArgs {
    /// Directory the pages are written under (the directory `ingest` then reads).
    #[arg(long)]
    pub out: PathBuf,
    /// Requests in flight at most.
    #[arg(long, default_value_t = crate::pull::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// List what would be requested; request and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `pull usage` flags.
#[derive(clap::Args, Debug)]
pub struct PullUsageArgs {
    #[command(flatten)]
    pub common: PullCommonArgs,
    /// Lake whose registered tenants are pulled.
    #[arg(long)]
    pub lake: Option<String>,
    /// First reporting date of a subscription never pulled (default 90 days ago).
    #[arg(long)]
    pub from: Option<String>,
    /// Last reporting time (default now minus 2 hours).
    #[arg(long)]
    pub to: Option<String>,
    /// Days pulled again before the end of a subscription's last complete window.
    #[arg(long)]
    pub overlap_days: Option<String>,
    /// Every Partner Center customer, registered in the lake or not.
    #[arg(long)]
    pub all_customers: bool,
}

/// `pull prices` flags.
#[derive(clap::Args, Debug)]
pub struct PullPricesArgs {
    #[command(flatten)]
    pub common: PullCommonArgs,
    /// Currency of the prices.
    #[arg(long)]
    pub currency: Option<String>,
    /// OData filter (default: consumption and reservation prices).
    #[arg(long)]
    pub filter: Option<String>,
}

/// `pull ratecard` flags.
#[derive(clap::Args, Debug)]
pub struct PullRatecardArgs {
    #[command(flatten)]
    pub common: PullCommonArgs,
    /// Currency of the rate card.
    #[arg(long)]
    pub currency: Option<String>,
    /// Region (country) of the rate card.
    #[arg(long)]
    pub region: Option<String>,
}

/// `pull fx` flags.
#[derive(clap::Args, Debug)]
pub struct PullFxArgs {
    #[command(flatten)]
    pub common: PullCommonArgs,
    /// Month (YYYY-MM), repeatable.
    #[arg(long = "month", required = true)]
    pub months: Vec<String>,
}

/// `pull invoices` flags.
#[derive(clap::Args, Debug)]
pub struct PullInvoicesArgs {
    #[command(flatten)]
    pub common: PullCommonArgs,
    /// Invoice ID, repeatable (default: every invoice with Azure line items).
    #[arg(long = "invoice")]
    pub invoices: Vec<String>,
    /// Only invoices dated on or after this date (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
}

/// `tenants <action>`.
#[derive(Subcommand, Debug)]
pub enum TenantsCommand {
    /// Register a tenant to an organization.
    Add {
        /// Lake directory.
        #[arg(long)]
        lake: String,
        /// Customer tenant GUID.
        #[arg(long)]
        tenant: String,
        /// Organization ID.
        #[arg(long)]
        org: String,
        /// Partnership ID.
        #[arg(long)]
        partnership: String,
    },
    /// List registered tenants.
    List {
        /// Lake directory.
        #[arg(long)]
        lake: String,
    },
    /// Show one tenant.
    Show {
        /// Lake directory.
        #[arg(long)]
        lake: String,
        /// Customer tenant GUID.
        tenant: String,
    },
    /// Partner Center customers with their registration status (organization or `-`).
    Discover {
        /// Lake directory.
        #[arg(long)]
        lake: String,
    },
    /// Unregister a tenant.
    Remove {
        /// Lake directory.
        #[arg(long)]
        lake: String,
        /// Customer tenant GUID.
        tenant: String,
    },
}

/// What every command's dispatch takes from the global flags.
#[derive(Clone, Copy, Debug)]
struct Globals {
    /// `--quiet`.
    quiet: bool,
    /// `--wait`.
    wait: Option<Duration>,
}

/// Run a parsed command line: set the global flags, then one dispatch per command.
pub fn run(cli: Cli) -> Result<()> {
    crate::progress::set_quiet(cli.quiet);
    crate::progress::set_log_format(cli.log_format);
    crate::store::scratch::check_env()?;
    let g = Globals {
        quiet: cli.quiet,
        wait: crate::writer::parse_wait(cli.wait.as_deref())?,
    };
    match cli.command {
        Command::Ingest(cmd) => ingest_files(cmd, g),
        Command::Tenants(cmd) => tenants(cmd, g.wait),
        Command::Quarantine { lake } => {
            let lake = Lake::open_existing(&lake)?;
            report::print_quarantine(&crate::emit::quarantine::lake_counts(&lake)?);
            Ok(())
        }
        Command::Rate(a) => rate(&a, g),
        Command::Reserve(a) => reserve(&a, g),
        Command::Assets(a) => assets(&a),
        Command::Run { config, dry_run } => run_pipeline(&config, dry_run, g),
        Command::Reconcile(a) => reconcile(&a, g),
        Command::Pull(cmd) => pull(cmd, g.quiet),
        Command::Bill(a) => bill(&a, g),
        Command::Runs { lake } => {
            let lake = Lake::open_existing(&lake)?;
            report::print_runs(&crate::emit::manifest::list_manifests(&lake)?);
            Ok(())
        }
    }
}

/// `work(run_id)` under the lake's writer lease, taken as `command` (one of `shards`).
fn under_lease<T>(
    lake: &Lake,
    command: &str,
    shards: Option<u32>,
    wait: Option<Duration>,
    work: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    let run_id = new_run_id();
    let lease = crate::writer::begin(lake, &run_id, command, shards, wait)?;
    let done = work(&run_id)?;
    lease.release()?;
    Ok(done)
}

/// `ingest <kind>` under the writer lease.
fn ingest_files(cmd: IngestCommand, g: Globals) -> Result<()> {
    let (lake, request) = cmd.into_request();
    let lake = Lake::open(&lake)?;
    let command = format!("ingest {}", request.kind.as_str());
    let m = under_lease(&lake, &command, None, g.wait, |run_id| {
        ingest::ingest(&lake, &request, run_id)
    })?;
    if !g.quiet {
        report::print_ingest_summary(&m);
    }
    report::log_finished(&m);
    Ok(())
}

/// `rate` under the writer lease (a dry run writes nothing, so it takes none).
fn rate(a: &RateArgs, g: Globals) -> Result<()> {
    let opts = rate_options(a)?;
    let lake = Lake::open_existing(&a.lake)?;
    let work = |run_id: &str| crate::rate::run::rate(&lake, &opts, run_id);
    let report = match &opts.shard {
        _ if opts.dry_run => work(&new_run_id())?,
        Some(s) => {
            let command = format!("rate --shard {}/{}", s.index, s.count);
            under_lease(&lake, &command, Some(s.count), g.wait, work)?
        }
        None => under_lease(&lake, "rate", None, g.wait, work)?,
    };
    if !g.quiet {
        report::print_rate_summary(&report);
    }
    if !opts.dry_run {
        report::log_finished(&report.manifest);
    }
    Ok(())
}

/// `reserve` under the writer lease.
fn reserve(a: &ReserveArgs, g: Globals) -> Result<()> {
    let opts = reserve_options(a)?;
    let lake = Lake::open_existing(&a.lake)?;
    let report = under_lease(&lake, "reserve", None, g.wait, |run_id| {
        crate::reserve::run::reserve(&lake, &opts, run_id)
    })?;
    if !g.quiet {
        report::print_reserve_summary(&report);
    }
    Ok(())
}

/// `assets`: reads only.
fn assets(a: &AssetsArgs) -> Result<()> {
    use crate::reserve::assets::{list_assets, AssetQuery};
    let lake = Lake::open_existing(&a.lake)?;
    let query = AssetQuery::from_flags(&lake, a.org.as_deref(), a.status.as_ref())?;
    match list_assets(&lake, &query)? {
        Some(rows) => report::print_assets(&rows),
        None => crate::outln!(
            "no reservation assets yet: run `cspcost reserve --lake {}` first",
            a.lake
        ),
    }
    Ok(())
}

/// `run`: print the plan, or execute it under one lease for all stages.
fn run_pipeline(config: &Path, dry_run: bool, g: Globals) -> Result<()> {
    let plan = crate::pipeline::plan::load(config)?;
    if dry_run {
        return crate::pipeline::plan::describe(&plan);
    }
    let lake = plan.open_lake()?;
    under_lease(&lake, "run", None, g.wait, |_| {
        crate::pipeline::plan::execute(&plan, g.quiet)
    })?;
    Ok(())
}

/// `reconcile` under the writer lease.
fn reconcile(a: &ReconcileArgs, g: Globals) -> Result<()> {
    let opts = reconcile_options(a)?;
    let lake = Lake::open_existing(&a.lake)?;
    let report = under_lease(&lake, "reconcile", None, g.wait, |run_id| {
        crate::reconcile::run::reconcile(&lake, &opts, run_id)
    })?;
    if !g.quiet {
        crate::reconcile::display::print_summary(&report);
    }
    Ok(())
}

/// `pull <what>` (writes a directory, not the lake: no lease).
fn pull(cmd: PullCommand, quiet: bool) -> Result<()> {
    let (what, request) = pull_request(cmd);
    let opts = checked(request.validate(what, &flag))?;
    let report = crate::pull::run(&opts, &format!("pull {}", what.as_str()), &new_run_id())?;
    if !quiet && !opts.dry_run {
        crate::pull::summary::print_summary(&report.manifest);
    }
    Ok(())
}

/// `bill` under the writer lease.
fn bill(a: &BillArgs, g: Globals) -> Result<()> {
    let opts = bill_options(a)?;
    let lake = Lake::open_existing(&a.lake)?;
    let report = under_lease(&lake, "bill", None, g.wait, |run_id| {
        crate::bill::bill(&lake, &opts, run_id)
    })?;
    if !g.quiet {
        crate::bill::run::print_summary(&report);
    }
    report::log_finished(&report.manifest);
    Ok(())
}

/// `tenants <action>`; `add` and `remove` write under the writer lease.
fn tenants(cmd: TenantsCommand, wait: Option<Duration>) -> Result<()> {
    use crate::model::reference::Reference;
    match cmd {
        TenantsCommand::Add {
            lake,
            tenant,
            org,
            partnership,
        } => {
            let lake = Lake::open(&lake)?;
            let t = under_lease(&lake, "tenants add", None, wait, |_| {
                ingest::reference::tenants_add(&lake, &tenant, &org, &partnership)
            })?;
            crate::outln!(
                "registered tenant {} to organization {} (partnership {})",
                t.customer_tenant_id,
                t.organization_id,
                t.partnership_id
            );
        }
        TenantsCommand::List { lake } => {
            report::print_tenants(&Reference::load(&Lake::open_existing(&lake)?)?)
        }
        TenantsCommand::Show { lake, tenant } => {
            let r = Reference::load(&Lake::open_existing(&lake)?)?;
            report::print_tenant(&r, r.registered_tenant(&tenant)?);
        }
        TenantsCommand::Discover { lake } => {
            crate::pull::summary::print_discovered(&crate::pull::discover(&lake)?)
        }
        TenantsCommand::Remove { lake, tenant } => {
            let lake = Lake::open_existing(&lake)?;
            let t = under_lease(&lake, "tenants remove", None, wait, |_| {
                ingest::reference::tenants_remove(&lake, &tenant)
            })?;
            crate::outln!("removed tenant {} (was organization {}); its cost partitions are deleted at the next `rate`", t.customer_tenant_id, t.organization_id);
        }
    }
    Ok(())
}

/// How a request's field is spelled on the command line: `tier_scope` is `--tier-scope`.
pub fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// A request's problems as the one configuration error (exit 2), every problem listed.
fn checked<T>(validated: std::result::Result<T, Vec<String>>) -> Result<T> {
    validated.map_err(|problems| crate::Error::Config { problems })
}

impl IngestCommand {
    /// The lake and the [`IngestRequest`] these flags name.
    pub fn into_request(self) -> (String, IngestRequest) {
        let (args, kind) = match self {
            IngestCommand::Usage(a) => (a, InputKind::Usage),
            IngestCommand::Prices(a) => (a, InputKind::Prices),
            IngestCommand::Reference(a) => (a, InputKind::Reference),
            IngestCommand::Reservations(a) => (a, InputKind::Reservations),
        };
        let request = IngestRequest {
            kind,
            paths: args.paths,
        };
        (args.lake, request)
    }
}

/// `pull` flags as a [`crate::pull::PullRequest`] (validated by the pull module).
pub fn pull_request(cmd: PullCommand) -> (crate::pull::PullWhat, crate::pull::PullRequest) {
    use crate::pull::{PullRequest, PullWhat};
    let base = |c: PullCommonArgs| PullRequest {
        out: c.out,
        concurrency: Some(c.concurrency),
        dry_run: c.dry_run,
        ..Default::default()
    };
    match cmd {
        PullCommand::Usage(a) => (
            PullWhat::Usage,
            PullRequest {
                lake: a.lake,
                from: a.from,
                to: a.to,
                overlap_days: a.overlap_days,
                all_customers: a.all_customers,
                ..base(a.common)
            },
        ),
        PullCommand::Prices(a) => (
            PullWhat::Prices,
            PullRequest {
                currency: a.currency,
                filter: a.filter,
                ..base(a.common)
            },
        ),
        PullCommand::Ratecard(a) => (
            PullWhat::Ratecard,
            PullRequest {
                currency: a.currency,
                region: a.region,
                ..base(a.common)
            },
        ),
        PullCommand::Fx(a) => (
            PullWhat::Fx,
            PullRequest {
                months: a.months,
                ..base(a.common)
            },
        ),
        PullCommand::Invoices(a) => (
            PullWhat::Invoices,
            PullRequest {
                invoices: a.invoices,
                since: a.since,
                ..base(a.common)
            },
        ),
    }
}

impl From<&RateArgs> for RateRequest {
    fn from(a: &RateArgs) -> RateRequest {
        RateRequest {
            months: a.months.clone(),
            tier_scope: Some(a.tier_scope.clone()),
            tier_period: Some(a.tier_period.clone()),
            threads: a.threads,
            shard: a.shard.clone(),
            dry_run: a.dry_run,
        }
    }
}

impl From<&ReserveArgs> for ReserveRequest {
    fn from(a: &ReserveArgs) -> ReserveRequest {
        ReserveRequest {
            as_of: a.as_of.clone(),
        }
    }
}

impl<'a> From<&'a ReconcileArgs> for ReconcileRequest<'a> {
    fn from(a: &'a ReconcileArgs) -> ReconcileRequest<'a> {
        ReconcileRequest {
            from: &a.from,
            to: &a.to,
            out: a.out.clone(),
            org: a.org.as_deref(),
            tenant: a.tenant.as_deref(),
            grain: a.grain.clone(),
            invoice: a.invoice.clone(),
            subscription_map: a.subscription_map.clone(),
            quantity_tolerance: &a.quantity_tolerance,
            cost_tolerance: &a.cost_tolerance,
        }
    }
}

impl<'a> From<&'a BillArgs> for BillRequest<'a> {
    fn from(a: &'a BillArgs) -> BillRequest<'a> {
        BillRequest {
            month: &a.month,
            org: a.org.as_deref(),
            issue: a.issue,
        }
    }
}

/// Validate `rate` flags, reporting every problem at once.
pub fn rate_options(a: &RateArgs) -> Result<crate::rate::run::RateOptions> {
    checked(RateRequest::from(a).validate(&|field, _| match field {
        "months" => "--month".to_string(),
        f => flag(f),
    }))
}

/// Validate `reserve` flags (`--as-of` defaults to today, UTC).
pub fn reserve_options(a: &ReserveArgs) -> Result<crate::reserve::run::ReserveOptions> {
    checked(ReserveRequest::from(a).validate(&flag))
}

/// Validate `reconcile` flags, reporting every problem at once.
pub fn reconcile_options(a: &ReconcileArgs) -> Result<crate::reconcile::run::ReconcileOptions> {
    checked(ReconcileRequest::from(a).validate(&flag))
}

/// Validate `bill` flags, reporting every problem at once.
pub fn bill_options(a: &BillArgs) -> Result<crate::bill::BillOptions> {
    checked(BillRequest::from(a).validate(&flag))
}
