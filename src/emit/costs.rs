//! Cost partitions (outputs.md `costs/`): FOCUS 1.2 columns plus `x_` lineage, one
//! `usage-0.parquet` per organization and month, replaced atomically. A partition whose
//! content is unchanged is left untouched, so a rerun with the same inputs is byte-identical
//! (its `x_RunId` stays the run that first wrote that content).

use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::schema::*;
use crate::model::time::{next_month_start, to_micros};
use crate::rate::engine::{RatedRow, TierScope};
use crate::store::Lake;
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use chrono::{NaiveDate, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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

/// FOCUS category from the price sheet's `serviceFamily` (or the rate card's category).
pub fn focus_service_category(family: Option<&str>, category: Option<&str>) -> &'static str {
    let key = family.or(category).unwrap_or("").to_ascii_lowercase();
    match key.as_str() {
        "compute" | "virtual machines" | "cloud services" | "containers" | "azure app service" => {
            "Compute"
        }
        "storage" => "Storage",
        "networking" | "bandwidth" | "expressroute" => "Networking",
        "databases" | "sql database" => "Databases",
        "analytics" | "log analytics" => "Analytics",
        "ai + machine learning" => "AI and Machine Learning",
        "internet of things" => "Internet of Things",
        "management and governance" | "azure monitor" => "Management and Governance",
        "security" => "Security",
        "developer tools" => "Developer Tools",
        "integration" => "Integration",
        "web" => "Web",
        _ => "Other",
    }
}

fn resource_name(uri: &str) -> Option<&str> {
    uri.rsplit('/').find(|s| !s.is_empty())
}

/// Everything about a partition that is not per row.
pub struct PartitionHeader<'a> {
    /// Organization.
    pub org: &'a crate::model::reference::Organization,
    /// `YYYY-MM`.
    pub month: &'a str,
    /// Scope used.
    pub scope: TierScope,
    /// Partnership names by ID.
    pub partnerships: &'a std::collections::BTreeMap<String, String>,
    /// Records staged after this run ID restate an already published month.
    pub first_published_run: Option<&'a str>,
}

fn dec(v: Dec10) -> Option<i128> {
    Some(v.0)
}

/// Schema and columns of a usage partition.
pub fn usage_batch(h: &PartitionHeader, rows: &[RatedRow], run_id: &str) -> Result<RecordBatch> {
    let month_start =
        NaiveDate::parse_from_str(&format!("{}-01", h.month), "%Y-%m-%d").unwrap_or_default();
    let bp_start =
        to_micros(Utc.from_utc_datetime(&month_start.and_hms_opt(0, 0, 0).unwrap_or_default()));
    let bp_end = to_micros(
        Utc.from_utc_datetime(
            &next_month_start(month_start)
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default(),
        ),
    );
    let n = rows.len();
    let org = h.org;
    let pname = |r: &RatedRow| {
        h.partnerships
            .get(&r.mapping.partnership_id)
            .cloned()
            .unwrap_or_else(|| r.mapping.partnership_id.clone())
    };
    let konst = |v: &str| a_str(std::iter::repeat_n(Some(v), n));
    let strs = |f: &dyn Fn(&RatedRow) -> Option<String>| -> ArrayRef {
        let v: Vec<Option<String>> = rows.iter().map(f).collect();
        a_str(v.iter().map(|s| s.as_deref()))
    };
    let decs = |f: &dyn Fn(&RatedRow) -> Dec10| a_dec(rows.iter().map(|r| dec(f(r))));
    let columns: Vec<(Field, ArrayRef)> = vec![
        (f_str("BillingAccountId", false), konst(&org.id)),
        (f_str("BillingAccountName", false), konst(&org.name)),
        (
            f_str("BillingCurrency", false),
            konst(&org.billing_currency),
        ),
        (
            f_ts("BillingPeriodStart", false),
            a_ts(std::iter::repeat_n(Some(bp_start), n)),
        ),
        (
            f_ts("BillingPeriodEnd", false),
            a_ts(std::iter::repeat_n(Some(bp_end), n)),
        ),
        (
            f_ts("ChargePeriodStart", false),
            a_ts(rows.iter().map(|r| Some(r.rec.usage_start))),
        ),
        (
            f_ts("ChargePeriodEnd", false),
            a_ts(rows.iter().map(|r| Some(r.rec.usage_end))),
        ),
        (f_str("ChargeCategory", false), konst("Usage")),
        (
            f_str("ChargeClass", true),
            strs(&|r| match h.first_published_run {
                Some(first) if r.rec.ingest_run_id.as_str() > first => Some("Correction".into()),
                _ => None,
            }),
        ),
        (
            f_str("ChargeDescription", true),
            strs(&|r| {
                r.version
                    .meta
                    .meter_name
                    .clone()
                    .or_else(|| r.rec.meter_name.clone())
            }),
        ),
        (f_str("ChargeFrequency", false), konst("Usage-Based")),
        (f_dec("ListCost", false), decs(&|r| r.list_cost)),
        (f_dec("ContractedCost", false), decs(&|r| r.billed_cost)),
        (f_dec("EffectiveCost", false), decs(&|r| r.billed_cost)),
        (f_dec("BilledCost", false), decs(&|r| r.billed_cost)),
        (f_dec("ListUnitPrice", false), decs(&|r| r.list_unit_price)),
        (
            f_dec("PricingQuantity", false),
            decs(&|r| r.pricing_quantity),
        ),
        (
            f_str("PricingUnit", false),
            strs(&|r| Some(r.version.unit_text.clone())),
        ),
        (f_dec("ConsumedQuantity", false), decs(&|r| r.rec.quantity)),
        (
            f_str("ConsumedUnit", false),
            strs(&|r| {
                Some(
                    r.rec
                        .unit
                        .clone()
                        .unwrap_or_else(|| r.version.unit_text.clone()),
                )
            }),
        ),
        (f_str("InvoiceIssuerName", false), strs(&|r| Some(pname(r)))),
        (f_str("ProviderName", false), konst("Microsoft")),
        (f_str("PublisherName", false), konst("Microsoft")),
        (f_str("HostProviderName", false), konst("Microsoft")),
        (
            f_str("ServiceProviderName", false),
            strs(&|r| Some(pname(r))),
        ),
        (
            f_str("ServiceName", true),
            strs(&|r| {
                r.version
                    .meta
                    .service_name
                    .clone()
                    .or_else(|| r.rec.meter_category.clone())
            }),
        ),
        (
            f_str("ServiceCategory", false),
            strs(&|r| {
                Some(
                    focus_service_category(
                        r.version.meta.service_family.as_deref(),
                        r.version.meta.meter_category.as_deref(),
                    )
                    .to_string(),
                )
            }),
        ),
        (
            f_str("ServiceSubcategory", true),
            strs(&|r| {
                r.version
                    .meta
                    .meter_subcategory
                    .clone()
                    .or_else(|| r.rec.meter_subcategory.clone())
            }),
        ),
        (
            f_str("RegionId", true),
            strs(&|r| {
                Some(r.version.meta.arm_region_name.clone())
                    .filter(|s| !s.is_empty())
                    .or_else(|| r.rec.location.clone())
            }),
        ),
        (
            f_str("RegionName", true),
            strs(&|r| {
                r.version
                    .meta
                    .location
                    .clone()
                    .or_else(|| r.rec.meter_region.clone())
            }),
        ),
        (
            f_str("ResourceId", true),
            strs(&|r| Some(r.rec.resource_uri.clone()).filter(|s| !s.is_empty())),
        ),
        (
            f_str("ResourceName", true),
            strs(&|r| resource_name(&r.rec.resource_uri).map(str::to_string)),
        ),
        (
            f_str("SubAccountId", false),
            strs(&|r| Some(r.rec.subscription_id.clone())),
        ),
        (
            f_str("SkuId", true),
            strs(&|r| Some(r.version.meta.sku_id.clone()).filter(|s| !s.is_empty())),
        ),
        (
            f_str("SkuMeter", true),
            strs(&|r| r.version.meta.meter_name.clone()),
        ),
        (f_str("Tags", false), strs(&|r| Some(r.rec.tags.clone()))),
        (
            f_str("x_CustomerTenantId", false),
            strs(&|r| Some(r.rec.customer_tenant_id.clone())),
        ),
        (f_str("x_OrganizationId", false), konst(&org.id)),
        (
            f_str("x_PartnershipId", false),
            strs(&|r| Some(r.mapping.partnership_id.clone())),
        ),
        (f_str("x_BillingMonth", false), konst(h.month)),
        (
            f_date("x_UsageDate", false),
            a_date(rows.iter().map(|r| Some(r.rec.usage_date))),
        ),
        (
            f_str("x_MeterId", false),
            strs(&|r| Some(r.rec.meter_id.clone())),
        ),
        (f_dec("x_ListCostUsd", false), decs(&|r| r.list_cost_usd)),
        (f_dec("x_FxUsdPerUnit", false), decs(&|r| r.fx_usd_per_unit)),
        (f_str("x_FxRateMonth", false), konst(h.month)),
        (f_str("x_TierScope", false), konst(h.scope.as_str())),
        (
            f_dec("x_CumulativeQuantityBefore", false),
            decs(&|r| r.cum_before),
        ),
        (
            f_dec("x_CumulativeQuantityAfter", false),
            decs(&|r| r.cum_after),
        ),
        (
            f_dec("x_TierFirstMinimum", false),
            decs(&|r| r.tier_first_minimum),
        ),
        (
            f_dec("x_TierLastMinimum", false),
            decs(&|r| r.tier_last_minimum),
        ),
        (
            f_date("x_PriceEffectiveStart", false),
            a_date(rows.iter().map(|r| Some(r.version.effective_start))),
        ),
        (
            f_str("x_SourceFile", false),
            strs(&|r| Some(r.rec.source_file.clone())),
        ),
        (
            f_i64("x_SourceRow", false),
            a_i64(rows.iter().map(|r| Some(r.rec.source_row))),
        ),
        (f_str(col::RUN_ID, false), konst(run_id)),
    ];
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Digest of a batch's content, every column but `x_RunId`.
pub fn content_digest(batch: &RecordBatch) -> String {
    let mut h = Sha256::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() == col::RUN_ID {
            continue;
        }
        h.update(field.name().as_bytes());
        hash_array_data(&array.to_data(), &mut h);
    }
    hex::encode(h.finalize())
}

fn hash_array_data(d: &arrow::array::ArrayData, h: &mut Sha256) {
    h.update((d.len() as u64).to_le_bytes());
    if let Some(n) = d.nulls() {
        for i in 0..d.len() {
            h.update([n.is_valid(i) as u8]);
        }
    }
    for b in d.buffers() {
        h.update(b.as_slice());
    }
    for c in d.child_data() {
        hash_array_data(c, h);
    }
}

/// Outcome of writing one partition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// New content written.
    Written,
    /// Same content already there; file untouched.
    Unchanged,
}

/// Write `batch` to `rel` unless the file there already holds the same content.
pub fn write_if_changed(lake: &Lake, rel: &str, batch: RecordBatch) -> Result<WriteOutcome> {
    let digest = content_digest(&batch);
    if let Some(kv) = lake.parquet_metadata(rel)? {
        if kv.iter().any(|(k, v)| k == CONTENT_KEY && *v == digest) {
            return Ok(WriteOutcome::Unchanged);
        }
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
