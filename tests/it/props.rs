//! Property tests (proptest) guarding the tier math and the engine: cost is monotone in
//! quantity, a scope's rows sum exactly to `round10(C(total))`, and the rated rows do not
//! depend on arrival order, batch boundaries or thread count.

use cspcost::model::decimal::Dec10;
use cspcost::model::reference::{Organization, Reference, TenantMapping};
use cspcost::model::tier::{TierPeriod, TierScope};
use cspcost::model::usage::UsageRecord;
use cspcost::pricing::price_book::PriceBook;
use cspcost::pricing::tiers::{PriceTier, TierLadder};
use cspcost::rate::engine::{rate_month, RateContext, StreamRater};
use proptest::prelude::*;

/// Quantities with up to 10 decimals, up to 10^6 units.
fn quantity() -> impl Strategy<Value = Dec10> {
    (0i128..1_000_000i128, 0i128..10_000_000_000i128)
        .prop_map(|(i, f)| Dec10(i * 10_000_000_000 + f))
}

/// Ladders of 1..6 tiers with increasing minimums and prices of up to 8 decimals.
fn ladder() -> impl Strategy<Value = TierLadder> {
    (
        prop::collection::vec(
            (1i128..50_000_000_000_000i128, 0i128..10_000_000_000_000i128),
            1..6,
        ),
        any::<bool>(),
    )
        .prop_map(|(steps, free_start)| {
            let mut min = if free_start { 0 } else { steps[0].0 };
            let mut tiers = Vec::new();
            for (gap, price) in steps {
                tiers.push(PriceTier {
                    minimum: Dec10(min),
                    unit_price: Dec10(price / 100 * 100),
                });
                min += gap;
            }
            TierLadder::new(tiers)
        })
}

proptest! {
    #[test]
    fn cost_is_monotone_in_quantity(l in ladder(), a in quantity(), b in quantity()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(l.cost(lo).unwrap() <= l.cost(hi).unwrap());
    }

    #[test]
    fn telescoped_rows_sum_to_the_rounded_total(l in ladder(), qs in prop::collection::vec(quantity(), 1..40)) {
        let mut cum = Dec10::ZERO;
        let mut sum: i128 = 0;
        for q in &qs {
            let after = cum.checked_add(*q).unwrap();
            let a = l.allocate(cum, after).unwrap();
            prop_assert!(a.cost.0 >= 0);
            sum += a.cost.0;
            cum = after;
        }
        prop_assert_eq!(sum, l.cost(cum).unwrap().0);
    }
}

const TENANTS: [&str; 2] = [
    "aaaaaaaa-0000-0000-0000-000000000001",
    "aaaaaaaa-0000-0000-0000-000000000002",
];
const SUBS: [&str; 3] = [
    "bbbbbbbb-0000-0000-0000-000000000001",
    "bbbbbbbb-0000-0000-0000-000000000002",
    "bbbbbbbb-0000-0000-0000-000000000003",
];
const METERS: [&str; 2] = [
    "cccccccc-0000-0000-0000-000000000001",
    "cccccccc-0000-0000-0000-000000000002",
];

fn reference() -> Reference {
    let mut r = Reference::default();
    r.partnerships.insert("p".into(), "P".into());
    r.organizations.insert(
        "o".into(),
        Organization {
            id: "o".into(),
            name: "O".into(),
            billing_currency: "EUR".into(),
            consumption_adjustment_percent: Dec10::parse("7.5").unwrap(),
            reservation_markup_percent: Dec10::ZERO,
        },
    );
    for t in TENANTS {
        r.tenants.insert(
            t.into(),
            TenantMapping {
                customer_tenant_id: t.into(),
                organization_id: "o".into(),
                partnership_id: "p".into(),
            },
        );
    }
    r.fx.insert(
        ("EUR".into(), "2026-01".into()),
        Dec10::parse("1.0854").unwrap(),
    );
    r
}

fn book() -> PriceBook {
    let row = |meter: &str, eff: &str, min: &str, price: &str| cspcost::model::price::PriceRow {
        is_primary_meter_region: Some(true),
        ..cspcost::model::price::PriceRow::usd_consumption(
            meter,
            "1 GB",
            cspcost::model::time::date_to_days(
                chrono::NaiveDate::parse_from_str(eff, "%Y-%m-%d").unwrap(),
            ),
            Dec10::parse(min).unwrap(),
            Dec10::parse(price).unwrap(),
        )
    };
    PriceBook::build(&[
        row(METERS[0], "2026-01-01", "0", "0"),
        row(METERS[0], "2026-01-01", "5", "0.087"),
        row(METERS[0], "2026-01-01", "100", "0.083"),
        row(METERS[0], "2026-01-15", "0", "0"),
        row(METERS[0], "2026-01-15", "5", "0.08"),
        row(METERS[0], "2026-01-15", "100", "0.075"),
        row(METERS[1], "2026-01-01", "0", "0.0000271"),
    ])
}

fn record(
    i: usize,
    tenant: usize,
    sub: usize,
    meter: usize,
    day: u32,
    hour: u32,
    q: Dec10,
) -> UsageRecord {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, day)
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc();
    UsageRecord {
        key_hash: i as u128,
        customer_tenant_id: TENANTS[tenant].into(),
        subscription_id: SUBS[sub].into(),
        meter_id: METERS[meter].into(),
        meter_name: None,
        meter_category: None,
        meter_subcategory: None,
        meter_region: None,
        resource_uri: format!("/r/{}", i % 3),
        location: None,
        part_number: None,
        order_number: None,
        additional_info: String::new(),
        tags: "{}".into(),
        info_fields: None,
        unit: None,
        quantity: q,
        usage_start: start.timestamp_micros(),
        usage_end: start.timestamp_micros() + 3_600_000_000,
        usage_date: cspcost::model::time::date_to_days(start.date_naive()),
        source_file: "f".into(),
        source_row: i as i64,
        ingest_run_id: "r".into(),
        raw: String::new(),
        raw_ref: None,
    }
}

/// The default tier scope and period.
fn default_context<'a>(r: &'a Reference, b: &'a PriceBook) -> RateContext<'a> {
    RateContext {
        reference: r,
        book: b,
        scope: TierScope::Subscription,
        period: TierPeriod::CalendarMonth,
    }
}

fn row_text(r: &cspcost::pricing::rated::RatedRow) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}",
        r.rec.key_hash, r.cum_before, r.cum_after, r.list_cost_usd, r.list_cost, r.billed_cost
    )
}

/// The default scope rated as a stream: records in staged order (ingest's merge order),
/// handed over in chunks of the given sizes (cycled).
fn streamed(records: &[UsageRecord], chunks: &[usize]) -> Vec<String> {
    let (r, b) = (reference(), book());
    let ctx = default_context(&r, &b);
    let mut sorted = records.to_vec();
    sorted.sort_by(|a, b| {
        let k = |r: &UsageRecord| {
            (
                r.subscription_id.clone(),
                r.meter_id.clone(),
                r.usage_start,
                r.usage_end,
                r.resource_uri.clone(),
                r.additional_info.clone(),
                r.key_hash,
            )
        };
        k(a).cmp(&k(b))
    });
    let mut rater = StreamRater::new(&ctx, "2026-01").unwrap();
    let mut rows = Vec::new();
    rate_in_chunks(&mut rater, &sorted, chunks, &mut 0, &mut rows);
    rows.sort();
    rows
}

/// Hand `records` to `rater` in chunks of the sizes of `chunks` (cycled, from the `i`-th),
/// collecting the rated rows.
fn rate_in_chunks(
    rater: &mut StreamRater,
    records: &[UsageRecord],
    chunks: &[usize],
    i: &mut usize,
    rows: &mut Vec<String>,
) {
    let mut at = 0;
    while at < records.len() {
        let n = chunks[*i % chunks.len()].min(records.len() - at);
        let m = rater.rate_chunk(&records[at..at + n]).unwrap().unwrap();
        rows.extend(m.rows.iter().map(row_text));
        at += n;
        *i += 1;
    }
}

fn rated(records: &[UsageRecord], scope: TierScope, threads: usize) -> Vec<String> {
    let r = reference();
    let b = book();
    let ctx = RateContext {
        reference: &r,
        book: &b,
        scope,
        period: TierPeriod::CalendarMonth,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let m = pool.install(|| rate_month(&ctx, "2026-01", records, &[]).unwrap());
    let mut rows: Vec<String> = m.rows.iter().map(row_text).collect();
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_is_independent_of_order_batches_and_threads(
        specs in prop::collection::vec((0usize..3, 0usize..2, 1u32..29, 0u32..24, quantity()), 1..60),
        perm_seed in any::<u64>(),
        scope_i in 0usize..3,
    ) {
        let scope = [TierScope::Subscription, TierScope::Customer, TierScope::Organization][scope_i];
        // A subscription belongs to one tenant: subscriptions 0 and 1 to tenant 0, 2 to tenant 1.
        let records: Vec<UsageRecord> = specs.iter().enumerate().map(|(i, (s, m, d, h, q))| record(i, s / 2, *s, *m, *d, *h, *q)).collect();
        let base = rated(&records, scope, 1);
        prop_assert_eq!(base.len(), records.len());
        // Another arrival order (a seeded shuffle), rated with two threads.
        let mut shuffled = records.clone();
        let mut x = perm_seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&rated(&shuffled, scope, 2), &base);
        // Batches: rating each tenant's records separately gives the same rows for scopes
        // that never span tenants.
        if scope != TierScope::Organization {
            let mut parts: Vec<String> = Vec::new();
            for t in TENANTS {
                let part: Vec<UsageRecord> = records.iter().filter(|r| r.customer_tenant_id == t).cloned().collect();
                parts.extend(rated(&part, scope, 2));
            }
            parts.sort();
            prop_assert_eq!(parts, base);
        }
    }

    /// The streaming path of the default scope (rate/stream.rs) gives the rows of the
    /// in-memory engine, whatever the chunk sizes.
    #[test]
    fn streamed_rating_is_independent_of_chunks(
        specs in prop::collection::vec((0usize..3, 0usize..2, 1u32..29, 0u32..24, quantity()), 1..80),
        chunks in prop::collection::vec(1usize..20, 1..5),
    ) {
        let records: Vec<UsageRecord> = specs.iter().enumerate().map(|(i, (s, m, d, h, q))| record(i, s / 2, *s, *m, *d, *h, *q)).collect();
        let base = rated(&records, TierScope::Subscription, 1);
        prop_assert_eq!(streamed(&records, &chunks), base);
    }
}

/// The customer scope of customers with one subscription each, streamed as the groups of
/// rate/scopes.rs stream it: stretches of staged files, each in staged order, taken in any
/// order with a restart between them, in chunks of any size.
fn streamed_by_stretches(records: &[UsageRecord], chunks: &[usize], reversed: bool) -> Vec<String> {
    let (r, b) = (reference(), book());
    let ctx = RateContext {
        scope: TierScope::Customer,
        ..default_context(&r, &b)
    };
    let mut rater = StreamRater::for_block_ladders(&ctx, "2026-01").unwrap();
    let mut stretches: Vec<Vec<UsageRecord>> = SUBS
        .iter()
        .map(|s| {
            let mut part: Vec<UsageRecord> = records
                .iter()
                .filter(|r| r.subscription_id == *s)
                .cloned()
                .collect();
            part.sort_by(|a, b| {
                let k = |r: &UsageRecord| {
                    (
                        r.meter_id.clone(),
                        r.usage_start,
                        r.usage_end,
                        r.resource_uri.clone(),
                        r.key_hash,
                    )
                };
                k(a).cmp(&k(b))
            });
            part
        })
        .collect();
    if reversed {
        stretches.reverse();
    }
    let mut rows = Vec::new();
    let mut i = 0;
    for part in &stretches {
        rater.restart();
        rate_in_chunks(&mut rater, part, chunks, &mut i, &mut rows);
    }
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Streamed by stretches, the customer scope of one subscription per customer (tenant 0
    /// has subscription 0, tenant 1 subscription 2) gives the rows of the in-memory engine.
    #[test]
    fn block_ladders_streamed_by_stretches_rate_as_the_engine(
        specs in prop::collection::vec((0usize..2, 0usize..2, 1u32..29, 0u32..24, quantity()), 1..80),
        chunks in prop::collection::vec(1usize..20, 1..5),
        reversed in any::<bool>(),
    ) {
        let records: Vec<UsageRecord> = specs.iter().enumerate().map(|(i, (t, m, d, h, q))| record(i, *t, 2 * t, *m, *d, *h, *q)).collect();
        let base = rated(&records, TierScope::Customer, 1);
        prop_assert_eq!(streamed_by_stretches(&records, &chunks, reversed), base);
    }
}

/// Records out of staged order are refused, not rated in the wrong order.
#[test]
fn stream_rater_refuses_records_out_of_staged_order() {
    let (r, b) = (reference(), book());
    let ctx = default_context(&r, &b);
    let q = Dec10::parse("1").unwrap();
    let (early, late) = (record(0, 0, 0, 0, 1, 0, q), record(1, 0, 0, 0, 2, 0, q));
    let mut rater = StreamRater::new(&ctx, "2026-01").unwrap();
    assert!(rater
        .rate_chunk(std::slice::from_ref(&late))
        .unwrap()
        .is_ok());
    assert!(rater
        .rate_chunk(std::slice::from_ref(&early))
        .unwrap()
        .is_err());
    let mut fresh = StreamRater::new(&ctx, "2026-01").unwrap();
    assert!(fresh
        .rate_chunk(&[late.clone(), early.clone()])
        .unwrap()
        .is_err());
    let customer = RateContext {
        scope: TierScope::Customer,
        ..ctx
    };
    assert!(StreamRater::new(&customer, "2026-01").is_none());
    // After a restart a new stretch may begin anywhere, but a ladder left behind stays shut.
    let mut blocks = StreamRater::for_block_ladders(&customer, "2026-01").unwrap();
    let other = record(2, 1, 2, 0, 1, 0, q);
    assert!(blocks
        .rate_chunk(std::slice::from_ref(&other))
        .unwrap()
        .is_ok());
    blocks.restart();
    assert!(blocks
        .rate_chunk(std::slice::from_ref(&late))
        .unwrap()
        .is_ok());
    blocks.restart();
    assert!(blocks
        .rate_chunk(std::slice::from_ref(&early))
        .unwrap()
        .is_err());
    let cycle = RateContext {
        period: TierPeriod::BillingCycle(15),
        ..customer
    };
    assert!(StreamRater::for_block_ladders(&cycle, "2026-01").is_none());
}
