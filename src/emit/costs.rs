//! Cost partitions (outputs.md `costs/`): FOCUS 1.2 columns plus `x_` lineage, one
//! `usage-0.parquet` (rated usage, `rate`) and one `purchases-0.parquet` (reservation
//! charges, `reserve`) per organization and month, each replaced atomically by its stage. A
//! file whose content is unchanged is left untouched, so a rerun with the same inputs is
//! byte-identical (its `x_RunId` stays the run that first wrote that content).

use crate::emit::focus::{self, focus_unit, FocusUnit};
use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::reference::Organization;
use crate::model::schema::*;
use crate::model::tier::TierScope;
use crate::model::time::{
    date_to_days, days_to_date, month_of, next_month_start, parse_month, start_of_day_micros,
};
use crate::pricing::rated::RatedRow;
use crate::pricing::reservation::{Installment, PriceSource, PricedOrder, PRICING_UNIT};
use crate::store::Lake;
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;

/// `PublisherName`, `ServiceProviderName`, `HostProviderName` (outputs.md: Azure is not
/// white-labelled; the partner is `ProviderName` and `InvoiceIssuerName`).
pub const MICROSOFT: &str = "Microsoft";
/// `BillingAccountType`: the billing account is the partner's customer (organization).
pub const BILLING_ACCOUNT_TYPE: &str = "Customer";
/// `SubAccountType`.
pub const SUB_ACCOUNT_TYPE: &str = "Subscription";
/// `PricingCategory`: pay-as-you-go list prices (no negotiated or commitment pricing yet).
pub const PRICING_CATEGORY: &str = "Standard";
/// `PricingCurrency`: Microsoft prices Azure plan meters and reservations in USD.
pub const PRICING_CURRENCY: &str = "USD";
/// `ResourceType` of a reservation (its `ResourceId` is the reservation's qualified ID).
pub const RESERVATION_RESOURCE_TYPE: &str = "microsoft.capacity/reservationorders/reservations";

/// Metadata key holding the digest of a partition's content (all columns but `x_RunId`).
pub const CONTENT_KEY: &str = "cspcost.content_sha256";

/// Column names of the cost partitions.
pub mod col {
    /// Organization ID.
    pub const BILLING_ACCOUNT_ID: &str = "BillingAccountId";
    /// Billed cost.
    pub const BILLED_COST: &str = "BilledCost";
    /// USD list cost.
    pub const LIST_COST_USD: &str = "x_ListCostUsd";
    /// List cost.
    pub const LIST_COST: &str = "ListCost";
    /// Usage date.
    pub const USAGE_DATE: &str = "x_UsageDate";
    /// Run that wrote the partition.
    pub const RUN_ID: &str = "x_RunId";
    /// Organization's billing currency.
    pub const BILLING_CURRENCY: &str = "BillingCurrency";
    /// `Usage` or `Purchase`.
    pub const CHARGE_CATEGORY: &str = "ChargeCategory";
    /// Meter name.
    pub const CHARGE_DESCRIPTION: &str = "ChargeDescription";
    /// Usage start (UTC).
    pub const CHARGE_PERIOD_START: &str = "ChargePeriodStart";
    /// Usage end (UTC).
    pub const CHARGE_PERIOD_END: &str = "ChargePeriodEnd";
    /// Quantity in price units.
    pub const PRICING_QUANTITY: &str = "PricingQuantity";
    /// Price unit of measure.
    pub const PRICING_UNIT: &str = "PricingUnit";
    /// Quantity as reported.
    pub const CONSUMED_QUANTITY: &str = "ConsumedQuantity";
    /// Unit as reported.
    pub const CONSUMED_UNIT: &str = "ConsumedUnit";
    /// Subscription ID.
    pub const SUB_ACCOUNT_ID: &str = "SubAccountId";
    /// Customer tenant GUID.
    pub const CUSTOMER_TENANT_ID: &str = "x_CustomerTenantId";
    /// Meter GUID.
    pub const METER_ID: &str = "x_MeterId";
    /// Tier scope used (`subscription`, `customer`, `organization`).
    pub const TIER_SCOPE: &str = "x_TierScope";
    /// Effective start of the price version that rated the row.
    pub const PRICE_EFFECTIVE_START: &str = "x_PriceEffectiveStart";
    /// What the partner invoices the reseller for the row (billing.md); null when direct.
    pub const RESELLER_COST: &str = "x_ResellerCost";
    /// `Usage-Based`, `One-Time` or `Recurring`.
    pub const CHARGE_FREQUENCY: &str = "ChargeFrequency";
    /// `Correction` for usage restated after its month was first published.
    pub const CHARGE_CLASS: &str = "ChargeClass";
    /// Service name.
    pub const SERVICE_NAME: &str = "ServiceName";
    /// Who issues the invoice.
    pub const INVOICE_ISSUER_NAME: &str = "InvoiceIssuerName";
    /// Partnership ID.
    pub const PARTNERSHIP_ID: &str = "x_PartnershipId";
    /// FX rate applied.
    pub const FX_USD_PER_UNIT: &str = "x_FxUsdPerUnit";
    /// Month of the FX rate applied.
    pub const FX_RATE_MONTH: &str = "x_FxRateMonth";
    /// Reservation order ID.
    pub const ORDER_ID: &str = "x_OrderId";
    /// 0-based installment index.
    pub const INSTALLMENT_INDEX: &str = "x_InstallmentIndex";
    /// Installment count.
    pub const INSTALLMENT_COUNT: &str = "x_InstallmentCount";
}

/// Percent-encode an ID for a Hive partition directory name.
pub fn partition_value(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Directory of a cost partition.
pub fn partition_dir(org: &str, month: &str) -> String {
    format!("costs/org={}/month={month}", partition_value(org))
}

/// Every batch of the cost files of one partition directory (`usage-*`, `purchases-*`, as
/// readers glob `*.parquet`), projected to `columns`: files in path order, batches in file
/// order, each with its lake-relative file. A missing directory has none.
pub fn for_each_cost_batch(
    lake: &Lake,
    dir: &str,
    columns: &[&str],
    mut f: impl FnMut(&str, &RecordBatch) -> Result<()>,
) -> Result<()> {
    for name in lake.list_dir(dir)? {
        // A leading dot is a write in progress.
        if name.starts_with('.') || !name.ends_with(".parquet") {
            continue;
        }
        let rel = format!("{dir}/{name}");
        for batch in lake.get_parquet_columns(&rel, columns)?.unwrap_or_default() {
            f(&rel, &batch)?;
        }
    }
    Ok(())
}

fn resource_name(uri: &str) -> Option<&str> {
    uri.rsplit('/').find(|s| !s.is_empty())
}

/// Everything about a partition that is not per row.
pub struct PartitionHeader<'a> {
    /// Organization.
    pub org: &'a Organization,
    /// `YYYY-MM`.
    pub month: &'a str,
    /// Scope used.
    pub scope: TierScope,
    /// Partnership names by ID.
    pub partnerships: &'a std::collections::BTreeMap<String, String>,
    /// Records staged after this run ID restate an already published month.
    pub first_published_run: Option<&'a str>,
    /// Subscription friendly names by ID (`SubAccountName`; the ID when unknown).
    pub subscription_names: &'a std::collections::BTreeMap<String, String>,
}

impl PartitionHeader<'_> {
    /// `SubAccountName` of a subscription: its friendly name when known, else its ID.
    pub fn subscription_name<'s>(&'s self, id: &'s str) -> &'s str {
        self.subscription_names.get(id).map_or(id, |s| s.as_str())
    }
}

/// `BillingPeriodStart` and `BillingPeriodEnd` of a `YYYY-MM` month: its first instant and
/// the first instant of the next month (end exclusive), UTC microseconds.
fn billing_period(month: &str) -> (i64, i64) {
    let start = parse_month(month).unwrap_or_default();
    (
        start_of_day_micros(start),
        start_of_day_micros(next_month_start(start)),
    )
}

/// The first five columns of every cost file: billing account (ID, name, currency) and
/// billing period of `month`, repeated over `n` rows.
fn billing_account_columns(org: &Organization, month: &str, n: usize) -> Vec<ArrayRef> {
    let (start, end) = billing_period(month);
    let konst = |v: &str| a_str(std::iter::repeat_n(Some(v), n));
    vec![
        konst(&org.id),
        konst(&org.name),
        konst(&org.billing_currency),
        a_ts(std::iter::repeat_n(Some(start), n)),
        a_ts(std::iter::repeat_n(Some(end), n)),
    ]
}

fn dec(v: Dec10) -> Option<i128> {
    Some(v.0)
}

/// The one schema of every file under `costs/` (usage and purchases alike), so that readers
/// can glob `costs/**/*.parquet` without reconciling schemas.
pub fn cost_schema() -> SchemaRef {
    static S: std::sync::OnceLock<SchemaRef> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f_str("BillingAccountId", false),
            f_str("BillingAccountName", false),
            f_str("BillingCurrency", false),
            f_ts("BillingPeriodStart", false),
            f_ts("BillingPeriodEnd", false),
            f_ts("ChargePeriodStart", true),
            f_ts("ChargePeriodEnd", true),
            f_str("ChargeCategory", false),
            f_str("ChargeClass", true),
            f_str("ChargeDescription", true),
            f_str("ChargeFrequency", false),
            f_dec("ListCost", false),
            f_dec("ContractedCost", false),
            f_dec("EffectiveCost", false),
            f_dec("BilledCost", false),
            f_dec("ListUnitPrice", true),
            f_dec("PricingQuantity", true),
            f_str("PricingUnit", true),
            f_dec("ConsumedQuantity", true),
            f_str("ConsumedUnit", true),
            f_str("InvoiceIssuerName", true),
            f_str("ProviderName", false),
            f_str("PublisherName", false),
            f_str("HostProviderName", false),
            f_str("ServiceProviderName", true),
            f_str("ServiceName", true),
            f_str("ServiceCategory", true),
            f_str("ServiceSubcategory", true),
            f_str("RegionId", true),
            f_str("RegionName", true),
            f_str("ResourceId", true),
            f_str("ResourceName", true),
            f_str("SubAccountId", true),
            f_str("SkuId", true),
            f_str("SkuMeter", true),
            f_str("Tags", true),
            // FOCUS conformance columns (outputs.md "FOCUS conformance").
            f_str("BillingAccountType", false),
            f_str("SubAccountName", true),
            f_str("SubAccountType", true),
            f_str("InvoiceId", false),
            f_str("PricingCategory", true),
            f_str("PricingCurrency", false),
            f_dec("ContractedUnitPrice", true),
            f_dec("PricingCurrencyListUnitPrice", true),
            f_dec("PricingCurrencyContractedUnitPrice", true),
            f_dec("PricingCurrencyEffectiveCost", false),
            f_str("SkuPriceId", true),
            f_str("ResourceType", true),
            f_str("CommitmentDiscountId", true),
            f_str("CommitmentDiscountType", true),
            f_str("CommitmentDiscountCategory", true),
            f_str("CommitmentDiscountName", true),
            f_dec("CommitmentDiscountQuantity", true),
            f_str("CommitmentDiscountUnit", true),
            f_str("CommitmentDiscountStatus", true),
            f_str("x_CustomerTenantId", true),
            f_str("x_OrganizationId", false),
            f_str("x_PartnershipId", true),
            f_str("x_BillingMonth", false),
            f_date("x_UsageDate", false),
            f_str("x_MeterId", true),
            f_dec("x_ListCostUsd", true),
            f_dec("x_FxUsdPerUnit", true),
            f_str("x_FxRateMonth", true),
            f_str("x_TierScope", true),
            f_dec("x_CumulativeQuantityBefore", true),
            f_dec("x_CumulativeQuantityAfter", true),
            f_dec("x_TierFirstMinimum", true),
            f_dec("x_TierLastMinimum", true),
            f_date("x_PriceEffectiveStart", true),
            f_str("x_SourceFile", false),
            f_i64("x_SourceRow", false),
            f_str("x_OrderId", true),
            f_str("x_ReservationId", true),
            f_i64("x_InstallmentIndex", true),
            f_i64("x_InstallmentCount", true),
            f_str("x_PricingUnitDescription", true),
            f_dec("x_PricingBlockSize", true),
            f_str(col::RUN_ID, false),
            f_dec(col::RESELLER_COST, true),
        ]))
    })
    .clone()
}

/// A string column borrowed from the rows (no allocation per value).
fn str_col<'r, T>(rows: &'r [T], f: impl Fn(&'r T) -> Option<&'r str>) -> ArrayRef {
    a_str(rows.iter().map(f))
}

/// Columns of a usage partition, in [`cost_schema`] order.
pub fn usage_batch(h: &PartitionHeader, rows: &[RatedRow], run_id: &str) -> Result<RecordBatch> {
    let n = rows.len();
    let org = h.org;
    let partnership_name = |r: &RatedRow| -> String {
        h.partnerships
            .get(&r.mapping.partnership_id)
            .cloned()
            .unwrap_or_else(|| r.mapping.partnership_id.clone())
    };
    // A partition has one or two partnerships: resolve each name once, not once per row.
    let mut names: Vec<(&str, String)> = Vec::new();
    for r in rows {
        if !names.iter().any(|(id, _)| *id == r.mapping.partnership_id) {
            names.push((r.mapping.partnership_id.as_str(), partnership_name(r)));
        }
    }
    let name_of = |r: &RatedRow| {
        names
            .iter()
            .find(|(id, _)| *id == r.mapping.partnership_id)
            .map(|(_, n)| n.as_str())
    };
    // A partition holds a handful of unit strings: map each once.
    let mut units: HashMap<&str, FocusUnit> = HashMap::new();
    for r in rows {
        for u in [Some(r.version.unit_text.as_str()), r.rec.unit.as_deref()]
            .into_iter()
            .flatten()
        {
            units.entry(u).or_insert_with(|| focus_unit(u));
        }
    }
    let unit_of = |u: &str| units.get(u).map(|f| f.unit.as_str());
    let resource_types: Vec<Option<String>> = rows
        .iter()
        .map(|r| focus::resource_type(&r.rec.resource_uri))
        .collect();
    let services: Vec<focus::Service> = rows
        .iter()
        .zip(&resource_types)
        .map(|(r, rt)| {
            focus::usage_service(
                rt.as_deref(),
                r.version
                    .meta
                    .service_name
                    .as_deref()
                    .or(r.rec.meter_category.as_deref()),
            )
        })
        .collect();
    let contracted_unit_prices: Vec<Option<i128>> = rows
        .iter()
        .map(|r| {
            crate::pricing::markup::apply_percent(
                r.list_unit_price,
                r.org.consumption_adjustment_percent,
            )
            .map(dec)
        })
        .collect::<Result<_>>()?;
    let invoice = focus::invoice_id(&org.id, h.month);
    let sku_price_ids: Vec<String> = rows
        .iter()
        .map(|r| {
            focus::usage_sku_price_id(
                &r.rec.meter_id,
                r.tier_last_minimum,
                &days_to_date(r.version.effective_start).to_string(),
            )
        })
        .collect();
    let konst = |v: &str| a_str(std::iter::repeat_n(Some(v), n));
    let nulls = || a_str(std::iter::repeat_n(None::<&str>, n));
    let decs = |f: &dyn Fn(&RatedRow) -> Dec10| a_dec(rows.iter().map(|r| dec(f(r))));
    let non_empty = |s: &str| -> bool { !s.is_empty() };
    let mut arrays = billing_account_columns(org, h.month, n);
    arrays.extend([
        a_ts(rows.iter().map(|r| Some(r.rec.usage_start))),
        a_ts(rows.iter().map(|r| Some(r.rec.usage_end))),
        konst("Usage"),
        str_col(rows, |r| match h.first_published_run {
            Some(first) if r.rec.ingest_run_id.as_str() > first => Some("Correction"),
            _ => None,
        }),
        str_col(rows, |r| {
            r.version
                .meta
                .meter_name
                .as_deref()
                .or(r.rec.meter_name.as_deref())
        }),
        konst("Usage-Based"),
        decs(&|r| r.list_cost),
        decs(&|r| r.billed_cost),
        decs(&|r| r.billed_cost),
        decs(&|r| r.billed_cost),
        decs(&|r| r.list_unit_price),
        decs(&|r| r.pricing_quantity),
        a_str(rows.iter().map(|r| unit_of(&r.version.unit_text))),
        decs(&|r| r.rec.quantity),
        a_str(
            rows.iter()
                .map(|r| unit_of(r.rec.unit.as_deref().unwrap_or(&r.version.unit_text))),
        ),
        // billing.md: a reseller invoices its organizations. It also sells to them, so it is
        // their ProviderName too: FOCUS reads a provider other than the issuer as a
        // marketplace charge whose BilledCost must be 0 (BilledCost-C-005-C).
        a_str(
            rows.iter()
                .map(|r| r.reseller.map(|x| x.name.as_str()).or_else(|| name_of(r))),
        ),
        a_str(
            rows.iter()
                .map(|r| r.reseller.map(|x| x.name.as_str()).or_else(|| name_of(r))),
        ),
        konst(MICROSOFT),
        konst(MICROSOFT),
        konst(MICROSOFT),
        a_str(services.iter().map(|s| Some(s.name))),
        a_str(services.iter().map(|s| Some(s.category))),
        a_str(services.iter().map(|s| Some(s.subcategory))),
        str_col(rows, |r| {
            Some(r.version.meta.arm_region_name.as_str())
                .filter(|s| non_empty(s))
                .or(r.rec.location.as_deref())
        }),
        str_col(rows, |r| {
            r.version
                .meta
                .location
                .as_deref()
                .or(r.rec.meter_region.as_deref())
        }),
        str_col(rows, |r| {
            Some(r.rec.resource_uri.as_str()).filter(|s| non_empty(s))
        }),
        str_col(rows, |r| resource_name(&r.rec.resource_uri)),
        str_col(rows, |r| Some(r.rec.subscription_id.as_str())),
        str_col(rows, |r| {
            Some(r.version.meta.sku_id.as_str()).filter(|s| non_empty(s))
        }),
        str_col(rows, |r| r.version.meta.meter_name.as_deref()),
        str_col(rows, |r| Some(r.rec.tags.as_str())),
        konst(BILLING_ACCOUNT_TYPE),
        str_col(rows, |r| Some(h.subscription_name(&r.rec.subscription_id))),
        konst(SUB_ACCOUNT_TYPE),
        konst(&invoice),
        konst(PRICING_CATEGORY),
        konst(PRICING_CURRENCY),
        a_dec(contracted_unit_prices),
        decs(&|r| r.list_unit_price_usd),
        decs(&|r| r.list_unit_price_usd),
        decs(&|r| r.list_cost_usd),
        a_str(sku_price_ids.iter().map(|s| Some(s.as_str()))),
        a_str(resource_types.iter().map(|s| s.as_deref())),
        nulls(),
        nulls(),
        nulls(),
        nulls(),
        a_dec(std::iter::repeat_n(None, n)),
        nulls(),
        nulls(),
        str_col(rows, |r| Some(r.rec.customer_tenant_id.as_str())),
        konst(&org.id),
        str_col(rows, |r| Some(r.mapping.partnership_id.as_str())),
        konst(h.month),
        a_date(rows.iter().map(|r| Some(r.rec.usage_date))),
        str_col(rows, |r| Some(r.rec.meter_id.as_str())),
        decs(&|r| r.list_cost_usd),
        decs(&|r| r.fx_usd_per_unit),
        konst(h.month),
        konst(h.scope.as_str()),
        decs(&|r| r.cum_before),
        decs(&|r| r.cum_after),
        decs(&|r| r.tier_first_minimum),
        decs(&|r| r.tier_last_minimum),
        a_date(rows.iter().map(|r| Some(r.version.effective_start))),
        str_col(rows, |r| Some(r.rec.source_file.as_str())),
        a_i64(rows.iter().map(|r| Some(r.rec.source_row))),
        nulls(),
        nulls(),
        a_i64(std::iter::repeat_n(None, n)),
        a_i64(std::iter::repeat_n(None, n)),
        str_col(rows, |r| Some(r.version.unit_text.as_str())),
        a_dec(
            rows.iter()
                .map(|r| units.get(r.version.unit_text.as_str()).map(|f| f.block.0)),
        ),
        konst(run_id),
        a_dec(rows.iter().map(|r| r.reseller_cost.map(|v| v.0))),
    ]);
    Ok(RecordBatch::try_new(cost_schema(), arrays)?)
}

/// One reservation charge: a priced order and one of its installments.
pub type PurchaseCharge<'a> = (&'a PricedOrder<'a>, &'a Installment);

/// Columns of a purchases partition (reservation charges of one organization and month), in
/// [`cost_schema`] order. A charge covers its installment date, 00:00 to 00:00 UTC of the
/// next day; usage-only columns (consumed quantity, meter, tiers) are null. A purchase is a
/// commitment discount bought for future usage (FOCUS): its money is in `BilledCost` and
/// `EffectiveCost` is 0, since amortising it onto the usage it covers needs Azure plan usage,
/// which is not an input yet.
pub fn purchase_batch(
    org: &Organization,
    month: &str,
    partnerships: &std::collections::BTreeMap<String, String>,
    subscription_names: &std::collections::BTreeMap<String, String>,
    charges: &[PurchaseCharge],
    run_id: &str,
) -> Result<RecordBatch> {
    let n = charges.len();
    let konst = |v: &str| a_str(std::iter::repeat_n(Some(v), n));
    let nulls = || a_str(std::iter::repeat_n(None::<&str>, n));
    let null_decs = || a_dec(std::iter::repeat_n(None, n));
    let zeros = || a_dec(std::iter::repeat_n(Some(0), n));
    let strs = |f: &dyn Fn(&PurchaseCharge) -> Option<String>| -> ArrayRef {
        let v: Vec<Option<String>> = charges.iter().map(f).collect();
        a_str(v.iter().map(|s| s.as_deref()))
    };
    let field = |name: &'static str| {
        move |c: &PurchaseCharge| Some(c.0.order.get(name).to_string()).filter(|s| !s.is_empty())
    };
    let decs = |f: &dyn Fn(&PurchaseCharge) -> Dec10| a_dec(charges.iter().map(|c| dec(f(c))));
    let pname = |c: &PurchaseCharge| {
        let id = &c.0.mapping.partnership_id;
        Some(partnerships.get(id).unwrap_or(id).clone())
    };
    let seller = |c: &PurchaseCharge| match c.0.reseller {
        Some(r) => Some(r.name.clone()),
        None => pname(c),
    };
    let day_start = |c: &PurchaseCharge, days: u64| {
        let d = c.1.date + chrono::Days::new(days);
        Some(start_of_day_micros(d))
    };
    let commitment_id = |c: &PurchaseCharge| {
        Some(focus::reservation_id(
            c.0.order.get("order_id"),
            c.0.order.get("reservation_id"),
        ))
    };
    let service = |c: &PurchaseCharge| focus::reserved_service(c.0.order.get("product_title"));
    let block = focus_unit(PRICING_UNIT);
    let mut arrays = billing_account_columns(org, month, n);
    arrays.extend([
        a_ts(charges.iter().map(|c| day_start(c, 0))),
        a_ts(charges.iter().map(|c| day_start(c, 1))),
        konst("Purchase"),
        nulls(),
        strs(&field("product_title")),
        strs(&|c| Some(c.0.frequency.charge_frequency().to_string())),
        decs(&|c| c.1.list_cost),
        decs(&|c| c.1.billed_cost),
        zeros(),
        decs(&|c| c.1.billed_cost),
        decs(&|c| c.0.purchase_unit_price),
        decs(&|c| Dec10::from_int(c.0.quantity)),
        konst(PRICING_UNIT),
        null_decs(),
        nulls(),
        strs(&seller),
        strs(&seller),
        konst(MICROSOFT),
        konst(MICROSOFT),
        konst(MICROSOFT),
        strs(&|c| Some(service(c).name.to_string())),
        strs(&|c| Some(service(c).category.to_string())),
        strs(&|c| Some(service(c).subcategory.to_string())),
        strs(&field("region")),
        strs(&|c| match &c.0.price_source {
            PriceSource::PriceSheet { location, .. } => location.clone(),
            PriceSource::Order => None,
        }),
        strs(&commitment_id),
        strs(&field("reservation_id")),
        strs(&field("subscription_id")),
        strs(&field("sku_id")),
        nulls(),
        konst("{}"),
        konst(BILLING_ACCOUNT_TYPE),
        strs(&|c| {
            let id = c.0.order.get("subscription_id");
            Some(
                subscription_names
                    .get(id)
                    .map_or(id, |s| s.as_str())
                    .to_string(),
            )
        }),
        konst(SUB_ACCOUNT_TYPE),
        konst(&focus::invoice_id(&org.id, month)),
        konst(PRICING_CATEGORY),
        konst(PRICING_CURRENCY),
        decs(&|c| c.0.sell_unit_price),
        decs(&|c| c.0.original_unit_price_usd),
        decs(&|c| c.0.original_unit_price_usd),
        zeros(),
        strs(&|c| {
            let eff =
                c.0.price_source
                    .effective_start()
                    .map(days_to_date)
                    .unwrap_or_else(|| c.0.purchase_date());
            Some(format!(
                "{}:{}:{eff}",
                c.0.order.get("sku_id"),
                c.0.term.as_str()
            ))
        }),
        konst(RESERVATION_RESOURCE_TYPE),
        strs(&commitment_id),
        konst("Reservation"),
        konst("Usage"),
        strs(&field("product_title")),
        decs(&|c| Dec10::from_int(c.0.quantity)),
        konst(PRICING_UNIT),
        nulls(),
        strs(&field("customer_tenant_id")),
        konst(&org.id),
        strs(&|c| Some(c.0.mapping.partnership_id.clone())),
        konst(month),
        a_date(charges.iter().map(|c| Some(date_to_days(c.1.date)))),
        nulls(),
        decs(&|c| c.1.list_cost_usd),
        decs(&|c| c.0.fx_usd_per_unit),
        strs(&|c| Some(month_of(c.0.fx_rate_date))),
        nulls(),
        null_decs(),
        null_decs(),
        null_decs(),
        null_decs(),
        a_date(charges.iter().map(|c| c.0.price_source.effective_start())),
        strs(&|c| Some(c.0.order.source_file.clone())),
        a_i64(charges.iter().map(|c| Some(c.0.order.source_row))),
        strs(&field("order_id")),
        strs(&field("reservation_id")),
        a_i64(charges.iter().map(|c| Some(c.1.index as i64))),
        a_i64(charges.iter().map(|c| Some(c.0.installments.len() as i64))),
        konst(PRICING_UNIT),
        a_dec(std::iter::repeat_n(Some(block.block.0), n)),
        konst(run_id),
        a_dec(charges.iter().map(|c| c.1.reseller_cost.map(|v| v.0))),
    ]);
    Ok(RecordBatch::try_new(cost_schema(), arrays)?)
}

/// Digest of a batch's content, every column but `x_RunId`.
pub fn content_digest(batch: &RecordBatch) -> String {
    let mut h = ContentHasher::new();
    hash_batch(batch, &mut h);
    h.finish()
}

/// Digest of partition content: xxh3-128 (stable across machines and releases; this detects
/// unchanged content, it is not a security boundary).
pub struct ContentHasher(xxhash_rust::xxh3::Xxh3);

impl ContentHasher {
    /// A fresh digest.
    pub fn new() -> ContentHasher {
        ContentHasher(xxhash_rust::xxh3::Xxh3::new())
    }

    /// Hex of the digest.
    pub fn finish(&self) -> String {
        format!("xxh3-128:{:032x}", self.0.digest128())
    }
}

impl Default for ContentHasher {
    fn default() -> Self {
        ContentHasher::new()
    }
}

/// Feed a batch's content (every column but `x_RunId`) into a digest. Values go through
/// arrow's row format, so the digest depends on the values only, not on how the arrays are
/// laid out or sliced.
pub fn hash_batch(batch: &RecordBatch, h: &mut ContentHasher) {
    use arrow::row::{RowConverter, SortField};
    let (fields, columns): (Vec<SortField>, Vec<ArrayRef>) = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.name() != col::RUN_ID)
        .map(|(f, c)| (SortField::new(f.data_type().clone()), c.clone()))
        .unzip();
    let converter = RowConverter::new(fields).expect("cost schema types are row-convertible");
    let rows = converter
        .convert_columns(&columns)
        .expect("columns match their fields");
    for row in rows.iter() {
        h.0.update(row.as_ref());
    }
}

/// Feed a batch's buffers (every column but `x_RunId`) into a digest. Much cheaper than
/// [`hash_batch`], but only meaningful for arrays built fresh (not slices of larger arrays),
/// which is what rating's sorted runs are; sliced arrays fall back to [`hash_batch`].
pub fn hash_batch_buffers(batch: &RecordBatch, h: &mut ContentHasher) {
    if batch.columns().iter().any(|c| c.to_data().offset() != 0) {
        return hash_batch(batch, h);
    }
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() == col::RUN_ID {
            continue;
        }
        let d = array.to_data();
        h.0.update(field.name().as_bytes());
        h.0.update(&(d.len() as u64).to_le_bytes());
        if let Some(n) = d.nulls() {
            for i in 0..d.len() {
                h.0.update(&[n.is_valid(i) as u8]);
            }
        }
        for b in d.buffers() {
            h.0.update(b.as_slice());
        }
    }
}

/// Digest of digests, in order (the partition's content is its runs in merge order).
pub fn combine_digests<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = ContentHasher::new();
    for p in parts {
        h.0.update(p.as_bytes());
    }
    format!("runs-{}", h.finish())
}

/// Outcome of writing one partition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// New content written.
    Written,
    /// Same content already there; file untouched.
    Unchanged,
}

impl WriteOutcome {
    /// The manifest's partition action: `written` or `unchanged`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WriteOutcome::Written => "written",
            WriteOutcome::Unchanged => "unchanged",
        }
    }
}

/// Write `batch` to `rel` unless the file there already holds the same content.
pub fn write_if_changed(lake: &Lake, rel: &str, batch: RecordBatch) -> Result<WriteOutcome> {
    let digest = content_digest(&batch);
    if holds_content(lake, rel, &digest)? {
        return Ok(WriteOutcome::Unchanged);
    }
    crate::faults::maybe_crash("partition-write");
    lake.put_parquet(
        rel,
        batch.schema(),
        &[batch],
        vec![(CONTENT_KEY.to_string(), digest)],
    )?;
    Ok(WriteOutcome::Written)
}

/// Whether the partition file `rel` exists and holds the content of digest `digest`.
pub fn holds_content(lake: &Lake, rel: &str, digest: &str) -> Result<bool> {
    Ok(lake
        .parquet_metadata(rel)?
        .is_some_and(|kv| kv.iter().any(|(k, v)| k == CONTENT_KEY && v == digest)))
}

/// Sum of a decimal column.
pub fn sum_decimal(batch: &RecordBatch, name: &str) -> Result<Dec10> {
    let a = Cols(batch).dec(name)?;
    let mut s: i128 = 0;
    for i in 0..a.len() {
        if !a.is_null(i) {
            s = s
                .checked_add(a.value(i))
                .ok_or_else(|| crate::Error::Overflow {
                    context: format!("summing {name}"),
                })?;
        }
    }
    Ok(Dec10(s))
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
