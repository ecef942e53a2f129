//! `pull prices`: every page of the Azure Retail Prices API (no authentication), followed
//! through `NextPageLink` exactly as given, saved as `prices/retail-NNNNN.json`. The pages
//! of one download become visible together and replace the previous download's pages.

use super::http::{Client, Request};
use super::paging::{for_each_page, Paging};
use super::writer::{Naming, OutDir, PageSet, PullManifest};
use super::{Endpoints, PullError, PullOptions};
use crate::error::Result;
use url::Url;

/// API version asked for (pull.md).
pub const API_VERSION: &str = "2023-01-01-preview";

/// The first page's URL: currency and filter as options say.
pub fn first_url(endpoints: &Endpoints, opts: &PullOptions) -> Result<Url> {
    let mut url = endpoints
        .retail_prices
        .join("api/retail/prices")
        .map_err(|e| PullError::BadPage {
            endpoint: "retail prices".into(),
            detail: e.to_string(),
        })?;
    // Written as Microsoft's examples write it (`$filter`, quotes, `%20` for spaces) rather
    // than form-encoded (`%24filter`, `+`).
    let enc = |v: &str| {
        url::form_urlencoded::byte_serialize(v.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
            .replace("%27", "'")
    };
    url.set_query(Some(&format!(
        "api-version={API_VERSION}&currencyCode='{}'&$filter={}",
        opts.currency,
        enc(&opts.filter)
    )));
    Ok(url)
}

/// Pull every page.
pub async fn pull_prices(
    client: &Client,
    endpoints: &Endpoints,
    opts: &PullOptions,
    out: &OutDir,
    manifest: &mut PullManifest,
) -> Result<()> {
    let mut set = PageSet::begin(
        out,
        "prices",
        "retail",
        Naming {
            first: None,
            prefix: "retail-".into(),
            width: 5,
        },
    )?;
    let (mut records, mut warnings) = (0u64, Vec::new());
    let pages = for_each_page(
        client,
        None,
        Request::get(first_url(endpoints, opts)?),
        &Paging::NextPageLink,
        |page| {
            records += page.items as u64;
            warnings.extend(page.warning.clone());
            set.add(page.number, &page.body)
        },
    )
    .await?;
    set.commit()?;
    manifest.counts.pages += pages as u64;
    manifest.counts.records += records;
    manifest.warnings.extend(warnings);
    crate::progress::log(&format!(
        "pull prices: {pages} pages, {records} price items"
    ));
    Ok(())
}
