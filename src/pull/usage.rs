//! `pull usage`: customers, their subscriptions, and the Azure utilization of every legacy
//! Azure CSP subscription, window by window (pull.md, Partner Center semantics).
//!
//! Pages land in `customers/<tenant>/subscriptions/<sub>/utilizations/azure/` as
//! `<window>-page-NNNN.json`, the route `ingest usage` reads the tenant and subscription
//! from. Subscriptions are pulled concurrently (`--concurrency`, one request in flight
//! each); one that fails after its retries is reported at the end, after all the others.

use super::auth::TokenSource;
use super::customers::{list_customers, list_subscriptions, Customer};
use super::http::{Client, Request};
use super::paging::{for_each_page, Paging};
use super::state::{self, PullState, Window};
use super::writer::{self, CustomerSummary, Naming, OutDir, PageSet, PullManifest, Skipped};
use super::{Endpoints, PullError, PullOptions};
use crate::error::{Error, Result};
use crate::model::decimal::Dec10;
use crate::progress::Progress;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Records asked per utilization page (the API's maximum).
pub const PAGE_SIZE: usize = 1000;
/// Where the state lives under `--out`.
pub const STATE_FILE: &str = "_pull/state.json";

/// Registered tenants of a lake (lowercase GUIDs), read before any request.
pub fn registered_tenants(lake: &str) -> Result<BTreeSet<String>> {
    let lake = crate::store::Lake::open_existing(lake)?;
    Ok(crate::model::reference::Reference::load(&lake)?
        .tenants
        .into_keys()
        .collect())
}

/// Load `_pull/state.json` (empty when absent).
pub fn load_state(out: &std::path::Path) -> Result<PullState> {
    let path = out.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: path.display().to_string(),
            source: e,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PullState::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn save_state(out: &OutDir, s: &PullState) -> Result<()> {
    let path = out.root().join(STATE_FILE);
    let text = serde_json::to_vec_pretty(s).map_err(|e| Error::Json {
        path: path.display().to_string(),
        source: e,
    })?;
    writer::write_atomic(&path, &text)
}

/// What one subscription's pull did.
#[derive(Debug, Default)]
struct SubResult {
    tenant: String,
    pages: u64,
    records: u64,
    retries: u64,
    windows: u64,
    smaller: u64,
    warnings: Vec<String>,
    failure: Option<String>,
}

struct Ctx<'a> {
    client: &'a Client,
    auth: &'a TokenSource,
    endpoints: &'a Endpoints,
    opts: &'a PullOptions,
    out: &'a OutDir,
    state: Mutex<PullState>,
}

/// Pull usage (see the module docs); `registered` is `None` with `--all-customers`.
pub async fn pull_usage(
    client: &Client,
    endpoints: &Endpoints,
    opts: &PullOptions,
    out: &OutDir,
    manifest: &mut PullManifest,
    registered: Option<&BTreeSet<String>>,
) -> Result<()> {
    let auth = TokenSource::partner_center(&endpoints.login)?;
    let (customers, customer_pages) = list_customers(client, &auth, endpoints, Some(out)).await?;
    manifest.counts.customers = customers.len() as u64;
    manifest.counts.pages += customer_pages;
    let selected = select_customers(&customers, registered, manifest);
    manifest.counts.customers_selected = selected.len() as u64;
    crate::progress::log(&format!(
        "pull usage: {} Partner Center customers, {} selected{}",
        customers.len(),
        selected.len(),
        if registered.is_some() {
            " (registered in the lake)"
        } else {
            " (--all-customers)"
        }
    ));
    // The state is read once the subscriptions are listed, as the pull starts.
    let mut ctx = Ctx {
        client,
        auth: &auth,
        endpoints,
        opts,
        out,
        state: Mutex::new(PullState::default()),
    };
    let listed = list_all_subscriptions(&ctx, &selected).await;
    let mut summaries: BTreeMap<String, CustomerSummary> = BTreeMap::new();
    let jobs = subscription_jobs(listed, manifest, &mut summaries)?;
    ctx.state = Mutex::new(load_state(out.root())?);
    pull_all_subscriptions(&ctx, &jobs, manifest, &mut summaries).await?;
    manifest.counts.subscriptions_skipped = manifest.skipped.len() as u64;
    manifest.customers = summaries.into_values().collect();
    Ok(())
}

/// The customers to pull: all of them with `--all-customers`, else the registered ones (a
/// registered tenant that is no customer is a warning).
fn select_customers(
    customers: &[Customer],
    registered: Option<&BTreeSet<String>>,
    manifest: &mut PullManifest,
) -> Vec<Customer> {
    let Some(r) = registered else {
        return customers.to_vec();
    };
    let known: BTreeSet<&String> = customers.iter().map(|c| &c.tenant).collect();
    for t in r.iter().filter(|t| !known.contains(t)) {
        manifest.warnings.push(format!(
            "registered tenant {t} is not a Partner Center customer of this partner: nothing pulled for it"
        ));
    }
    customers
        .iter()
        .filter(|c| r.contains(&c.tenant))
        .cloned()
        .collect()
}

/// A customer and the listing of its subscriptions (with the retries it took).
struct ListedCustomer {
    customer: Customer,
    subscriptions: Result<(Vec<super::customers::Subscription>, u64)>,
}

/// Subscriptions of every selected customer, `--concurrency` at a time.
async fn list_all_subscriptions(ctx: &Ctx<'_>, selected: &[Customer]) -> Vec<ListedCustomer> {
    let bar = Mutex::new(Progress::new(
        "pull usage: customers",
        selected.len() as u64,
        false,
    ));
    let listed: Vec<ListedCustomer> = stream::iter(selected.iter().cloned())
        .map(|c| {
            let bar = &bar;
            async move {
                let r = list_subscriptions(ctx.client, ctx.auth, ctx.endpoints, ctx.out, &c.tenant)
                    .await;
                if let Ok(mut b) = bar.lock() {
                    b.inc(1);
                }
                ListedCustomer {
                    customer: c,
                    subscriptions: r,
                }
            }
        })
        .buffer_unordered(ctx.opts.concurrency)
        .collect()
        .await;
    if let Ok(b) = bar.into_inner() {
        b.finish();
    }
    listed
}

/// The legacy Azure CSP subscriptions to pull, as sorted `(tenant, subscription)`; the
/// others are skipped, a failed listing is a failure of its customer (a fatal error stops).
fn subscription_jobs(
    listed: Vec<ListedCustomer>,
    manifest: &mut PullManifest,
    summaries: &mut BTreeMap<String, CustomerSummary>,
) -> Result<Vec<(String, String)>> {
    let mut jobs = Vec::new();
    for ListedCustomer {
        customer: c,
        subscriptions: r,
    } in listed
    {
        let s = summaries
            .entry(c.tenant.clone())
            .or_insert_with(|| CustomerSummary {
                tenant: c.tenant.clone(),
                company: c.company.clone(),
                ..Default::default()
            });
        match r {
            Ok((subs, retries)) => {
                s.retries += retries;
                manifest.counts.pages += 1;
                for sub in subs {
                    if sub.is_legacy_azure() {
                        jobs.push((c.tenant.clone(), sub.id));
                    } else {
                        s.subscriptions_skipped += 1;
                        manifest.skipped.push(Skipped {
                            tenant: c.tenant.clone(),
                            subscription: sub.id,
                            offer_id: sub.offer_id,
                            reason: "not a legacy Azure CSP subscription (MS-AZR-0145P): no utilization API".into(),
                        });
                    }
                }
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => manifest
                .failures
                .push(format!("{}: listing subscriptions: {e}", c.tenant)),
        }
    }
    jobs.sort();
    Ok(jobs)
}

/// Pull every job, `--concurrency` at a time, adding each result as it comes.
async fn pull_all_subscriptions(
    ctx: &Ctx<'_>,
    jobs: &[(String, String)],
    manifest: &mut PullManifest,
    summaries: &mut BTreeMap<String, CustomerSummary>,
) -> Result<()> {
    let bar = Mutex::new(Progress::new(
        "pull usage: subscriptions",
        jobs.len() as u64,
        false,
    ));
    let mut results = stream::iter(jobs.iter())
        .map(|(tenant, sub)| {
            let bar = &bar;
            async move {
                let r = pull_subscription(ctx, tenant, sub).await;
                if let Ok(mut b) = bar.lock() {
                    b.inc(1);
                }
                (tenant, sub, r)
            }
        })
        .buffer_unordered(ctx.opts.concurrency);
    while let Some((tenant, sub, r)) = results.next().await {
        // Credentials or the disk: nothing else can succeed either.
        let r = r?;
        if let Ok(mut b) = bar.lock() {
            b.set_label(&format!(
                "pull usage: subscriptions ({} pages, {} records)",
                manifest.counts.pages + r.pages,
                manifest.counts.records + r.records
            ));
        }
        add_result(
            manifest,
            summaries.entry(tenant.clone()).or_default(),
            sub,
            r,
        );
    }
    drop(results);
    if let Ok(b) = bar.into_inner() {
        b.finish();
    }
    Ok(())
}

/// One subscription's pull into its customer's summary and the manifest.
fn add_result(manifest: &mut PullManifest, s: &mut CustomerSummary, sub: &str, r: SubResult) {
    s.pages += r.pages;
    s.records += r.records;
    s.retries += r.retries;
    manifest.counts.pages += r.pages;
    manifest.counts.records += r.records;
    manifest.counts.windows += r.windows;
    manifest.counts.smaller_later_records += r.smaller;
    manifest.warnings.extend(r.warnings);
    match r.failure {
        None => {
            s.subscriptions_pulled += 1;
            manifest.counts.subscriptions_pulled += 1;
        }
        Some(f) => {
            s.subscriptions_failed += 1;
            manifest.counts.subscriptions_failed += 1;
            manifest.failures.push(format!("{}/{sub}: {f}", r.tenant));
        }
    }
}

/// Errors that stop the whole run rather than one subscription.
fn is_fatal(e: &Error) -> bool {
    !matches!(
        e,
        Error::Pull(PullError::Request { .. }) | Error::Pull(PullError::BadPage { .. })
    )
}

fn dir_of(tenant: &str, sub: &str) -> String {
    format!("customers/{tenant}/subscriptions/{sub}/utilizations/azure")
}

/// Pull one subscription's planned windows. `Err` only for what stops the run; a failing
/// request is this subscription's `failure`.
async fn pull_subscription(ctx: &Ctx<'_>, tenant: &str, sub: &str) -> Result<SubResult> {
    let mut res = SubResult {
        tenant: tenant.to_string(),
        ..Default::default()
    };
    let dir_rel = dir_of(tenant, sub);
    writer::recover(ctx.out, &dir_rel)?;
    let key = state::key(tenant, sub);
    let windows = {
        let mut st = ctx.state.lock().map_err(|_| poisoned())?;
        let entry = st.subscriptions.entry(key.clone()).or_default();
        let w = state::plan(Some(&*entry), ctx.opts.from, ctx.opts.to, ctx.opts.overlap);
        entry.pending = w.clone();
        save_state(ctx.out, &st)?;
        w
    };
    let mut earlier = match windows.first() {
        Some(w) => earlier_quantities(&ctx.out.root().join(&dir_rel), w.start),
        None => BTreeMap::new(),
    };
    for w in windows {
        match pull_window(ctx, tenant, sub, &dir_rel, &w, &mut res, &mut earlier).await {
            Ok(()) => {}
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                res.failure = Some(e.to_string());
                return Ok(res);
            }
        }
        crate::faults::maybe_crash("pull-window");
        let mut st = ctx.state.lock().map_err(|_| poisoned())?;
        let entry = st.subscriptions.entry(key.clone()).or_default();
        entry.complete_until = Some(entry.complete_until.map_or(w.end, |c| c.max(w.end)));
        entry.pending.retain(|p| *p != w);
        save_state(ctx.out, &st)?;
        res.windows += 1;
    }
    Ok(res)
}

fn poisoned() -> Error {
    Error::Unbalanced {
        stage: "pull".into(),
        detail: "the state lock was poisoned by a panic".into(),
    }
}

async fn pull_window(
    ctx: &Ctx<'_>,
    tenant: &str,
    sub: &str,
    dir_rel: &str,
    w: &Window,
    res: &mut SubResult,
    earlier: &mut Quantities,
) -> Result<()> {
    let name = w.name();
    let (start, end) = w.query_times();
    let base = ctx.endpoints.pc_v1();
    let url = base
        .join(&format!(
            "customers/{tenant}/subscriptions/{sub}/utilizations/azure?start_time={start}&end_time={end}&granularity=daily&show_details=true&size={PAGE_SIZE}"
        ))
        .map_err(|e| PullError::BadPage {
            endpoint: dir_rel.to_string(),
            detail: e.to_string(),
        })?;
    let mut set = PageSet::begin(
        ctx.out,
        dir_rel,
        &name,
        Naming {
            first: None,
            prefix: format!("{name}-page-"),
            width: 4,
        },
    )?;
    let (mut pages, mut records, mut retries, mut smaller) = (0u64, 0u64, 0u64, 0u64);
    let mut warnings = Vec::new();
    for_each_page(
        ctx.client,
        Some(ctx.auth),
        Request::get(url),
        &Paging::Links(base),
        |page| {
            pages += 1;
            records += page.items as u64;
            retries += u64::from(page.attempts.saturating_sub(1));
            warnings.extend(page.warning.clone());
            smaller += compare_quantities(&page.body, &name, earlier);
            set.add(page.number, &page.body)
        },
    )
    .await?;
    set.commit()?;
    res.pages += pages;
    res.records += records;
    res.retries += retries;
    res.smaller += smaller;
    res.warnings.extend(warnings);
    Ok(())
}

/// Natural key of a record (inputs.md §1, within one subscription) -> (window, quantity).
type Quantities = BTreeMap<String, (String, Dec10)>;

#[derive(Deserialize)]
struct QtyPage<'a> {
    #[serde(borrow, default)]
    items: Vec<QtyRecord<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QtyRecord<'a> {
    #[serde(default)]
    usage_start_time: String,
    #[serde(default)]
    usage_end_time: String,
    #[serde(default)]
    resource: Option<QtyResource>,
    #[serde(borrow, default)]
    quantity: Option<&'a RawValue>,
    #[serde(default)]
    instance_data: Option<QtyInstance>,
}

#[derive(Deserialize)]
struct QtyResource {
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QtyInstance {
    #[serde(default)]
    resource_uri: Option<String>,
    #[serde(default)]
    additional_info: Option<serde_json::Value>,
}

/// Count the page's records whose key an earlier window had with a larger quantity, and
/// remember the page's quantities. Records that do not parse are left to `ingest`.
fn compare_quantities(body: &[u8], window: &str, seen: &mut Quantities) -> u64 {
    let Ok(page) = serde_json::from_slice::<QtyPage>(body) else {
        return 0;
    };
    let mut smaller = 0;
    for r in page.items {
        let Some(q) = r.quantity.and_then(|q| Dec10::parse(q.get()).ok()) else {
            continue;
        };
        let (uri, info) = match &r.instance_data {
            Some(i) => (
                i.resource_uri.clone().unwrap_or_default().to_lowercase(),
                i.additional_info
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        let key = format!(
            "{}|{uri}|{}|{}|{info}",
            r.resource.map(|x| x.id.to_lowercase()).unwrap_or_default(),
            r.usage_start_time,
            r.usage_end_time
        );
        if let Some((w, old)) = seen.get(&key) {
            if w != window && q < *old {
                smaller += 1;
            }
        }
        seen.insert(key, (window.to_string(), q));
    }
    smaller
}

/// Quantities of the windows already in `dir` that end after `from` (the ones a new window
/// can overlap), oldest first.
fn earlier_quantities(dir: &std::path::Path, from: chrono::DateTime<chrono::Utc>) -> Quantities {
    let mut seen = Quantities::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return seen;
    };
    let mut files: Vec<(String, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (stem, _) = name.split_once("-page-")?;
            let w = Window::parse_name(stem)?;
            (w.end > from).then(|| (name, e.path()))
        })
        .collect();
    files.sort();
    for (name, path) in files {
        if let Ok(bytes) = std::fs::read(&path) {
            let stem = name.split_once("-page-").map(|s| s.0).unwrap_or("");
            compare_quantities(&bytes, stem, &mut seen);
        }
    }
    seen
}

/// `--dry-run`: the requests a pull would start with and the windows of the subscriptions
/// the state knows.
pub fn describe(opts: &PullOptions, endpoints: &Endpoints) -> Result<Vec<String>> {
    let base = endpoints.pc_v1();
    let mut lines = vec![format!("GET {}customers?size=100 -> customers.json", base)];
    let registered = match &opts.lake {
        Some(l) if !opts.all_customers => Some(registered_tenants(l)?),
        _ => None,
    };
    match &registered {
        None => lines.push("then every customer's subscriptions (--all-customers)".into()),
        Some(r) => {
            for t in r {
                lines.push(format!(
                    "GET {base}customers/{t}/subscriptions -> subscriptions/{t}.json"
                ));
            }
        }
    }
    let st = load_state(&opts.out)?;
    for (key, s) in &st.subscriptions {
        let tenant = key.split('/').next().unwrap_or("");
        if registered.as_ref().is_some_and(|r| !r.contains(tenant)) {
            continue;
        }
        for w in state::plan(Some(s), opts.from, opts.to, opts.overlap) {
            let (a, b) = w.query_times();
            lines.push(format!(
                "GET {base}customers/{key}/utilizations/azure?start_time={a}&end_time={b}&... -> {}/{}-page-NNNN.json",
                dir_of(tenant, key.split('/').nth(1).unwrap_or("")),
                w.name()
            ));
        }
    }
    let new = state::split(opts.from, opts.to);
    lines.push(format!(
        "a legacy Azure subscription not in {STATE_FILE} yet: {} window(s) from {} to {}",
        new.len(),
        opts.from.format("%Y-%m-%dT%H:%M:%SZ"),
        opts.to.format("%Y-%m-%dT%H:%M:%SZ")
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaller_later_quantities_are_counted_across_windows_only() {
        let page = |q: &str| {
            format!(
                r#"{{"items":[{{"usageStartTime":"2026-01-05T00:00:00Z","usageEndTime":"2026-01-06T00:00:00Z","resource":{{"id":"A"}},"quantity":{q},"instanceData":{{"resourceUri":"/x","additionalInfo":{{"b":"1","a":"2"}}}}}}]}}"#
            )
        };
        let mut seen = Quantities::new();
        assert_eq!(
            compare_quantities(page("2.5").as_bytes(), "w1", &mut seen),
            0
        );
        assert_eq!(
            compare_quantities(page("1.0").as_bytes(), "w1", &mut seen),
            0
        );
        assert_eq!(
            compare_quantities(page("0.5").as_bytes(), "w2", &mut seen),
            1
        );
        assert_eq!(compare_quantities(page("7").as_bytes(), "w3", &mut seen), 0);
        assert_eq!(compare_quantities(b"not json", "w4", &mut seen), 0);
    }
}
