//! `pull ratecard`: the Partner Center Azure rate card (`GET /v1/ratecards/azure`), one
//! document saved as `prices/ratecard-<currency>-<region>.json`.

use super::auth::TokenSource;
use super::http::{Client, Request};
use super::writer::{OutDir, PullManifest};
use super::{Endpoints, PullError, PullOptions};
use crate::error::Result;
use url::Url;

/// The rate card URL.
pub fn url(endpoints: &Endpoints, opts: &PullOptions) -> Result<Url> {
    let mut url = endpoints
        .pc_v1()
        .join("ratecards/azure")
        .map_err(|e| PullError::BadPage {
            endpoint: "rate card".into(),
            detail: e.to_string(),
        })?;
    url.query_pairs_mut()
        .append_pair("currency", &opts.currency)
        .append_pair("region", &opts.region);
    Ok(url)
}

/// Where it is saved, relative to `--out`.
pub fn file_name(opts: &PullOptions) -> String {
    format!("prices/ratecard-{}-{}.json", opts.currency, opts.region)
}

/// Pull the rate card.
pub async fn pull_ratecard(
    client: &Client,
    endpoints: &Endpoints,
    opts: &PullOptions,
    out: &OutDir,
    manifest: &mut PullManifest,
) -> Result<()> {
    let auth = TokenSource::partner_center(&endpoints.login)?;
    let resp = client
        .send_ok(&Request::get(url(endpoints, opts)?), Some(&auth))
        .await?;
    out.write_file(&file_name(opts), &resp.body)?;
    manifest.counts.pages += 1;
    Ok(())
}
