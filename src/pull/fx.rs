//! `pull fx`: Microsoft's monthly FX file
//! (`GET {CSPCOST_PARTNER_API_URL}/v1.0/sales/fxrates(Month='YYYYMM')/$value`) with an
//! App+User token, saved as `reference/fx_rates_<YYYYMM>.csv` exactly as received.

use super::auth::TokenSource;
use super::http::{Client, Request};
use super::writer::{OutDir, PullManifest};
use super::{Endpoints, PullError, PullOptions};
use crate::error::Result;
use url::Url;

/// The FX URL of one month (`YYYYMM`).
pub fn url(endpoints: &Endpoints, month: &str) -> Result<Url> {
    endpoints
        .partner_api
        .join(&format!("v1.0/sales/fxrates(Month='{month}')/$value"))
        .map_err(|e| {
            PullError::BadPage {
                endpoint: "fx rates".into(),
                detail: e.to_string(),
            }
            .into()
        })
}

/// Pull every month asked for.
pub async fn pull_fx(
    client: &Client,
    endpoints: &Endpoints,
    opts: &PullOptions,
    out: &OutDir,
    manifest: &mut PullManifest,
) -> Result<()> {
    let auth = TokenSource::partner_api(&endpoints.login)?;
    for m in &opts.months {
        let req = Request::get(url(endpoints, m)?);
        let resp = client.send_ok(&req, Some(&auth)).await?;
        let rows = resp
            .body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        if rows < 2 {
            manifest
                .warnings
                .push(format!("{}: the FX file has no rate rows", req.endpoint()));
        }
        out.write_file(&format!("reference/fx_rates_{m}.csv"), &resp.body)?;
        manifest.counts.pages += 1;
        manifest.counts.records += rows.saturating_sub(1) as u64;
    }
    Ok(())
}
