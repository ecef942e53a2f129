//! `cspcost reserve`: price every staged reservation order, publish its charges as
//! `purchases-0.parquet` in the `costs/` partition of each charge's month, write the assets
//! table and the reservation quarantine (state, replaced every run), and a manifest whose
//! counts balance (`read = priced + unchanged + quarantined`).
//!
//! Every run reprices all staged orders, so the purchases files of partitions that no longer
//! have charges are deleted; `usage-*.parquet` files belong to `rate` and are never touched.

use crate::emit::costs::OrgMonthTotal;
use crate::emit::costs::{partition_dir, purchase_batch, write_if_changed, PurchaseCharge};
use crate::emit::manifest::{InputFile, Manifest, PartitionSummary};
use crate::emit::quarantine::{count_by_reason, write_quarantine};
use crate::error::Result;
use crate::model::order::ReservationOrder;
use crate::model::reason::QuarantineRecord;
use crate::model::reference::{ensure_no_problems, Reference, ALL_TABLES};
use crate::model::time::month_of;
use crate::pricing::reservation::{
    occurrences, price_order, Occurrence, PricedOrder, ReservationPrices,
};
use crate::progress::log;
use crate::reserve::assets::{assets_to_batch, expired_count, AssetRow, ASSETS_FILE};
use crate::staged::orders::{load_orders, ORDERS_FILE};
use crate::staged::prices::{load_prices, PRICES_FILE};
use crate::store::Lake;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// Lake-relative path of the reservation quarantine (state).
pub const QUARANTINE_FILE: &str = "quarantine/stage=reserve/part-0.parquet";

/// Prefix of the files `reserve` owns in a cost partition.
const PURCHASES_PREFIX: &str = "purchases-";

/// Options of `reserve`.
#[derive(Clone, Debug)]
pub struct ReserveOptions {
    /// Date (UTC, end of day) for asset status and installments billed so far.
    pub as_of: NaiveDate,
}

/// What `reserve` did.
#[derive(Debug)]
pub struct ReserveReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Charges per organization and month.
    pub totals: Vec<OrgMonthTotal>,
    /// The assets written, in order ID order.
    pub assets: Vec<AssetRow>,
    /// The date asset status and installments billed so far refer to.
    pub as_of: NaiveDate,
}

/// Lake inputs of the run (staged tables), with size and digest for the manifest.
fn staged_inputs(lake: &Lake) -> Result<Vec<InputFile>> {
    let mut files = vec![ORDERS_FILE.to_string(), PRICES_FILE.to_string()];
    files.extend(
        ALL_TABLES
            .iter()
            .map(|t| format!("staged/reference/{}.parquet", t.name)),
    );
    let mut out = Vec::new();
    for rel in files {
        if let Some((sha256, bytes)) = lake.digest(&rel)? {
            out.push(InputFile {
                path: rel,
                bytes,
                sha256,
                status: "read".into(),
            });
        }
    }
    Ok(out)
}

/// Run `reserve`.
pub fn reserve(lake: &Lake, opts: &ReserveOptions, run_id: &str) -> Result<ReserveReport> {
    let started = std::time::Instant::now();
    let mut m = Manifest::start(
        run_id,
        "reserve",
        serde_json::json!({ "as_of": opts.as_of.to_string() }),
    );
    let reference = Reference::load(lake)?;
    ensure_no_problems(reference.registry_problems())?;
    m.inputs = staged_inputs(lake)?;
    let orders = load_orders(lake)?;
    let price_rows = load_prices(lake)?;
    let prices = ReservationPrices::build(&price_rows);
    let outcome = price_all(&orders, &prices, &reference)?;
    let priced = &outcome.priced;
    let written = write_purchases(lake, &reference, priced, run_id, &mut m)?;
    delete_stale_purchases(lake, &written.live, &mut m)?;
    write_quarantine(lake, QUARANTINE_FILE, run_id, &outcome.quarantine)?;
    let assets = write_assets(lake, priced, opts.as_of, &mut m)?;

    let charges = written.charges;
    m.counts.insert("read".into(), orders.len() as u64);
    m.counts.insert("priced".into(), priced.len() as u64);
    m.counts.insert("unchanged".into(), outcome.unchanged);
    m.counts.insert("charges".into(), charges);
    m.quarantined = count_by_reason(&outcome.quarantine);
    m.check_balance("reserve", "read", &["priced", "unchanged"])?;
    let expired = expired_count(&assets);
    log(&format!(
        "reserve: {} orders read, {} priced, {} quarantined; {charges} charges in {} partitions; {} assets ({expired} expired as of {})",
        orders.len(),
        priced.len(),
        m.quarantined_total(),
        written.totals.len(),
        assets.len(),
        opts.as_of
    ));
    let manifest = m.finish(lake, started)?;
    Ok(ReserveReport {
        manifest,
        totals: written.totals,
        assets,
        as_of: opts.as_of,
    })
}

/// Every staged order priced: its first occurrence priced or quarantined, an identical
/// repeat unchanged, a conflicting one quarantined.
struct PricedOrders<'a> {
    priced: Vec<PricedOrder<'a>>,
    quarantine: Vec<QuarantineRecord>,
    unchanged: u64,
}

fn price_all<'a>(
    orders: &'a [ReservationOrder],
    prices: &ReservationPrices,
    reference: &'a Reference,
) -> Result<PricedOrders<'a>> {
    let mut out = PricedOrders {
        priced: Vec::new(),
        quarantine: Vec::new(),
        unchanged: 0,
    };
    for (order, occurrence) in orders.iter().zip(occurrences(orders)) {
        match occurrence {
            Occurrence::First => match price_order(order, prices, reference)? {
                Ok(p) => out.priced.push(p),
                Err(r) => out.quarantine.push(r.into_quarantine(order)),
            },
            Occurrence::Repeat => out.unchanged += 1,
            Occurrence::Conflict(r) => out.quarantine.push(r.into_quarantine(order)),
        }
    }
    Ok(out)
}

/// The purchases files written: per partition its total, the charges in all, and the
/// files that are live now.
struct WrittenPurchases {
    totals: Vec<OrgMonthTotal>,
    charges: u64,
    live: BTreeSet<String>,
}

/// One `purchases-0.parquet` per organization and month of a charge, rewritten only when
/// changed.
fn write_purchases(
    lake: &Lake,
    reference: &Reference,
    priced: &[PricedOrder],
    run_id: &str,
    m: &mut Manifest,
) -> Result<WrittenPurchases> {
    let mut by_partition: BTreeMap<(&str, String), Vec<PurchaseCharge>> = BTreeMap::new();
    for p in priced {
        for i in &p.installments {
            by_partition
                .entry((p.organization.id.as_str(), month_of(i.date)))
                .or_default()
                .push((p, i));
        }
    }
    let mut written = WrittenPurchases {
        totals: Vec::new(),
        charges: 0,
        live: BTreeSet::new(),
    };
    for ((org_id, month), mut rows) in by_partition {
        // Deterministic order inside a partition: by day, then order and installment.
        rows.sort_by(|a, b| {
            (a.1.date, a.0.order.get("order_id"), a.1.index).cmp(&(
                b.1.date,
                b.0.order.get("order_id"),
                b.1.index,
            ))
        });
        let org = rows[0].0.organization;
        let batch = purchase_batch(
            org,
            &month,
            &reference.partnerships,
            &reference.subscription_names,
            &rows,
            run_id,
        )?;
        let total = OrgMonthTotal::of_batch(org, &month, &batch)?;
        let rel = format!(
            "{}/{PURCHASES_PREFIX}0.parquet",
            partition_dir(org_id, &month)
        );
        let action = write_if_changed(lake, &rel, batch)?.as_str();
        written.charges += total.rows;
        m.partitions.push(PartitionSummary {
            path: rel.clone(),
            rows: total.rows,
            billed_cost: Some(total.billed_cost.to_string()),
            action: action.into(),
        });
        written.live.insert(rel);
        written.totals.push(total);
    }
    Ok(written)
}

/// Purchases of partitions whose charges all disappeared (order rejected, tenant removed).
fn delete_stale_purchases(lake: &Lake, live: &BTreeSet<String>, m: &mut Manifest) -> Result<()> {
    for org_dir in lake.list_dir("costs")? {
        for month_dir in lake.list_dir(&format!("costs/{org_dir}"))? {
            let dir = format!("costs/{org_dir}/{month_dir}");
            for f in lake.list_dir(&dir)? {
                let rel = format!("{dir}/{f}");
                if f.starts_with(PURCHASES_PREFIX)
                    && f.ends_with(".parquet")
                    && !live.contains(&rel)
                {
                    lake.remove_file(&rel)?;
                    m.partitions.push(PartitionSummary {
                        path: rel,
                        rows: 0,
                        billed_cost: None,
                        action: "deleted".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The assets table, in order ID order, rewritten only when changed.
fn write_assets(
    lake: &Lake,
    priced: &[PricedOrder],
    as_of: NaiveDate,
    m: &mut Manifest,
) -> Result<Vec<AssetRow>> {
    let mut assets: Vec<AssetRow> = priced
        .iter()
        .map(|p| AssetRow::from_priced(p, as_of))
        .collect();
    assets.sort_by(|a, b| a.get("order_id").cmp(b.get("order_id")));
    let outcome = write_if_changed(lake, ASSETS_FILE, assets_to_batch(&assets)?)?;
    m.partitions.push(PartitionSummary {
        path: ASSETS_FILE.into(),
        rows: assets.len() as u64,
        billed_cost: None,
        action: outcome.as_str().into(),
    });
    Ok(assets)
}
