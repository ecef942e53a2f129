#!/usr/bin/env python3
"""Hand-check of the sample statements (sample_data/README.md §E.6) with Python `decimal` only.

Direct organizations: the per-(subscription, meter, month) BilledCost sums of §E.5 grouped by
service, plus the reservation charges of §E.4. Reseller add-on (sample_data/reseller/): rated
from the raw usage (D2 v3 at 0.096 USD/hour, one tier), FX EUR 2026-01 1.0854, reseller r-blue
+4 % consumption / +3 % reservations, tailspin +12 % / +5 %, wingtip -2 %.
Every line is rounded once to the minor unit, half away from zero; the rounding line closes
the gap to the rows' exact sum rounded once.
"""
from decimal import Decimal as D, ROUND_HALF_UP, getcontext

getcontext().prec = 60
TEN = D("0.0000000001")


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


# §E.5, BilledCost per (sub, meter, month); services from the price files.
SERVICE = {"BW": "Bandwidth", "STORAGE": "Storage", "D2V3": "Virtual Machines",
           "LA": "Log Analytics", "WEBTEST": "Azure Monitor", "PIP": "Virtual Network",
           "ACA": "Azure Container Apps"}
E5 = [
    ("adatum", "BW", "2026-01", "4.2685640000"), ("adatum", "BW", "2026-02", "2.4548000000"),
    ("adatum", "D2V3", "2026-01", "50.6880000000"), ("adatum", "D2V3", "2026-02", "34.5600000000"),
    ("adatum", "ACA", "2026-02", "41.1120000000"), ("adatum", "D2V3", "2026-01", "0.9600000000"),
    ("contoso", "BW", "2026-01", "12.9538073523"), ("contoso", "BW", "2026-02", "4.4765820203"),
    ("contoso", "STORAGE", "2026-01", "191.7522874624"), ("contoso", "STORAGE", "2026-02", "93.7961185615"),
    ("contoso", "D2V3", "2026-01", "72.3847429542"), ("contoso", "D2V3", "2026-02", "35.2326228000"),
    ("contoso", "LA", "2026-01", "1.4333241202"), ("contoso", "LA", "2026-02", "0.5005560705"),
    ("contoso", "WEBTEST", "2026-01", "2.6709116284"), ("contoso", "WEBTEST", "2026-02", "1.2924745135"),
    ("contoso", "BW", "2026-01", "5.5091129540"), ("contoso", "BW", "2026-02", "2.2872659869"),
    ("contoso", "PIP", "2026-01", "3.7700386965"), ("contoso", "PIP", "2026-02", "1.8350324370"),
    ("contoso", "STORAGE", "2026-01", "6.2025532213"),
    ("fabrikam", "D2V3", "2026-01", "10602.0000000000"), ("fabrikam", "STORAGE", "2026-01", "152370.8270082133"),
]
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
        for o, meter, m, billed in E5:
            if o == org and m == month:
                s = SERVICE[meter]
                by_service[s] = by_service.get(s, D(0)) + D(billed)
        lines = sorted(by_service.items())
        lines += [(d, D(a)) for d, a in RESERVATIONS.get((org, month), [])]
        if lines:
            statement(f"{org} {month}", lines, DIGITS[org])

# Reseller add-on, January 2026.
FX = D("1.0854")
RESELLER_CONS, RESELLER_RES = D(4), D(3)
ORGS = {"tailspin": (D(12), D(5), 10, D(24)), "wingtip": (D(-2), D(0), 5, D("7.5"))}
reseller_lines = []
for org, (adj, res_markup, days, hours) in ORGS.items():
    rc_sum, billed_sum = D(0), D(0)
    for _ in range(days):
        list_cost = r10(hours * D("0.096") / FX)
        rc = r10(list_cost * (1 + RESELLER_CONS / 100))
        rc_sum += rc
        billed_sum += r10(rc * (1 + adj / 100))
    lines = [("Virtual Machines", billed_sum)]
    reseller_lines.append((f"{org}: Virtual Machines", rc_sum))
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
