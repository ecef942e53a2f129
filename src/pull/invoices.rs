//! `pull invoices`: the partner's invoices (`GET /v1/invoices`) and, for each with an Azure
//! billing provider, its usage-based line items by offset paging, saved as
//! `invoices/<invoice-id>/lineitems-NNNN.json` (the JSON form `reconcile --invoice` reads).

use super::auth::TokenSource;
use super::http::{Client, Request};
use super::paging::{for_each_page, Paging};
use super::writer::{Naming, OutDir, PageSet, PullManifest};
use super::{Endpoints, PullError, PullOptions};
use crate::error::Result;
use serde::Deserialize;

/// Line items asked per page.
pub const PAGE_SIZE: usize = 2000;

#[derive(Deserialize)]
struct InvoiceList {
    #[serde(default)]
    items: Vec<Invoice>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invoice {
    #[serde(default)]
    id: String,
    #[serde(default)]
    invoice_date: Option<String>,
    #[serde(default)]
    invoice_details: Vec<InvoiceDetail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvoiceDetail {
    #[serde(default)]
    billing_provider: String,
}

fn bad(endpoint: &str, e: impl std::fmt::Display) -> crate::Error {
    PullError::BadPage {
        endpoint: endpoint.to_string(),
        detail: e.to_string(),
    }
    .into()
}

fn lineitems_url(endpoints: &Endpoints, id: &str) -> Result<url::Url> {
    endpoints
        .pc_v1()
        .join(&format!(
            "invoices/{id}/lineitems?provider=azure&invoicelineitemtype=billinglineitems&size={PAGE_SIZE}&offset=0"
        ))
        .map_err(|e| bad(id, e))
}

/// Invoices to pull: those given, else every invoice since `--since` with Azure line items.
async fn select(
    client: &Client,
    auth: &TokenSource,
    endpoints: &Endpoints,
    opts: &PullOptions,
) -> Result<Vec<String>> {
    if !opts.invoices.is_empty() {
        return Ok(opts.invoices.clone());
    }
    let req = Request::get(
        endpoints
            .pc_v1()
            .join("invoices")
            .map_err(|e| bad("invoices", e))?,
    );
    let mut ids = Vec::new();
    for_each_page(
        client,
        Some(auth),
        req.clone(),
        &Paging::Links(endpoints.pc_v1()),
        |page| {
            let list: InvoiceList =
                serde_json::from_slice(&page.body).map_err(|e| bad(&req.endpoint(), e))?;
            for inv in list.items {
                let azure = inv
                    .invoice_details
                    .iter()
                    .any(|d| d.billing_provider.eq_ignore_ascii_case("azure"));
                let date = inv
                    .invoice_date
                    .as_deref()
                    .and_then(|d| d.get(..10))
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
                let recent = match (opts.since, date) {
                    (Some(s), Some(d)) => d >= s,
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                if azure && recent && !inv.id.is_empty() {
                    ids.push(inv.id);
                }
            }
            Ok(())
        },
    )
    .await?;
    ids.sort();
    Ok(ids)
}

/// Pull the line items of every selected invoice.
pub async fn pull_invoices(
    client: &Client,
    endpoints: &Endpoints,
    opts: &PullOptions,
    out: &OutDir,
    manifest: &mut PullManifest,
) -> Result<()> {
    let auth = TokenSource::partner_center(&endpoints.login)?;
    let ids = select(client, &auth, endpoints, opts).await?;
    for id in &ids {
        let mut set = PageSet::begin(
            out,
            &format!("invoices/{id}"),
            "lineitems",
            Naming {
                first: None,
                prefix: "lineitems-".into(),
                width: 4,
            },
        )?;
        let mut records = 0u64;
        let pages = for_each_page(
            client,
            Some(&auth),
            Request::get(lineitems_url(endpoints, id)?),
            &Paging::Offset { size: PAGE_SIZE },
            |page| {
                records += page.items as u64;
                set.add(page.number, &page.body)
            },
        )
        .await?;
        set.commit()?;
        manifest.counts.pages += pages as u64;
        manifest.counts.records += records;
    }
    crate::progress::log(&format!(
        "pull invoices: {} invoice(s), {} line items",
        ids.len(),
        manifest.counts.records
    ));
    Ok(())
}

/// `--dry-run`.
pub fn describe(opts: &PullOptions, endpoints: &Endpoints) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    if opts.invoices.is_empty() {
        lines.push(format!(
            "GET {}invoices, then every invoice with Azure line items{}",
            endpoints.pc_v1(),
            opts.since
                .map(|s| format!(" dated {s} or later"))
                .unwrap_or_default()
        ));
    }
    for id in &opts.invoices {
        lines.push(format!(
            "GET {} (offset paging) -> invoices/{id}/lineitems-NNNN.json",
            lineitems_url(endpoints, id)?
        ));
    }
    Ok(lines)
}
