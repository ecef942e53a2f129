//! Command line: clap derive definitions and their translation into library calls. No
//! business logic lives here.

use crate::emit::manifest::new_run_id;
use crate::error::Result;
use crate::ingest;
use crate::report;
use crate::store::Lake;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// cspcost: rate Azure CSP usage, bill organizations, reconcile Microsoft invoices.
#[derive(Parser, Debug)]
#[command(name = "cspcost", version, about, long_about = None)]
pub struct Cli {
    /// No progress bars or summaries; errors only.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Log lines on stderr: `text` (`cspcost: ...`) or `json` (one object per line with
    /// `ts`, `level`, `msg` and fields, for log collectors; no progress bar).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
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
    pub tier_scope: String,
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
    pub status: Option<String>,
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
    pub grain: String,
    /// Microsoft's invoice reconciliation file (usage line items, CSV or API JSON).
    #[arg(long)]
    pub invoice: Option<PathBuf>,
    /// CSV `SubscriptionId,subscription_id` mapping billing-platform IDs to subscription GUIDs.
    #[arg(long)]
    pub subscription_map: Option<PathBuf>,
    /// Largest quantity difference that still counts as the same quantity.
    #[arg(long, default_value = "0.000001")]
    pub quantity_tolerance: String,
    /// Largest cost difference (invoice currency) that still counts as the same cost.
    #[arg(long, default_value = "0.005")]
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

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    crate::progress::set_quiet(cli.quiet);
    if let Some(f) = crate::progress::LogFormat::parse(&cli.log_format) {
        crate::progress::set_log_format(f);
    }
    let wait = crate::writer::parse_wait(cli.wait.as_deref())?;
    match cli.command {
        Command::Ingest(cmd) => {
            let (args, kind) = match cmd {
                IngestCommand::Usage(a) => (a, ingest::InputKind::Usage),
                IngestCommand::Prices(a) => (a, ingest::InputKind::Prices),
                IngestCommand::Reference(a) => (a, ingest::InputKind::Reference),
                IngestCommand::Reservations(a) => (a, ingest::InputKind::Reservations),
            };
            let lake = Lake::open(&args.lake)?;
            let run_id = new_run_id();
            let command = format!("ingest {}", kind.as_str());
            let lease = crate::writer::begin(&lake, &run_id, &command, None, wait)?;
            let request = ingest::IngestRequest {
                kind,
                paths: args.paths,
            };
            let m = ingest::ingest(&lake, &request, &run_id)?;
            lease.release()?;
            if !cli.quiet {
                report::print_ingest_summary(&m);
            }
            report::log_finished(&m);
            Ok(())
        }
        Command::Tenants(cmd) => tenants(cmd, wait),
        Command::Quarantine { lake } => {
            let lake = Lake::open_existing(&lake)?;
            report::print_quarantine(&crate::emit::quarantine::lake_counts(&lake)?);
            Ok(())
        }
        Command::Rate(a) => {
            let opts = rate_options(&a)?;
            let lake = Lake::open_existing(&a.lake)?;
            let run_id = new_run_id();
            // A dry run writes nothing, so it needs no lease.
            let lease = if opts.dry_run {
                None
            } else {
                let command = match &opts.shard {
                    Some(s) => format!("rate --shard {}/{}", s.index, s.count),
                    None => "rate".to_string(),
                };
                let n = opts.shard.as_ref().map(|s| s.count);
                Some(crate::writer::begin(&lake, &run_id, &command, n, wait)?)
            };
            let report = crate::rate::run::rate(&lake, &opts, &run_id)?;
            if let Some(l) = lease {
                l.release()?;
            }
            if !cli.quiet {
                report::print_rate_summary(&report);
            }
            if !opts.dry_run {
                report::log_finished(&report.manifest);
            }
            Ok(())
        }
        Command::Reserve(a) => {
            let opts = reserve_options(&a)?;
            let lake = Lake::open_existing(&a.lake)?;
            let run_id = new_run_id();
            let lease = crate::writer::begin(&lake, &run_id, "reserve", None, wait)?;
            let report = crate::reserve::run::reserve(&lake, &opts, &run_id)?;
            lease.release()?;
            if !cli.quiet {
                report::print_reserve_summary(&report);
            }
            Ok(())
        }
        Command::Assets(a) => {
            let lake = Lake::open_existing(&a.lake)?;
            let query = crate::reserve::assets::AssetQuery::from_flags(
                &lake,
                a.org.as_deref(),
                a.status.as_deref(),
            )?;
            match crate::reserve::assets::list_assets(&lake, &query)? {
                Some(rows) => report::print_assets(&rows),
                None => crate::outln!(
                    "no reservation assets yet: run `cspcost reserve --lake {}` first",
                    a.lake
                ),
            }
            Ok(())
        }
        Command::Run { config, dry_run } => {
            let plan = crate::pipeline::plan::load(&config)?;
            if dry_run {
                crate::pipeline::plan::describe(&plan)
            } else {
                // One lease for all stages. A pipeline that ingests may create the lake;
                // one that only rates, reserves or reconciles needs an existing lake.
                let ingests = plan
                    .steps
                    .iter()
                    .any(|s| matches!(s, crate::pipeline::plan::Step::Ingest(..)));
                let lake = if ingests {
                    Lake::open(&plan.lake)?
                } else {
                    Lake::open_existing(&plan.lake)?
                };
                let lease = crate::writer::begin(&lake, &new_run_id(), "run", None, wait)?;
                crate::pipeline::plan::execute(&plan, cli.quiet)?;
                lease.release()
            }
        }
        Command::Reconcile(a) => {
            let opts = reconcile_options(&a)?;
            let lake = Lake::open_existing(&a.lake)?;
            let run_id = new_run_id();
            let lease = crate::writer::begin(&lake, &run_id, "reconcile", None, wait)?;
            let report = crate::reconcile::run::reconcile(&lake, &opts, &run_id)?;
            lease.release()?;
            if !cli.quiet {
                crate::reconcile::display::print_summary(&report);
            }
            Ok(())
        }
        Command::Pull(cmd) => {
            let (what, request) = pull_request(cmd);
            let opts = request
                .validate(what, &|field| format!("--{}", field.replace('_', "-")))
                .map_err(|problems| crate::Error::Config { problems })?;
            let report =
                crate::pull::run(&opts, &format!("pull {}", what.as_str()), &new_run_id())?;
            if !cli.quiet && !opts.dry_run {
                crate::pull::summary::print_summary(&report.manifest);
            }
            Ok(())
        }
        Command::Bill(a) => {
            let opts = bill_options(&a)?;
            let lake = Lake::open_existing(&a.lake)?;
            let run_id = new_run_id();
            let lease = crate::writer::begin(&lake, &run_id, "bill", None, wait)?;
            let report = crate::bill::bill(&lake, &opts, &run_id)?;
            lease.release()?;
            if !cli.quiet {
                crate::bill::run::print_summary(&report);
            }
            report::log_finished(&report.manifest);
            Ok(())
        }
        Command::Runs { lake } => {
            let lake = Lake::open_existing(&lake)?;
            report::print_runs(&crate::emit::manifest::list_manifests(&lake)?);
            Ok(())
        }
    }
}

fn tenants(cmd: TenantsCommand, wait: Option<std::time::Duration>) -> Result<()> {
    use crate::model::reference::Reference;
    match cmd {
        TenantsCommand::Add {
            lake,
            tenant,
            org,
            partnership,
        } => {
            let lake = Lake::open(&lake)?;
            let lease = crate::writer::begin(&lake, &new_run_id(), "tenants add", None, wait)?;
            let t = ingest::reference::tenants_add(&lake, &tenant, &org, &partnership)?;
            lease.release()?;
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
            let g = crate::model::ids::normalize_guid(&tenant)
                .ok_or_else(|| crate::Error::config(format!("'{tenant}' is not a GUID")))?;
            let t = r
                .tenants
                .get(&g)
                .ok_or_else(|| crate::Error::config(format!("tenant {g} is not registered")))?;
            report::print_tenant(&r, t);
        }
        TenantsCommand::Discover { lake } => {
            crate::pull::summary::print_discovered(&crate::pull::discover(&lake)?)
        }
        TenantsCommand::Remove { lake, tenant } => {
            let lake = Lake::open_existing(&lake)?;
            let lease = crate::writer::begin(&lake, &new_run_id(), "tenants remove", None, wait)?;
            let t = ingest::reference::tenants_remove(&lake, &tenant)?;
            lease.release()?;
            crate::outln!("removed tenant {} (was organization {}); its cost partitions are deleted at the next `rate`", t.customer_tenant_id, t.organization_id);
        }
    }
    Ok(())
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

/// Validate `rate` flags, reporting every problem at once.
pub fn rate_options(a: &RateArgs) -> Result<crate::rate::run::RateOptions> {
    let request = crate::rate::run::RateRequest {
        months: a.months.clone(),
        tier_scope: Some(a.tier_scope.clone()),
        tier_period: Some(a.tier_period.clone()),
        threads: a.threads,
        shard: a.shard.clone(),
        dry_run: a.dry_run,
    };
    request
        .validate(&|field, _| match field {
            "months" => "--month".to_string(),
            f => format!("--{}", f.replace('_', "-")),
        })
        .map_err(|problems| crate::Error::Config { problems })
}

/// Validate `reserve` flags (`--as-of` defaults to today, UTC).
pub fn reserve_options(a: &ReserveArgs) -> Result<crate::reserve::run::ReserveOptions> {
    let as_of = match a.as_of.as_deref() {
        None => chrono::Utc::now().date_naive(),
        Some(text) => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
            crate::Error::config(format!("--as-of '{text}': expected a date YYYY-MM-DD"))
        })?,
    };
    Ok(crate::reserve::run::ReserveOptions { as_of })
}

/// Validate `reconcile` flags, reporting every problem at once.
pub fn reconcile_options(a: &ReconcileArgs) -> Result<crate::reconcile::run::ReconcileOptions> {
    let request = crate::reconcile::run::ReconcileRequest {
        from: &a.from,
        to: &a.to,
        out: a.out.clone(),
        org: a.org.as_deref(),
        tenant: a.tenant.as_deref(),
        grain: &a.grain,
        invoice: a.invoice.clone(),
        subscription_map: a.subscription_map.clone(),
        quantity_tolerance: &a.quantity_tolerance,
        cost_tolerance: &a.cost_tolerance,
    };
    request
        .validate(&|field| format!("--{}", field.replace('_', "-")))
        .map_err(|problems| crate::Error::Config { problems })
}

/// Validate `bill` flags, reporting every problem at once.
pub fn bill_options(a: &BillArgs) -> Result<crate::bill::BillOptions> {
    crate::bill::BillRequest {
        month: &a.month,
        org: a.org.as_deref(),
        issue: a.issue,
    }
    .validate(&|field| format!("--{}", field.replace('_', "-")))
    .map_err(|problems| crate::Error::Config { problems })
}
