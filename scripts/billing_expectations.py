#!/usr/bin/env python3
"""Hand-check of the sample statements (sample_data/README.md §E.6) with Python `decimal` only.

Direct organizations: the per-(subscription, meter, month) BilledCost sums of §E.5 grouped by
service, plus the reservation charges of §E.4. A row's service is FOCUS's (outputs.md "FOCUS
conformance"): read from the sample records' resource URIs and mapped through the vendored
FinOps toolkit data/finops-toolkit/Services.csv here, independently of the Rust code. Reseller add-on (sample_data/reseller/): rated
from the raw usage (D2 v3 at 0.096 USD/hour, one tier), FX EUR 2026-01 1.0854, reseller r-blue
+4 % consumption / +3 % reservations, tailspin +12 % / +5 %, wingtip -2 %.
Every line is rounded once to the minor unit, half away from zero; the rounding line closes
the gap to the rows' exact sum rounded once.
"""
import csv
import json
from decimal import Decimal as D, ROUND_HALF_UP, getcontext
from pathlib import Path

getcontext().prec = 60
TEN = D("0.0000000001")
ROOT = Path(__file__).resolve().parent.parent


def r10(x):
    return x.quantize(TEN, rounding=ROUND_HALF_UP)


def minor(x, digits):
    return x.quantize(D(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def statement(name, lines, digits, exact=None):
    """lines: [(description, exact amount)]; prints lines, rounding and total."""
    rounded = [(d, minor(a, digits)) for d, a in lines]
    exact = sum((a for _, a in lines), D(0)) if exact is None else exact
    rounding = minor(exact, digits) - sum((a for _, a in rounded), D(0))
    total = sum((a for _, a in rounded), D(0)) + rounding
    print(f"{name}")
    for d, a in rounded:
        print(f"  {d:<60} {a}")
    print(f"  {'rounding':<60} {rounding}")
    print(f"  {'total':<60} {total}")
    return total


# §A: subscriptions (alias -> ID, organization) and meters (alias -> meter ID).
SUBS = {
    "S-CA1": ("6ad487b8-95fe-47a5-92c2-b86c364426b3", "contoso"),
    "S-CA2": ("fbfcd135-847c-436c-ac68-265a0737f7fd", "contoso"),
    "S-CB1": ("8cb7572d-5f18-4c2b-87bb-c9d39406db04", "contoso"),
    "S-F1": ("89c0b12f-16c9-41b7-9d00-dfa06aeeb48a", "fabrikam"),
    "S-AD1": ("a6ed65ff-25c8-4671-9309-ee09d8c6571a", "adatum"),
    "S-AD2": ("3719a553-3c0b-4b47-866a-dec9c1b41b26", "adatum"),
}
METERS = {
    "STORAGE": "d30c70e3-d029-4dd8-b857-e1f6c8d0cebb", "BW": "8a09ff56-1b50-410f-a959-30227b19001e",
    "D2V3": "a1003d53-cd0c-4eee-bc65-32f5c76e4647", "WEBTEST": "7a3f6840-2231-46a8-9561-7e4268650ace",
    "LA": "3f2809ca-5258-4d08-a3cf-b794ef7b7e28", "PIP": "754f5886-96e6-4038-bd50-1637e01589e2",
    "ACA": "b41f21a8-ec00-4785-8d3a-6aa62af13f39",
}


# Services (outputs.md "FOCUS conformance"): the row's resource type (provider namespace and
# type path of the resource URI) looked up in the FinOps toolkit's Services.csv (of several
# rows of one type, the one whose ConsumedService is the type's namespace, else the first);
# else the price row's serviceName when it is a toolkit ServiceName; else that name (or Other).
def load_services():
    by_type, by_name = {}, {}
    with open(ROOT / "data/finops-toolkit/Services.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name, category = row["ServiceName"].strip(), row["ServiceCategory"].strip()
            if not name or not category:
                continue
            by_type.setdefault(row["ResourceType"].strip().lower(), []).append(
                (row["ConsumedService"].strip().lower(), name))
            by_name.setdefault(name.lower(), name)
    return by_type, by_name


BY_TYPE, BY_NAME = load_services()


def resource_type(uri):
    lower = (uri or "").lower()
    at = lower.rfind("/providers/")
    if at < 0:
        return None
    segs = [s for s in lower[at + len("/providers/"):].split("/") if s]
    if len(segs) < 2:
        return None
    return segs[0] + "/" + "/".join(segs[1::2])


def service_of(uri, price_service):
    rt = resource_type(uri)
    if rt in BY_TYPE:
        rows = BY_TYPE[rt]
        ns = rt.split("/")[0]
        return next((n for c, n in rows if c == ns), rows[0][1])
    name = (price_service or "").strip()
    return BY_NAME.get(name.lower(), name or "Other")


def price_services():
    """meter ID -> the price files' serviceName (rate card: its meter category)."""
    out = {}
    for page in ["retail-prices-page-1.json", "retail-prices-page-2.json"]:
        for it in json.loads((ROOT / "sample_data/prices" / page).read_text())["Items"]:
            out.setdefault(it["meterId"].lower(), it["serviceName"])
    with open(ROOT / "sample_data/prices/price-sheet.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["meterId"].lower(), row["serviceName"])
    for m in json.loads((ROOT / "sample_data/prices/ratecard.json").read_text())["meters"]:
        out.setdefault(m["id"].lower(), m["category"])
    return out


def usage_records():
    """(subscription, meter ID, resource URI) of every usage record of the samples."""
    for page in sorted((ROOT / "sample_data/usage").glob("dump-*/customers/*/subscriptions/*/utilizations/azure/*.json")):
        sub = page.parts[page.parts.index("subscriptions") + 1]
        for it in json.loads(page.read_text())["items"]:
            yield sub, it, page
    for nd in [ROOT / "sample_data/usage/dump-2026-01-20/extra/records.ndjson",
               ROOT / "sample_data/reseller/usage/records.ndjson"]:
        for line in nd.read_text().splitlines():
            try:
                it = json.loads(line)
            except ValueError:
                continue  # the deliberately broken lines of §E.1 (quarantined at ingest)
            yield it.get("subscriptionId", ""), it, nd


PRICE_SERVICE = price_services()
SERVICES = {}  # (subscription, meter ID) -> set of services of its records
for sub, it, _ in usage_records():
    meter = ((it.get("resource") or {}).get("id") or "").lower()
    uri = (it.get("instanceData") or {}).get("resourceUri", "")
    SERVICES.setdefault((sub.lower(), meter), set()).add(service_of(uri, PRICE_SERVICE.get(meter)))


def service(sub_id, meter_id):
    found = SERVICES[(sub_id, meter_id)]
    # §E.5 sums are per (subscription, meter): they split by service only if one service.
    assert len(found) == 1, (sub_id, meter_id, found)
    return next(iter(found))


# §E.5, BilledCost per (sub, meter, month).
E5 = [
    ("S-AD1", "BW", "2026-01", "4.2685640000"), ("S-AD1", "BW", "2026-02", "2.4548000000"),
    ("S-AD1", "D2V3", "2026-01", "50.6880000000"), ("S-AD1", "D2V3", "2026-02", "34.5600000000"),
    ("S-AD2", "ACA", "2026-02", "41.1120000000"), ("S-AD2", "D2V3", "2026-01", "0.9600000000"),
    ("S-CA1", "BW", "2026-01", "12.9538073523"), ("S-CA1", "BW", "2026-02", "4.4765820203"),
    ("S-CA1", "STORAGE", "2026-01", "191.7522874624"), ("S-CA1", "STORAGE", "2026-02", "93.7961185615"),
    ("S-CA2", "D2V3", "2026-01", "72.3847429542"), ("S-CA2", "D2V3", "2026-02", "35.2326228000"),
    ("S-CA2", "LA", "2026-01", "1.4333241202"), ("S-CA2", "LA", "2026-02", "0.5005560705"),
    ("S-CA2", "WEBTEST", "2026-01", "2.6709116284"), ("S-CA2", "WEBTEST", "2026-02", "1.2924745135"),
    ("S-CB1", "BW", "2026-01", "5.5091129540"), ("S-CB1", "BW", "2026-02", "2.2872659869"),
    ("S-CB1", "PIP", "2026-01", "3.7700386965"), ("S-CB1", "PIP", "2026-02", "1.8350324370"),
    ("S-CB1", "STORAGE", "2026-01", "6.2025532213"),
    ("S-F1", "D2V3", "2026-01", "10602.0000000000"), ("S-F1", "STORAGE", "2026-01", "152370.8270082133"),
]
print("services of the rated (subscription, meter) pairs:")
for alias, meter in sorted({(s, m) for s, m, _, _ in E5}):
    sub_id = SUBS[alias][0]
    uris = {(it.get("instanceData") or {}).get("resourceUri", "") for s, it, _ in usage_records()
            if s.lower() == sub_id and ((it.get("resource") or {}).get("id") or "").lower() == METERS[meter]}
    types = sorted({resource_type(u) or "(no resource URI: price serviceName "
                    f"{PRICE_SERVICE[METERS[meter]]!r})" for u in uris})
    print(f"  {alias:<6} {meter:<8} {', '.join(types):<55} -> {service(sub_id, METERS[meter])}")
# §E.4 reservation charges by (org, month).
RESERVATIONS = {
    ("contoso", "2026-01"): [("ord-0001 1 of 12", "177.56")],
    ("contoso", "2026-02"): [("ord-0001 2 of 12", "177.56"), ("ord-0004 1 of 1", "1258.59")],
    ("fabrikam", "2026-01"): [("ord-0003 1 of 36", "7049")],
    ("fabrikam", "2026-02"): [("ord-0003 2 of 36", "7049")],
    ("adatum", "2026-02"): [("ord-0002 1 of 1", "1401.60")],
}
DIGITS = {"contoso": 2, "adatum": 2, "fabrikam": 0}
for month in ["2026-01", "2026-02"]:
    for org in ["adatum", "contoso", "fabrikam"]:
        by_service = {}
        for alias, meter, m, billed in E5:
            sub_id, o = SUBS[alias]
            if o == org and m == month:
                s = service(sub_id, METERS[meter])
                by_service[s] = by_service.get(s, D(0)) + D(billed)
        lines = sorted(by_service.items())
        lines += [(d, D(a)) for d, a in RESERVATIONS.get((org, month), [])]
        if lines:
            statement(f"{org} {month}", lines, DIGITS[org])

# Reseller add-on, January 2026.
FX = D("1.0854")
RESELLER_CONS, RESELLER_RES = D(4), D(3)
ORGS = {"tailspin": (D(12), D(5), 10, D(24), "f3c7d0de-1111-4c2a-9e3b-000000000001"),
        "wingtip": (D(-2), D(0), 5, D("7.5"), "f4d8e0de-2222-4d3b-8f4c-000000000002")}
reseller_lines = []
for org, (adj, res_markup, days, hours, sub_id) in ORGS.items():
    svc = service(sub_id, METERS["D2V3"])
    print(f"  {org}: D2V3 on {sub_id} -> {svc}")
    rc_sum, billed_sum = D(0), D(0)
    for _ in range(days):
        list_cost = r10(hours * D("0.096") / FX)
        rc = r10(list_cost * (1 + RESELLER_CONS / 100))
        rc_sum += rc
        billed_sum += r10(rc * (1 + adj / 100))
    lines = [(svc, billed_sum)]
    reseller_lines.append((f"{org}: {svc}", rc_sum))
    if org == "tailspin":
        # ord-1001: 1 x P1Y OneTime D2 v3 at 700.80 USD.
        purchase = minor(D("700.80") / FX, 2)
        reseller_unit = minor(purchase * (1 + RESELLER_RES / 100), 2)
        sell = minor(reseller_unit * (1 + res_markup / 100), 2)
        print(f"ord-1001: purchase {purchase}, reseller unit {reseller_unit}, sell {sell}")
        lines.append(("ord-1001 1 of 1", sell))
        reseller_lines.append(("tailspin: ord-1001 1 of 1", reseller_unit))
    statement(f"{org} 2026-01 (x_ResellerCost {rc_sum}, BilledCost {billed_sum})", lines, 2)
statement("r-blue 2026-01 (reseller)", reseller_lines, 2)
