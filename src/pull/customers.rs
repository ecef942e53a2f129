//! Partner Center customers and their subscriptions (`GET /v1/customers`,
//! `GET /v1/customers/{tenant}/subscriptions`). From the pages only what selection needs is
//! read: a customer's tenant, name and domain; a subscription's ID and offer.

use super::auth::TokenSource;
use super::http::{Client, Request};
use super::paging::{for_each_page, Paging};
use super::writer::{Naming, OutDir, PageSet};
use super::{Endpoints, PullError};
use crate::error::Result;
use crate::model::reference::Reference;
use serde::Deserialize;

/// The offer of legacy Azure CSP subscriptions, the only ones with utilization.
pub const LEGACY_AZURE_OFFER: &str = "MS-AZR-0145P";

/// A Partner Center customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// Tenant GUID, lowercase (`companyProfile.tenantId`, else `id`).
    pub tenant: String,
    /// `companyProfile.companyName`.
    pub company: String,
    /// `companyProfile.domain`.
    pub domain: String,
}

/// A customer's subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Subscription GUID, lowercase.
    pub id: String,
    /// `offerId` as given.
    pub offer_id: String,
}

impl Subscription {
    /// Whether it has Azure utilization (legacy Azure CSP, offer compared case-insensitively).
    pub fn is_legacy_azure(&self) -> bool {
        self.offer_id
            .trim()
            .eq_ignore_ascii_case(LEGACY_AZURE_OFFER)
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Items<T> {
    #[serde(default)]
    items: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerItem {
    #[serde(default)]
    id: String,
    #[serde(default)]
    company_profile: Option<CompanyProfile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompanyProfile {
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    domain: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionItem {
    #[serde(default)]
    id: String,
    #[serde(default)]
    offer_id: String,
}

fn bad(endpoint: &str, e: impl std::fmt::Display) -> crate::Error {
    PullError::BadPage {
        endpoint: endpoint.to_string(),
        detail: e.to_string(),
    }
    .into()
}

/// Every customer, pages saved (when `out` is given) as `customers.json`,
/// `customers-page-0002.json`, ...; returns the customers, pages and records.
pub async fn list_customers(
    client: &Client,
    auth: &TokenSource,
    endpoints: &Endpoints,
    out: Option<&OutDir>,
) -> Result<(Vec<Customer>, u64)> {
    let base = endpoints.pc_v1();
    let first = Request::get(
        base.join("customers?size=100")
            .map_err(|e| bad("customers", e))?,
    );
    let endpoint = first.endpoint();
    let mut set = match out {
        Some(o) => Some(PageSet::begin(
            o,
            "",
            "customers",
            Naming {
                first: Some("customers.json".into()),
                prefix: "customers-page-".into(),
                width: 4,
            },
        )?),
        None => None,
    };
    let mut customers = Vec::new();
    let pages = for_each_page(client, Some(auth), first, &Paging::Links(base), |page| {
        let parsed: Items<CustomerItem> =
            serde_json::from_slice(&page.body).map_err(|e| bad(&endpoint, e))?;
        for c in parsed.items {
            let profile = c.company_profile;
            let tenant = profile
                .as_ref()
                .and_then(|p| p.tenant_id.clone())
                .filter(|t| !t.is_empty())
                .unwrap_or(c.id);
            let Some(tenant) = crate::model::ids::normalize_guid(&tenant) else {
                return Err(bad(
                    &endpoint,
                    format!("customer tenant '{tenant}' is not a GUID"),
                ));
            };
            customers.push(Customer {
                tenant,
                company: profile
                    .as_ref()
                    .and_then(|p| p.company_name.clone())
                    .unwrap_or_default(),
                domain: profile.and_then(|p| p.domain).unwrap_or_default(),
            });
        }
        if let Some(s) = set.as_mut() {
            s.add(page.number, &page.body)?;
        }
        Ok(())
    })
    .await?;
    if let Some(s) = set {
        s.commit()?;
    }
    Ok((customers, pages as u64))
}

/// A customer's subscriptions, pages saved as `subscriptions/<tenant>.json`,
/// `subscriptions/<tenant>-page-0002.json`, ...; returns them and the retries it took.
pub async fn list_subscriptions(
    client: &Client,
    auth: &TokenSource,
    endpoints: &Endpoints,
    out: &OutDir,
    tenant: &str,
) -> Result<(Vec<Subscription>, u64)> {
    let base = endpoints.pc_v1();
    let first = Request::get(
        base.join(&format!("customers/{tenant}/subscriptions"))
            .map_err(|e| bad(tenant, e))?,
    );
    let endpoint = first.endpoint();
    let mut set = PageSet::begin(
        out,
        "subscriptions",
        tenant,
        Naming {
            first: Some(format!("{tenant}.json")),
            prefix: format!("{tenant}-page-"),
            width: 4,
        },
    )?;
    let mut subs = Vec::new();
    let mut retries = 0u64;
    for_each_page(client, Some(auth), first, &Paging::Links(base), |page| {
        retries += u64::from(page.attempts.saturating_sub(1));
        let parsed: Items<SubscriptionItem> =
            serde_json::from_slice(&page.body).map_err(|e| bad(&endpoint, e))?;
        for s in parsed.items {
            let Some(id) = crate::model::ids::normalize_guid(&s.id) else {
                return Err(bad(
                    &endpoint,
                    format!("subscription ID '{}' is not a GUID", s.id),
                ));
            };
            subs.push(Subscription {
                id,
                offer_id: s.offer_id,
            });
        }
        set.add(page.number, &page.body)
    })
    .await?;
    set.commit()?;
    Ok((subs, retries))
}

/// A customer as `tenants discover` prints it.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The customer.
    pub customer: Customer,
    /// Organization it is registered to, if any.
    pub organization: Option<String>,
}

/// Every Partner Center customer with its registration (nothing written).
pub async fn discover(
    client: &Client,
    endpoints: &Endpoints,
    reference: &Reference,
) -> Result<Vec<Discovered>> {
    let auth = TokenSource::partner_center(&endpoints.login)?;
    let (customers, _) = list_customers(client, &auth, endpoints, None).await?;
    Ok(customers
        .into_iter()
        .map(|c| Discovered {
            organization: reference
                .tenants
                .get(&c.tenant)
                .map(|t| t.organization_id.clone()),
            customer: c,
        })
        .collect())
}
