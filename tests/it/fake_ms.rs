//! A fake Microsoft for the pull tests: Entra's token endpoint, Partner Center (customers,
//! subscriptions, utilization, rate card, invoices), the Partner API FX file and the Azure
//! Retail Prices API, served by axum on 127.0.0.1 (a free port) from one background thread.
//! It pages the way the documentation says (links.next with MS-ContinuationToken,
//! NextPageLink, offset paging), injects one-shot faults (204 + Retry-After, 429, 500,
//! 401) and logs every request so tests can check headers.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The app's credentials the fake accepts.
pub const TENANT: &str = "partner.onmicrosoft.com";
pub const CLIENT_ID: &str = "0b1c2d3e-aaaa-4bbb-8ccc-123456789abc";
pub const SECRET: &str = "Sup3r~Secret.Value_xyzzy-42";
/// Every access token the fake issues starts with this (grep outputs for it).
pub const TOKEN_PREFIX: &str = "eyJfakeAccessToken";
/// Every refresh token the fake issues starts with this.
pub const REFRESH_PREFIX: &str = "0.ARfakeRefreshToken";

/// A logged request.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub request_id: String,
    pub correlation_id: String,
    pub continuation: String,
    pub status: u16,
    /// Body of a 200 answer.
    pub body: Vec<u8>,
}

/// A one-shot fault: the next `times` requests whose path contains `path` get `status`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub path: String,
    pub status: u16,
    pub retry_after: Option<String>,
    pub times: usize,
}

/// A utilization record with the day it was reported to billing.
#[derive(Clone, Debug)]
pub struct Usage {
    pub reported: NaiveDate,
    /// The record's JSON text, served verbatim.
    pub json: String,
}

/// What the fake serves.
#[derive(Default)]
pub struct World {
    /// (tenant, company, domain).
    pub customers: Vec<(String, String, String)>,
    pub customers_page_size: usize,
    /// tenant -> (subscription, offerId).
    pub subscriptions: BTreeMap<String, Vec<(String, String)>>,
    /// subscription -> records.
    pub usage: BTreeMap<String, Vec<Usage>>,
    /// Retail Prices pages (JSON text with `NEXT` where NextPageLink goes).
    pub retail_pages: Vec<String>,
    pub ratecard: String,
    pub fx_csv: String,
    /// (invoice id, date, billing provider) -> line items JSON texts.
    pub invoices: Vec<(String, String, String, Vec<String>)>,
    pub faults: Vec<Fault>,
    /// Subscriptions whose utilization always answers 500.
    pub broken: Vec<String>,
    /// Paths that always answer 401.
    pub always_401: Vec<String>,
    pub secret_expired: bool,
    pub refresh_expired: bool,
    /// The refresh token currently valid.
    pub refresh_token: String,
    pub tokens_issued: usize,
    /// `expires_in` of app-only tokens (default 3599).
    pub token_lifetime: Option<u64>,
    pub valid_tokens: Vec<String>,
    pub log: Vec<Logged>,
    pub url: String,
}

/// The running fake.
pub struct Fake {
    pub url: String,
    pub world: Arc<Mutex<World>>,
}

impl Fake {
    /// Start serving `world` on a free port.
    pub fn start(world: World) -> Fake {
        let world = Arc::new(Mutex::new(world));
        let (tx, rx) = std::sync::mpsc::channel();
        let w = world.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tx.send(format!("http://{addr}")).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(w);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let url = rx.recv().unwrap();
        world.lock().unwrap().url = url.clone();
        Fake { url, world }
    }

    /// The environment a pull against this fake needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CSPCOST_LOGIN_URL".into(), self.url.clone()),
            ("CSPCOST_PARTNER_CENTER_URL".into(), self.url.clone()),
            ("CSPCOST_PARTNER_API_URL".into(), self.url.clone()),
            (
                "CSPCOST_RETAIL_PRICES_URL".into(),
                format!("{}/retail", self.url),
            ),
            ("CSPCOST_PC_TENANT_ID".into(), TENANT.into()),
            ("CSPCOST_PC_CLIENT_ID".into(), CLIENT_ID.into()),
            ("CSPCOST_PC_CLIENT_SECRET".into(), SECRET.into()),
            ("CSPCOST_PC_SECRET_EXPIRES_ON".into(), String::new()),
        ]
    }

    pub fn log(&self) -> Vec<Logged> {
        self.world.lock().unwrap().log.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }
}

fn json(status: u16, body: String) -> (u16, Vec<(&'static str, String)>, String) {
    (
        status,
        vec![("content-type", "application/json".into())],
        body,
    )
}

fn q(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

async fn handle(
    axum::extract::State(world): axum::extract::State<Arc<Mutex<World>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut w = world.lock().unwrap();
    let (status, hdrs, text) = route(
        &mut w,
        &method,
        &path,
        &query,
        &h("authorization"),
        &h("ms-continuationtoken"),
        &body,
    );
    w.log.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        query,
        request_id: h("ms-requestid"),
        correlation_id: h("ms-correlationid"),
        continuation: h("ms-continuationtoken"),
        status,
        body: if status == 200 {
            text.as_bytes().to_vec()
        } else {
            Vec::new()
        },
    });
    drop(w);
    let mut resp = (StatusCode::from_u16(status).unwrap(), text).into_response();
    for (k, v) in hdrs {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

type Answer = (u16, Vec<(&'static str, String)>, String);

fn route(
    w: &mut World,
    method: &Method,
    path: &str,
    query: &str,
    auth: &str,
    continuation: &str,
    body: &[u8],
) -> Answer {
    if path.ends_with("/oauth2/v2.0/token") && method == Method::POST {
        return token(w, path, body);
    }
    if path.starts_with("/retail/api/retail/prices") {
        return retail(w, query);
    }
    // Everything else needs a token the fake issued.
    let token = auth.strip_prefix("Bearer ").unwrap_or("");
    if !w.valid_tokens.iter().any(|t| t == token)
        || w.always_401.iter().any(|p| path.contains(p.as_str()))
    {
        return json(401, r#"{"code":401,"description":"Unauthorized"}"#.into());
    }
    if let Some(i) = w
        .faults
        .iter()
        .position(|f| path.contains(f.path.as_str()) && f.times > 0)
    {
        let f = &mut w.faults[i];
        f.times -= 1;
        let mut hdrs = Vec::new();
        if let Some(r) = &f.retry_after {
            hdrs.push(("retry-after", r.clone()));
        }
        let body = match f.status {
            204 => String::new(),
            429 => r#"{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."}"#.into(),
            401 => r#"{"code":401}"#.into(),
            _ => r#"{"code":500,"description":"Internal server error"}"#.into(),
        };
        return (f.status, hdrs, body);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "customers"] => customers(w, continuation),
        ["v1", "customers", t, "subscriptions"] => subscriptions(w, t),
        ["v1", "customers", t, "subscriptions", s, "utilizations", "azure"] => {
            utilization(w, t, s, query, continuation)
        }
        ["v1", "ratecards", "azure"] => json(200, w.ratecard.clone()),
        ["v1", "invoices"] => invoice_list(w),
        ["v1", "invoices", id, "lineitems"] => lineitems(w, id, query),
        ["v1.0", "sales", fx, "$value"] if fx.starts_with("fxrates(") => {
            if !token.contains("-user-") {
                return json(403, r#"{"error":"App+User token required"}"#.into());
            }
            (
                200,
                vec![("content-type", "text/csv".into())],
                w.fx_csv.clone(),
            )
        }
        _ => json(404, format!(r#"{{"code":404,"path":"{path}"}}"#)),
    }
}

fn token(w: &mut World, path: &str, body: &[u8]) -> Answer {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if !path.starts_with(&format!("/{TENANT}/")) {
        return json(
            400,
            r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found."}"#
                .into(),
        );
    }
    if get("client_id") != CLIENT_ID || get("client_secret") != SECRET {
        return json(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#.into());
    }
    if w.secret_expired {
        return json(
            401,
            format!(
                r#"{{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app '{CLIENT_ID}' are expired. Visit the Azure portal to create new keys for your app.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000222]}}"#
            ),
        );
    }
    w.tokens_issued += 1;
    let n = w.tokens_issued;
    match get("grant_type").as_str() {
        "client_credentials" => {
            if get("scope") != "https://api.partnercenter.microsoft.com/.default" {
                return json(400, r#"{"error":"invalid_scope"}"#.into());
            }
            let t = format!("{TOKEN_PREFIX}-app-{n}");
            let life = w.token_lifetime.unwrap_or(3599);
            w.valid_tokens.push(t.clone());
            json(
                200,
                format!(
                    r#"{{"token_type":"Bearer","expires_in":{life},"ext_expires_in":{life},"access_token":"{t}"}}"#
                ),
            )
        }
        "refresh_token" => {
            if w.refresh_expired {
                return json(400, r#"{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2025-01-01 and was inactive for 90.00:00:00.","error_codes":[700082]}"#.into());
            }
            if get("refresh_token") != w.refresh_token
                || get("scope") != "https://api.partner.microsoft.com/.default"
            {
                return json(400, r#"{"error":"invalid_grant","error_description":"AADSTS9002313: Invalid request."}"#.into());
            }
            let t = format!("{TOKEN_PREFIX}-user-{n}");
            let rt = format!("{REFRESH_PREFIX}-{n}");
            w.valid_tokens.push(t.clone());
            w.refresh_token = rt.clone();
            json(
                200,
                format!(
                    r#"{{"token_type":"Bearer","scope":"https://api.partner.microsoft.com/user_impersonation","expires_in":"3599","access_token":"{t}","refresh_token":"{rt}"}}"#
                ),
            )
        }
        _ => json(400, r#"{"error":"unsupported_grant_type"}"#.into()),
    }
}

/// A Partner Center collection page.
fn collection(items: &[String], total: usize, next: Option<(String, String)>) -> String {
    let links = match next {
        None => String::new(),
        Some((uri, token)) => format!(
            r#","links":{{"next":{{"uri":"{uri}","method":"GET","headers":[{{"key":"MS-ContinuationToken","value":"{token}"}}]}}}}"#
        ),
    };
    format!(
        r#"{{"totalCount":{total},"items":[{}]{links},"attributes":{{"objectType":"Collection"}}}}"#,
        items.join(",")
    )
}

fn customers(w: &World, continuation: &str) -> Answer {
    let start: usize = continuation
        .strip_prefix("cust-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let size = w.customers_page_size.max(1);
    let page: Vec<String> = w
        .customers
        .iter()
        .skip(start)
        .take(size)
        .map(|(t, c, d)| {
            format!(
                r#"{{"id":"{t}","companyProfile":{{"tenantId":"{t}","domain":"{d}","companyName":"{c}","attributes":{{"objectType":"CustomerCompanyProfile"}}}},"relationshipToPartner":"reseller","attributes":{{"objectType":"Customer"}}}}"#
            )
        })
        .collect();
    let end = start + page.len();
    // The absolute-path form of links.next (`/v1/...`), as the customers sample has it.
    let next = (end < w.customers.len()).then(|| {
        (
            "/v1/customers?size=100&seekOperation=Next".to_string(),
            format!("cust-{end}"),
        )
    });
    json(200, collection(&page, page.len(), next))
}

fn subscriptions(w: &World, tenant: &str) -> Answer {
    let items: Vec<String> = w
        .subscriptions
        .get(tenant)
        .map(|subs| {
            subs.iter()
                .map(|(s, offer)| {
                    format!(
                        r#"{{"id":"{s}","entitlementId":"{s}","offerId":"{offer}","offerName":"x","friendlyName":"sub {s}","quantity":1,"status":"active","billingType":"usage","attributes":{{"objectType":"Subscription"}}}}"#
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json(200, collection(&items, items.len(), None))
}

fn utilization(w: &World, tenant: &str, sub: &str, query: &str, continuation: &str) -> Answer {
    if w.broken.iter().any(|b| b == sub) {
        return json(500, r#"{"code":500}"#.into());
    }
    // A continued request carries its window and offset in the token (the URI has neither).
    let (start, end, offset, size) = if !continuation.is_empty() {
        let p: Vec<&str> = continuation.split('|').collect();
        (
            time(p[0]),
            time(p[1]),
            p[2].parse().unwrap(),
            p[3].parse().unwrap(),
        )
    } else {
        let size: usize = q(query, "size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        (
            time(&q(query, "start_time").unwrap()),
            time(&q(query, "end_time").unwrap()),
            0usize,
            size,
        )
    };
    let all: Vec<&Usage> = w
        .usage
        .get(sub)
        .map(|u| {
            u.iter()
                .filter(|r| {
                    let t = r.reported.and_hms_opt(0, 0, 0).unwrap().and_utc();
                    t >= start && t < end
                })
                .collect()
        })
        .unwrap_or_default();
    let page: Vec<String> = all
        .iter()
        .skip(offset)
        .take(size)
        .map(|u| u.json.clone())
        .collect();
    let next_offset = offset + page.len();
    let next = (next_offset < all.len()).then(|| {
        (
            format!(
                "customers/{tenant}/subscriptions/{sub}/utilizations/azure?seek_operation=Next"
            ),
            format!(
                "{}|{}|{next_offset}|{size}",
                start.to_rfc3339(),
                end.to_rfc3339()
            ),
        )
    });
    json(200, collection(&page, page.len(), next))
}

fn retail(w: &World, query: &str) -> Answer {
    let i: usize = q(query, "$skip")
        .and_then(|s| s.parse().ok())
        .map(|s: usize| s / 100)
        .unwrap_or(0);
    let Some(page) = w.retail_pages.get(i) else {
        return json(404, "{}".into());
    };
    let next = if i + 1 < w.retail_pages.len() {
        format!(
            "\"{}/retail/api/retail/prices?api-version=2023-01-01-preview&$skip={}\"",
            w.url,
            (i + 1) * 100
        )
    } else {
        "null".into()
    };
    json(200, page.replace("NEXT", &next))
}

fn invoice_list(w: &World) -> Answer {
    let items: Vec<String> = w
        .invoices
        .iter()
        .map(|(id, date, provider, _)| {
            format!(
                r#"{{"id":"{id}","invoiceDate":"{date}T00:00:00Z","currencyCode":"USD","invoiceDetails":[{{"invoiceLineItemType":"BillingLineItems","billingProvider":"{provider}"}}],"attributes":{{"objectType":"Invoice"}}}}"#
            )
        })
        .collect();
    json(200, collection(&items, items.len(), None))
}

fn lineitems(w: &World, id: &str, query: &str) -> Answer {
    let Some((_, _, _, items)) = w.invoices.iter().find(|i| i.0 == id) else {
        return json(404, "{}".into());
    };
    let size: usize = q(query, "size").and_then(|s| s.parse().ok()).unwrap();
    let offset: usize = q(query, "offset").and_then(|s| s.parse().ok()).unwrap_or(0);
    let page: Vec<String> = items.iter().skip(offset).take(size).cloned().collect();
    let more = offset + page.len() < items.len();
    let next = more.then(|| {
        (
            format!("invoices/{id}/lineitems?provider=azure&invoicelineitemtype=billinglineitems&size={size}&offset={}", offset + page.len()),
            String::new(),
        )
    });
    json(200, collection(&page, page.len(), next))
}
