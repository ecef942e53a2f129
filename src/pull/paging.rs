//! The one paging loop of every endpoint (pull.md, paging). A page is handed to the caller's
//! sink exactly as received; from its JSON only what finds the next page is read, plus the
//! item count for the summary:
//! - [`Paging::Links`] (Partner Center): `links.next.uri` (relative to
//!   `{CSPCOST_PARTNER_CENTER_URL}/v1/` unless it starts with `/` or `http`) with
//!   `links.next.headers` (`MS-ContinuationToken`) sent on the next request;
//! - [`Paging::Offset`] (invoice line items): `offset` advanced by the items received, until
//!   a page is short or has no `links.next`;
//! - [`Paging::NextPageLink`] (Retail Prices): the absolute `NextPageLink`, followed as given
//!   (also from a page with no items), until it is `null`.

use super::auth::TokenSource;
use super::http::{Client, Request};
use super::PullError;
use crate::error::Result;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

/// How an endpoint pages.
#[derive(Clone, Debug)]
pub enum Paging {
    /// `links.next`, relative URIs resolved against this base (`{PC}/v1/`).
    Links(Url),
    /// `offset=N&size=S` query parameters.
    Offset {
        /// Items asked per page.
        size: usize,
    },
    /// `NextPageLink`.
    NextPageLink,
}

/// A page as received.
#[derive(Debug)]
pub struct Page {
    /// 1-based, in the order fetched.
    pub number: usize,
    /// The body, byte for byte.
    pub body: Bytes,
    /// Items on the page (`items` or `Items`).
    pub items: usize,
    /// Attempts the request took.
    pub attempts: u32,
    /// A `Count`/`totalCount`-style disagreement, for the manifest's warnings.
    pub warning: Option<String>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    items: Option<Vec<IgnoredAny>>,
    #[serde(default, rename = "Items")]
    items_upper: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    links: Option<Links>,
    #[serde(default, rename = "NextPageLink")]
    next_page_link: Option<String>,
    #[serde(default, rename = "Count")]
    count: Option<serde_json::Number>,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<NextLink>,
}

#[derive(Deserialize)]
struct NextLink {
    uri: String,
    #[serde(default)]
    headers: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

/// Fetch every page starting at `first`, handing each to `sink` in order; returns the
/// number of pages. A response without content (`204` with no `Retry-After`) ends the
/// pages without one.
pub async fn for_each_page(
    client: &Client,
    auth: Option<&TokenSource>,
    first: Request,
    paging: &Paging,
    mut sink: impl FnMut(Page) -> Result<()>,
) -> Result<usize> {
    let mut req = first;
    let mut number = 0usize;
    let mut offset = 0usize;
    loop {
        let resp = client.send_ok(&req, auth).await?;
        if resp.status == 204 || resp.body.is_empty() {
            return Ok(number);
        }
        let probe: Probe = serde_json::from_slice(&resp.body).map_err(|e| PullError::BadPage {
            endpoint: req.endpoint(),
            detail: format!("expected a JSON page of items: {e}"),
        })?;
        let items = probe
            .items
            .as_ref()
            .or(probe.items_upper.as_ref())
            .map(Vec::len)
            .ok_or_else(|| PullError::BadPage {
                endpoint: req.endpoint(),
                detail: "the page has no items array".into(),
            })?;
        let warning = probe.count.as_ref().and_then(|c| {
            (c.as_u64() != Some(items as u64)).then(|| {
                format!(
                    "{}: Count {c} but {items} items on the page",
                    req.endpoint()
                )
            })
        });
        if let Paging::Offset { .. } = paging {
            offset += items;
        }
        let next = next_request(paging, probe, &req, items, offset)?;
        number += 1;
        sink(Page {
            number,
            body: resp.body,
            items,
            attempts: resp.attempts,
            warning,
        })?;
        match next {
            Some(n) => req = n,
            None => return Ok(number),
        }
    }
}

/// The request of the page after `req`'s (which held `items` items, `offset` in all so
/// far), or `None` after the last page.
fn next_request(
    paging: &Paging,
    probe: Probe,
    req: &Request,
    items: usize,
    offset: usize,
) -> Result<Option<Request>> {
    Ok(match paging {
        Paging::Links(base) => match probe.links.and_then(|l| l.next) {
            None => None,
            Some(n) => Some(Request {
                method: reqwest::Method::GET,
                url: resolve(base, &n.uri, req)?,
                headers: n.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                form: None,
            }),
        },
        Paging::Offset { size } => {
            let more = items >= *size && probe.links.and_then(|l| l.next).is_some();
            more.then(|| with_offset(&req.url, offset))
        }
        Paging::NextPageLink => match probe.next_page_link.filter(|l| !l.is_empty()) {
            None => None,
            Some(link) => Some(Request::get(Url::parse(&link).map_err(|e| {
                PullError::BadPage {
                    endpoint: req.endpoint(),
                    detail: format!("NextPageLink '{link}' is not a URL: {e}"),
                }
            })?)),
        },
    })
}

/// `url` with its `offset` query parameter (moved to the end) set to `offset`.
fn with_offset(url: &Url, offset: usize) -> Request {
    let mut url = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "offset")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("offset", &offset.to_string());
    Request::get(url)
}

/// Resolve a `links.next.uri`: absolute as is, `/...` against the host, anything else
/// against `{PC}/v1/` (which is what [`Url::join`] does with a base ending in `/v1/`).
fn resolve(base: &Url, uri: &str, from: &Request) -> Result<Url> {
    base.join(uri.trim()).map_err(|e| {
        PullError::BadPage {
            endpoint: from.endpoint(),
            detail: format!("links.next.uri '{uri}' cannot be resolved: {e}"),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_resolve_like_partner_center() {
        let base = Url::parse("https://api.partnercenter.microsoft.com/v1/").unwrap();
        let r = Request::get(base.clone());
        assert_eq!(
            resolve(&base, "customers/x/subscriptions/y/utilizations/azure?seek_operation=Next", &r)
                .unwrap()
                .as_str(),
            "https://api.partnercenter.microsoft.com/v1/customers/x/subscriptions/y/utilizations/azure?seek_operation=Next"
        );
        assert_eq!(
            resolve(&base, "/v1/customers?size=2&seekOperation=Next", &r)
                .unwrap()
                .as_str(),
            "https://api.partnercenter.microsoft.com/v1/customers?size=2&seekOperation=Next"
        );
        assert_eq!(
            resolve(&base, "http://127.0.0.1:9/v1/x", &r)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v1/x"
        );
    }

    #[test]
    fn probes_read_the_samples() {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/samples/utilization-classic-paged.json"
        ))
        .unwrap();
        let p: Probe = serde_json::from_slice(&text).unwrap();
        assert_eq!(p.items.unwrap().len(), 1);
        let n = p.links.unwrap().next.unwrap();
        assert_eq!(n.headers[0].key, "MS-ContinuationToken");
        assert_eq!(n.headers[0].value, "opaque-token");
    }
}
