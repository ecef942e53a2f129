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

/// `ingest <kind>`.
#[derive(Subcommand, Debug)]
pub enum IngestCommand {
    /// Partner Center utilization pages, NDJSON or CSV (.gz accepted).
    Usage(IngestArgs),
    /// Retail Prices pages, Partner Center rate cards, CSV price sheets.
    Prices(IngestArgs),
    /// partnerships.csv, organizations.csv, tenants.csv, transfers.csv, fx_rates*.csv.
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
    /// Unregister a tenant.
    Remove {
        /// Lake directory.
        #[arg(long)]
        lake: String,
        /// Customer tenant GUID.
        tenant: String,
    },
}

/// One ingest entry point: lake, paths, run ID -> manifest.
type IngestFn = fn(&Lake, Vec<PathBuf>, &str) -> Result<crate::emit::manifest::Manifest>;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    crate::progress::set_quiet(cli.quiet);
    if let Some(f) = crate::progress::LogFormat::parse(&cli.log_format) {
        crate::progress::set_log_format(f);
    }
    match cli.command {
        Command::Ingest(cmd) => {
            let (args, f): (IngestArgs, IngestFn) = match cmd {
                IngestCommand::Usage(a) => (a, |l, p, r| {
                    ingest::usage::ingest_usage(
                        l,
                        &ingest::usage::IngestUsageOptions { paths: p },
                        r,
                    )
                }),
                IngestCommand::Prices(a) => (a, |l, p, r| {
                    ingest::prices::ingest_prices(
                        l,
                        &ingest::prices::IngestPricesOptions { paths: p },
                        r,
                    )
                }),
                IngestCommand::Reference(a) => (a, |l, p, r| {
                    ingest::reference::ingest_reference(
                        l,
                        &ingest::reference::IngestReferenceOptions { paths: p },
                        r,
                    )
                }),
                IngestCommand::Reservations(a) => (a, |l, p, r| {
                    ingest::orders::ingest_orders(
                        l,
                        &ingest::orders::IngestOrdersOptions { paths: p },
                        r,
                    )
                }),
            };
            let lake = Lake::open(&args.lake)?;
            let m = f(&lake, args.paths, &new_run_id())?;
            if !cli.quiet {
                report::print_ingest_summary(&m);
            }
            report::log_finished(&m);
            Ok(())
        }
        Command::Tenants(cmd) => tenants(cmd),
        Command::Quarantine { lake } => {
            let lake = Lake::open(&lake)?;
            report::print_quarantine(&crate::emit::quarantine::lake_counts(&lake)?);
            Ok(())
        }
        Command::Rate(a) => {
            let opts = rate_options(&a)?;
            let lake = Lake::open(&a.lake)?;
            let report = crate::rate::run::rate(&lake, &opts, &new_run_id())?;
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
            let lake = Lake::open(&a.lake)?;
            let report = crate::reserve::run::reserve(&lake, &opts, &new_run_id())?;
            if !cli.quiet {
                report::print_reserve_summary(&report);
            }
            Ok(())
        }
        Command::Assets(a) => {
            let lake = Lake::open(&a.lake)?;
            let query = crate::reserve::assets::AssetQuery::from_flags(
                &lake,
                a.org.as_deref(),
                a.status.as_deref(),
            )?;
            match crate::reserve::assets::list_assets(&lake, &query)? {
                Some(rows) => report::print_assets(&rows),
                None => println!(
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
                crate::pipeline::plan::execute(&plan, cli.quiet).map(|_| ())
            }
        }
        Command::Reconcile(a) => {
            let opts = reconcile_options(&a)?;
            let lake = Lake::open(&a.lake)?;
            let report = crate::reconcile::run::reconcile(&lake, &opts, &new_run_id())?;
            if !cli.quiet {
                crate::reconcile::display::print_summary(&report);
            }
            Ok(())
        }
        Command::Runs { lake } => {
            let lake = Lake::open(&lake)?;
            report::print_runs(&crate::emit::manifest::list_manifests(&lake)?);
            Ok(())
        }
    }
}

fn tenants(cmd: TenantsCommand) -> Result<()> {
    use crate::model::reference::Reference;
    match cmd {
        TenantsCommand::Add {
            lake,
            tenant,
            org,
            partnership,
        } => {
            let t =
                ingest::reference::tenants_add(&Lake::open(&lake)?, &tenant, &org, &partnership)?;
            println!(
                "registered tenant {} to organization {} (partnership {})",
                t.customer_tenant_id, t.organization_id, t.partnership_id
            );
        }
        TenantsCommand::List { lake } => {
            report::print_tenants(&Reference::load(&Lake::open(&lake)?)?)
        }
        TenantsCommand::Show { lake, tenant } => {
            let r = Reference::load(&Lake::open(&lake)?)?;
            let g = crate::model::ids::normalize_guid(&tenant)
                .ok_or_else(|| crate::Error::config(format!("'{tenant}' is not a GUID")))?;
            let t = r
                .tenants
                .get(&g)
                .ok_or_else(|| crate::Error::config(format!("tenant {g} is not registered")))?;
            report::print_tenant(&r, t);
        }
        TenantsCommand::Remove { lake, tenant } => {
            let t = ingest::reference::tenants_remove(&Lake::open(&lake)?, &tenant)?;
            println!("removed tenant {} (was organization {}); its cost partitions are deleted at the next `rate`", t.customer_tenant_id, t.organization_id);
        }
    }
    Ok(())
}

/// Validate `rate` flags, reporting every problem at once.
pub fn rate_options(a: &RateArgs) -> Result<crate::rate::run::RateOptions> {
    use crate::model::tier::{TierPeriod, TierScope};
    let mut problems = Vec::new();
    let scope = TierScope::parse(&a.tier_scope).unwrap_or_else(|| {
        problems.push(format!(
            "--tier-scope '{}': expected subscription, customer or organization",
            a.tier_scope
        ));
        TierScope::Subscription
    });
    let period = TierPeriod::parse(&a.tier_period).unwrap_or_else(|| {
        problems.push(format!(
            "--tier-period '{}': expected calendar_month or billing_cycle:DAY with DAY 1..28",
            a.tier_period
        ));
        TierPeriod::CalendarMonth
    });
    let shard = a.shard.as_deref().map(|s| {
        crate::rate::run::Shard::parse(s).unwrap_or_else(|| {
            problems.push(format!("--shard '{s}': expected i/n with 0 <= i < n"));
            crate::rate::run::Shard { index: 0, count: 1 }
        })
    });
    if a.threads == Some(0) {
        problems.push("--threads must be at least 1".into());
    }
    if !problems.is_empty() {
        return Err(crate::Error::Config { problems });
    }
    Ok(crate::rate::run::RateOptions {
        months: a.months.clone(),
        scope,
        period,
        threads: a.threads,
        shard,
        dry_run: a.dry_run,
    })
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
