"""The DuckDB peer of cspcost for the benchmark (issue 8) and its correctness test.

What an analyst without cspcost would run over the same files, in DuckDB SQL:

  ingest  PAGES_DIR OUT_DIR        read_json of the Partner Center pages -> unnested, typed,
                                   deduplicated records -> Parquet partitioned by month/bucket
  rate    LAKE MONTH OUT_DIR       the rating of rating.md over cspcost's staged lake (the same
                                   input files `cspcost rate` reads) -> costs Parquet partitioned
                                   like cspcost's costs/ (org=<id>/month=<M>/usage-0.parquet)
  floor   COSTS_DIR OUT_DIR        the I/O floor: the rows `cspcost rate` wrote (all its columns)
                                   copied from Parquet into the same org=/month= partitioning
  check   COSTS_DIR PEER_DIR       every rated row of both outputs, keyed by (x_SourceFile,
                                   x_SourceRow), compared column by column; prints JSON and
                                   exits 1 when anything differs

Options (before the command): --threads N (default: the machine's core count),
--memory-limit SIZE (DuckDB's default otherwise), --temp DIR (spill directory).

Exact arithmetic: DuckDB keeps DECIMAL exact for +, -, * and round() (half away from zero),
but DECIMAL / DECIMAL is a DOUBLE. The three divisions of the rating (unit conversion, FX,
markup) are therefore done on the scaled integers (HUGEINT, 10^10 = 1) with the remainder
deciding the rounding, exactly as rating.md asks.

Scope of this peer: the default options (tier scope `subscription`, tier period
`calendar_month`). Records cspcost would quarantine are left out of the ladders the same way
(no quarantine file is written). `ChargeClass` is null (first publication) and `x_RunId` is
'duckdb'.
"""

import argparse
import json
import os
import sys

import duckdb

ONE = 10_000_000_000  # 10^10, the raw value of 1 at scale 10


def connect(args):
    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET TimeZone = 'UTC'")
    if args.memory_limit:
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
    if args.temp:
        os.makedirs(args.temp, exist_ok=True)
        con.execute(f"SET temp_directory = '{args.temp}'")
    # Rounding of n / d half away from zero on scaled integers (truncating // and %, like i128).
    con.execute(
        """CREATE MACRO div_round(n, d) AS
           CASE WHEN 2 * abs(n % d) >= abs(d)
                THEN n // d + CASE WHEN (n < 0) <> (d < 0) THEN -1 ELSE 1 END
                ELSE n // d END"""
    )
    con.execute(f"CREATE MACRO raw10(x) AS (x * {ONE})::HUGEINT")
    con.execute("CREATE MACRO dec10(r) AS (r::DECIMAL(38,0) * 0.0000000001::DECIMAL(11,10))::DECIMAL(38,10)")
    return con


def q(path):
    return "'" + str(path).replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# ingest: Partner Center pages -> staged Parquet

RECORD_TYPE = (
    "STRUCT(usageStartTime VARCHAR, usageEndTime VARCHAR, "
    "resource STRUCT(id VARCHAR, name VARCHAR, category VARCHAR, subcategory VARCHAR, region VARCHAR), "
    "quantity DECIMAL(38,10), unit VARCHAR, infoFields JSON, "
    "instanceData STRUCT(resourceUri VARCHAR, location VARCHAR, partNumber VARCHAR, orderNumber VARCHAR, "
    "additionalInfo JSON, tags JSON), attributes JSON)"
)


def ingest(con, pages, out):
    # `*.json*`: plain pages and the generator's `--gzip` pages (`.json.gz`, decompressed by
    # read_json from the extension).
    glob = os.path.join(pages, "**", "*.json*")
    con.execute(
        f"""
COPY (
  WITH items AS (
    SELECT filename AS source_file, unnest(items) AS r, generate_subscripts(items, 1) AS source_row
    FROM read_json({q(glob)}, filename = true, format = 'auto',
                   columns = {{'items': '{RECORD_TYPE}[]'}}, maximum_object_size = 67108864)
  ), typed AS (
    SELECT lower(regexp_extract(source_file, '/customers/([^/]+)/', 1)) AS customer_tenant_id,
           lower(regexp_extract(source_file, '/subscriptions/([^/]+)/', 1)) AS subscription_id,
           lower(r.resource.id) AS meter_id,
           r.resource.name AS meter_name, r.resource.category AS meter_category,
           r.resource.subcategory AS meter_subcategory, r.resource.region AS meter_region,
           coalesce(r.instanceData.resourceUri, '') AS resource_uri,
           r.instanceData.location AS location,
           r.instanceData.partNumber AS part_number, r.instanceData.orderNumber AS order_number,
           coalesce(r.instanceData.additionalInfo::VARCHAR, '') AS additional_info,
           coalesce(r.instanceData.tags::VARCHAR, '{{}}') AS tags,
           r.infoFields::VARCHAR AS info_fields,
           nullif(trim(r.unit), '') AS unit,
           r.quantity AS quantity,
           TRY_CAST(r.usageStartTime AS TIMESTAMPTZ) AS usage_start,
           TRY_CAST(r.usageEndTime AS TIMESTAMPTZ) AS usage_end,
           source_file, source_row::BIGINT AS source_row,
           to_json(r)::VARCHAR AS raw
    FROM items
  )
  SELECT *, usage_start::DATE AS usage_date,
         strftime(usage_start, '%Y-%m') AS month,
         lpad((hash(customer_tenant_id) % 16)::VARCHAR, 2, '0') AS bucket
  FROM typed
  WHERE usage_start IS NOT NULL AND usage_end > usage_start AND meter_id IS NOT NULL
    AND quantity IS NOT NULL AND customer_tenant_id <> '' AND subscription_id <> ''
  -- natural key (inputs.md section 1): the first record in path order is kept
  QUALIFY row_number() OVER (
      PARTITION BY customer_tenant_id, subscription_id, meter_id, resource_uri,
                   usage_start, usage_end, additional_info
      ORDER BY source_file, source_row) = 1
) TO {q(out)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (month, bucket),
               FILENAME_PATTERN 'data{{i}}', OVERWRITE_OR_IGNORE)
"""
    )
    n = con.execute(f"SELECT count(*) FROM read_parquet({q(os.path.join(out, '**', '*.parquet'))})").fetchone()[0]
    return {"records": n}


# ---------------------------------------------------------------------------------------------
# rate: the rating of rating.md in SQL


def load_reference(con, lake, month):
    ref = os.path.join(lake, "staged", "reference")
    prices = os.path.join(lake, "staged", "prices", "prices.parquet")
    con.execute(
        f"""CREATE TEMP TABLE orgs AS
            SELECT organization_id, organization_name, billing_currency,
                   coalesce(consumption_adjustment_percent, 0)::DECIMAL(38,10) AS adj
            FROM read_parquet({q(os.path.join(ref, 'organizations.parquet'))})"""
    )
    con.execute(
        f"""CREATE TEMP TABLE tenants AS
            SELECT t.customer_tenant_id, t.organization_id, t.partnership_id,
                   coalesce(p.partnership_name, t.partnership_id) AS partnership_name
            FROM read_parquet({q(os.path.join(ref, 'tenants.parquet'))}) t
            LEFT JOIN read_parquet({q(os.path.join(ref, 'partnerships.parquet'))}) p USING (partnership_id)"""
    )
    # Microsoft's FX rate for the month (USD per unit); USD is 1.
    con.execute(
        f"""CREATE TEMP TABLE fx AS
            SELECT upper(currency_code) AS currency, usd_per_unit
            FROM read_parquet({q(os.path.join(ref, 'fx_rates.parquet'))}) WHERE month = {q(month)}"""
    )
    transfers = os.path.join(ref, "transfers.parquet")
    if os.path.exists(transfers):
        con.execute(
            f"""CREATE TEMP TABLE transfers AS SELECT subscription_id, transferred_in_on
                FROM read_parquet({q(transfers)})"""
        )
    else:
        con.execute("CREATE TEMP TABLE transfers (subscription_id VARCHAR, transferred_in_on DATE)")
    subscriptions = os.path.join(ref, "subscriptions.parquet")
    if os.path.exists(subscriptions):
        con.execute(
            f"""CREATE TEMP TABLE sub_names AS SELECT subscription_id, friendly_name
                FROM read_parquet({q(subscriptions)})"""
        )
    else:
        con.execute("CREATE TEMP TABLE sub_names (subscription_id VARCHAR, friendly_name VARCHAR)")
    # USD pay-as-you-go rows only (rating.md section 3).
    con.execute(
        f"""CREATE TEMP TABLE p AS SELECT * FROM read_parquet({q(prices)})
            WHERE lower(type) = 'consumption' AND upper(currency_code) = 'USD'"""
    )
    # One price per (meter, version, tier minimum): equal rows merge; disagreeing rows are settled
    # by the one primary-region price, else the tier (and its version) is ambiguous.
    con.execute(
        """CREATE TEMP TABLE tier_price AS
           SELECT meter_id, effective_start_date AS eff, tier_minimum_units AS tmin,
                  CASE WHEN count(DISTINCT unit_price) = 1 THEN min(unit_price)
                       WHEN count(DISTINCT unit_price) FILTER (WHERE is_primary_meter_region) = 1
                       THEN min(unit_price) FILTER (WHERE is_primary_meter_region) END AS price
           FROM p GROUP BY ALL"""
    )
    # Representative row of each version (primary first, then SKU, region, tier) for its unit
    # and descriptive fields.
    con.execute(
        """CREATE TEMP TABLE meta AS
           SELECT meter_id, effective_start_date AS eff, unit_of_measure, meter_name, service_name,
                  service_family, meter_category, meter_subcategory, sku_id, arm_region_name, location
           FROM p
           QUALIFY row_number() OVER (PARTITION BY meter_id, effective_start_date
                   ORDER BY is_primary_meter_region IS NOT TRUE, sku_id, arm_region_name, tier_minimum_units) = 1"""
    )
    # Each version: ok (no ambiguous tier) and its ladder as a list of tiers, lowest first, with
    # each tier's upper bound (the next minimum) and C(minimum), the cost of everything below it.
    con.execute(
        """CREATE TEMP TABLE versions AS
           WITH t AS (
             SELECT *, lead(tmin) OVER w AS tnext
             FROM tier_price WINDOW w AS (PARTITION BY meter_id, eff ORDER BY tmin)
           ), c AS (
             SELECT *, coalesce(sum((tnext - tmin) * price) OVER (
                        PARTITION BY meter_id, eff ORDER BY tmin
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::DECIMAL(38,20) AS cbelow
             FROM t
           )
           SELECT meter_id, eff, bool_and(price IS NOT NULL) AS ok,
                  list({'tmin': tmin, 'tnext': tnext, 'price': price, 'cbelow': cbelow} ORDER BY tmin) AS ladder
           FROM c GROUP BY ALL"""
    )
    # Units as (multiplier, base) (rating.md section 3), parsed once per distinct unit text.
    con.execute(
        """CREATE TEMP TABLE unit_text AS
           SELECT DISTINCT unit_of_measure AS txt FROM meta WHERE unit_of_measure IS NOT NULL"""
    )


UNIT_PARSE = r"""
CREATE OR REPLACE TEMP TABLE units AS
WITH a AS (
  SELECT txt, lower(regexp_replace(txt, '\s', '', 'g')) AS l FROM unit_text
), b AS (
  SELECT *, regexp_extract(l, '^[0-9,.]*') AS num FROM a
), c AS (
  SELECT *, substr(l, length(num) + 1) AS rest0,
         CASE WHEN num = '' THEN 1::DECIMAL(38,10)
              ELSE TRY_CAST(replace(num, ',', '') AS DECIMAL(38,10)) END AS m0
  FROM b
), d AS (
  SELECT *,
    CASE WHEN num <> '' AND rest0 LIKE 'k%' AND NOT regexp_matches(substr(rest0, 2), '^[[:alpha:]]') THEN 1000
         WHEN num <> '' AND rest0 LIKE 'm%' AND (substr(rest0, 2) = '' OR substr(rest0, 2) LIKE '/%') THEN 1000000
         ELSE 1 END AS kfactor
  FROM c
), e AS (
  SELECT *, m0 * kfactor AS m1,
         CASE WHEN kfactor > 1 THEN substr(rest0, 2) ELSE rest0 END AS rest1
  FROM d
), f AS (
  SELECT *, CASE WHEN num <> '' AND rest1 LIKE '/%' THEN substr(rest1, 2) ELSE rest1 END AS rest
  FROM e
)
SELECT txt,
  CASE WHEN m1 IS NULL OR m1 <= 0 OR regexp_matches(rest, '[0-9]') THEN 1::DECIMAL(38,10)
       ELSE m1::DECIMAL(38,10) END AS mult,
  CASE WHEN m1 IS NULL OR m1 <= 0 OR regexp_matches(rest, '[0-9]') THEN l
       WHEN rest IN ('', 's') THEN 'unit'
       WHEN length(rest) > 1 AND rest LIKE '%s' AND rest NOT LIKE '%ss' THEN substr(rest, 1, length(rest) - 1)
       ELSE rest END AS base
FROM f
"""

# The FinOps toolkit's open data that cspcost embeds (data/finops-toolkit/, outputs.md "FOCUS
# conformance"), read here from the same files.
TOOLKIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "finops-toolkit")


def load_focus_tables(con):
    """FOCUS units of every unit text (PricingUnits.csv: thousands separators stripped, exact
    key first, then trimmed and lowercased; else the rule of src/emit/focus.rs) and the
    service table (Services.csv)."""
    con.execute(
        f"""CREATE TEMP TABLE pu AS
            SELECT regexp_replace(UnitOfMeasure, '([0-9]),([0-9])', '\\1\\2', 'g') AS k,
                   DistinctUnits AS unit, PricingBlockSize::DECIMAL(38,10) AS block,
                   row_number() OVER () AS rn
            FROM read_csv({q(os.path.join(TOOLKIT, 'PricingUnits.csv'))}, header = true,
                          all_varchar = true, quote = '"', strict_mode = false)"""
    )
    con.execute(
        r"""CREATE TEMP TABLE focus_units AS
            WITH t AS (
              SELECT u.txt, u.mult, u.base,
                     regexp_replace(u.txt, '([0-9]),([0-9])', '', 'g') AS k
              FROM units u
            ), e AS (
              SELECT t.*, (SELECT arg_min(pu.unit, pu.rn) FROM pu WHERE pu.k = t.k) AS eu,
                     (SELECT arg_min(pu.block, pu.rn) FROM pu WHERE pu.k = t.k) AS eb,
                     (SELECT arg_min(pu.unit, pu.rn) FROM pu WHERE lower(trim(pu.k)) = lower(trim(t.k))) AS lu,
                     (SELECT arg_min(pu.block, pu.rn) FROM pu WHERE lower(trim(pu.k)) = lower(trim(t.k))) AS lb
              FROM t
            ), r AS (
              SELECT e.*, trim(k) AS tk, regexp_extract(trim(k), '^[0-9.]*') AS num FROM e
            ), s AS (
              SELECT r.*,
                     CASE WHEN num <> '' AND mult <> coalesce(TRY_CAST(num AS DECIMAL(38,10)), 1)
                          THEN substr(tk, length(num) + 2) ELSE substr(tk, length(num) + 1) END AS rest0
              FROM r
            ), v AS (
              SELECT s.*, trim(ltrim(trim(rest0), '/')) AS rest FROM s
            )
            SELECT txt,
                   coalesce(eu, lu,
                     CASE WHEN base = lower(regexp_replace(txt, '\s', '', 'g'))
                          THEN coalesce(nullif(regexp_replace(trim(txt), '\s+', ' ', 'g'), ''), 'Units')
                          WHEN rest = '' THEN 'Units'
                          ELSE regexp_replace(upper(substr(rest, 1, 1)) || substr(rest, 2), '\s+', ' ', 'g') END) AS unit,
                   coalesce(eb, lb,
                     CASE WHEN base = lower(regexp_replace(txt, '\s', '', 'g')) THEN 1::DECIMAL(38,10)
                          ELSE mult END) AS block
            FROM v"""
    )
    con.execute(
        f"""CREATE TEMP TABLE services AS
            SELECT lower(trim(ConsumedService)) AS consumed, lower(trim(ResourceType)) AS rtype,
                   trim(ServiceName) AS name, trim(ServiceCategory) AS category,
                   trim(ServiceSubcategory) AS subcategory, row_number() OVER () AS rn
            FROM read_csv({q(os.path.join(TOOLKIT, 'Services.csv'))}, header = true,
                          all_varchar = true)
            WHERE coalesce(trim(ServiceName), '') <> '' AND coalesce(trim(ServiceCategory), '') <> ''"""
    )
    # by resource type: the row whose consumed service is the type's namespace, else the first
    con.execute(
        """CREATE TEMP TABLE service_by_type AS
           SELECT rtype, arg_min(name, (consumed <> split_part(rtype, '/', 1), rn)) AS name,
                  arg_min(category, (consumed <> split_part(rtype, '/', 1), rn)) AS category,
                  arg_min(subcategory, (consumed <> split_part(rtype, '/', 1), rn)) AS subcategory
           FROM services GROUP BY rtype"""
    )
    con.execute(
        """CREATE TEMP TABLE service_by_name AS
           SELECT lower(name) AS lname, arg_min(name, rn) AS name, arg_min(category, rn) AS category,
                  arg_min(subcategory, rn) AS subcategory
           FROM services GROUP BY lower(name)"""
    )


# ResourceType of a resource URI (src/emit/focus.rs resource_type): provider namespace and type
# path after the last /providers/, lowercase; null without a provider type.
RESOURCE_SEGMENTS = r"""list_filter(string_split(regexp_extract(lower(resource_uri), '.*/providers/(.*)$', 1), '/'),
                    lambda x: x <> '')"""
RESOURCE_TYPE = r"""CASE WHEN len(rt_seg) >= 2
    THEN rt_seg[1] || '/' || array_to_string(list_filter(rt_seg[2:], lambda x, i: i % 2 = 1), '/') END"""


def rate(con, lake, month, out):
    load_reference(con, lake, month)
    staged = os.path.join(lake, "staged", "usage", f"month={month}", "*", "data.parquet")
    # Usage units join the unit table too.
    con.execute(
        f"""INSERT INTO unit_text SELECT DISTINCT unit FROM read_parquet({q(staged)})
            WHERE unit IS NOT NULL AND unit NOT IN (SELECT txt FROM unit_text)"""
    )
    con.execute(UNIT_PARSE)
    load_focus_tables(con)
    # The version in effect on each day of the month (the latest effective start on or before
    # it), so that records find theirs with an equality join.
    con.execute(
        f"""CREATE TEMP TABLE day_version AS
            SELECT ve.meter_id, d.day::DATE AS day, max(ve.eff) AS eff
            FROM versions ve,
                 range({q(month + '-01')}::DATE, {q(month + '-01')}::DATE + INTERVAL 1 MONTH, INTERVAL 1 DAY) d(day)
            WHERE ve.eff <= d.day::DATE
            GROUP BY ALL"""
    )
    con.execute(
        f"""
CREATE TEMP VIEW rated AS
WITH u AS (
  SELECT key_hash, customer_tenant_id, subscription_id, meter_id, meter_name, meter_category,
         meter_subcategory, meter_region, resource_uri, location, additional_info, tags, unit,
         quantity, usage_start, usage_end, usage_date, source_file, source_row
  FROM read_parquet({q(staged)})
),
-- classification (rating.md / README reason order); a record that fails any step is
-- quarantined by cspcost and leaves every ladder, so the joins below are inner joins.
v AS (
  SELECT u.*, ve.eff, ve.ok, ve.ladder
  FROM u
  JOIN day_version dv ON dv.meter_id = u.meter_id AND dv.day = u.usage_date
  JOIN versions ve ON ve.meter_id = dv.meter_id AND ve.eff = dv.eff
),
k AS (
  SELECT v.*, t.organization_id, t.partnership_id, t.partnership_name,
         o.organization_name, o.billing_currency, o.adj,
         CASE WHEN upper(o.billing_currency) = 'USD' THEN 1::DECIMAL(38,10) ELSE fx.usd_per_unit END AS fx,
         m.unit_of_measure, m.meter_name AS p_meter_name, m.service_name AS p_service_name,
         m.meter_subcategory AS p_meter_subcategory, m.sku_id AS p_sku_id,
         fp.unit AS pricing_unit, fp.block AS pricing_block,
         coalesce(fc.unit, fp.unit) AS consumed_unit,
         coalesce(sn.friendly_name, v.subscription_id) AS sub_account_name,
         m.arm_region_name AS p_arm_region_name, m.location AS p_location,
         -- q_price = round10(q * mu / mp); the same unit or no usage unit: q as is
         CASE WHEN v.unit IS NULL OR uu.mult = up.mult THEN v.quantity
              ELSE dec10(div_round(raw10(v.quantity) * raw10(uu.mult), raw10(up.mult))) END AS q
  FROM v
  JOIN tenants t ON t.customer_tenant_id = v.customer_tenant_id
  JOIN orgs o ON o.organization_id = t.organization_id
  LEFT JOIN transfers tr ON tr.subscription_id = v.subscription_id
  JOIN meta m ON m.meter_id = v.meter_id AND m.eff = v.eff
  JOIN units up ON up.txt = m.unit_of_measure
  LEFT JOIN units uu ON uu.txt = v.unit
  JOIN focus_units fp ON fp.txt = m.unit_of_measure
  LEFT JOIN focus_units fc ON fc.txt = v.unit
  LEFT JOIN sub_names sn ON sn.subscription_id = v.subscription_id
  LEFT JOIN fx ON fx.currency = upper(o.billing_currency)
  WHERE v.quantity >= 0
    AND (tr.transferred_in_on IS NULL OR v.usage_date >= tr.transferred_in_on)
    AND v.ok
    AND (v.unit IS NULL OR uu.base = up.base)
    AND (upper(o.billing_currency) = 'USD' OR fx.usd_per_unit IS NOT NULL)
),
-- tier scope (subscription, meter, month), in the order of rating.md section 4 (its third
-- key, the subscription, is constant inside a scope)
w AS (
  SELECT k.*,
         sum(q) OVER (PARTITION BY subscription_id, meter_id
                      ORDER BY usage_start, usage_end, resource_uri,
                               additional_info, key_hash, source_file, source_row
                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum_after
  FROM k
),
x AS (
  SELECT w.*, cum_after - q AS cum_before,
         -- the tier containing cum_before, and the one holding the last unit (min < cum_after)
         list_filter(ladder, lambda t: t.tmin <= cum_after - q) AS at_before,
         list_filter(ladder, lambda t: t.tmin < cum_after) AS below_after
  FROM w
),
y AS (
  SELECT x.*,
         -- C(v) = C(min_k) + (v - min_k) * price_k for the top tier k with min_k <= v (or
         -- min_k < v, the same value); 0 in the free band below the lowest minimum
         round(coalesce(below_after[-1].cbelow + (cum_after - below_after[-1].tmin) * below_after[-1].price, 0), 10)
         - round(coalesce(at_before[-1].cbelow + (cum_before - at_before[-1].tmin) * at_before[-1].price, 0), 10) AS usd,
         coalesce(at_before[-1].tmin, 0) AS first_min,
         -- a zero quantity sits in the tier containing cum_after (= cum_before)
         CASE WHEN cum_after > cum_before THEN coalesce(below_after[-1].tmin, 0)
              ELSE coalesce(at_before[-1].tmin, 0) END AS last_min,
         CASE WHEN cum_after > cum_before THEN coalesce(below_after[-1].price, 0)
              ELSE coalesce(at_before[-1].price, 0) END AS last_price
  FROM x
),
z0 AS (
  SELECT y.*,
         dec10(div_round(raw10(usd) * {ONE}, raw10(fx))) AS list_cost,
         dec10(div_round(raw10(last_price) * {ONE}, raw10(fx))) AS list_unit_price,
         {RESOURCE_SEGMENTS} AS rt_seg
  FROM y
),
z1 AS (SELECT z0.*, {RESOURCE_TYPE} AS resource_type FROM z0),
-- the service: by resource type in Services.csv, else the price sheet's name matching a
-- toolkit name, else that name (or Other) in category Other
z AS (
  SELECT z1.*,
         coalesce(st.name, sb.name, nullif(trim(coalesce(p_service_name, meter_category)), ''), 'Other') AS service_name,
         coalesce(st.category, sb.category, 'Other') AS service_category,
         coalesce(st.subcategory, sb.subcategory, 'Other (Other)') AS service_subcategory
  FROM z1
  LEFT JOIN service_by_type st ON st.rtype = z1.resource_type
  LEFT JOIN service_by_name sb ON st.rtype IS NULL
       AND sb.lname = lower(trim(coalesce(p_service_name, meter_category)))
)
SELECT
  organization_id AS BillingAccountId, organization_name AS BillingAccountName,
  billing_currency AS BillingCurrency,
  {q(month + '-01 00:00:00+00')}::TIMESTAMPTZ AS BillingPeriodStart,
  ({q(month + '-01')}::DATE + INTERVAL 1 MONTH)::TIMESTAMP::TIMESTAMPTZ AS BillingPeriodEnd,
  usage_start AS ChargePeriodStart, usage_end AS ChargePeriodEnd,
  'Usage' AS ChargeCategory, NULL::VARCHAR AS ChargeClass,
  coalesce(p_meter_name, meter_name) AS ChargeDescription, 'Usage-Based' AS ChargeFrequency,
  list_cost AS ListCost,
  dec10(div_round(raw10(list_cost) * (100 * {ONE} + raw10(adj)), 100 * {ONE})) AS ContractedCost,
  ContractedCost AS EffectiveCost, ContractedCost AS BilledCost,
  list_unit_price AS ListUnitPrice,
  q AS PricingQuantity, pricing_unit AS PricingUnit,
  quantity AS ConsumedQuantity, consumed_unit AS ConsumedUnit,
  partnership_name AS InvoiceIssuerName, partnership_name AS ProviderName,
  'Microsoft' AS PublisherName, 'Microsoft' AS HostProviderName,
  'Microsoft' AS ServiceProviderName,
  service_name AS ServiceName, service_category AS ServiceCategory,
  service_subcategory AS ServiceSubcategory,
  coalesce(nullif(p_arm_region_name, ''), location) AS RegionId,
  coalesce(p_location, meter_region) AS RegionName,
  nullif(resource_uri, '') AS ResourceId,
  nullif(regexp_extract(resource_uri, '([^/]+)/*$', 1), '') AS ResourceName,
  subscription_id AS SubAccountId,
  nullif(p_sku_id, '') AS SkuId, p_meter_name AS SkuMeter,
  tags AS Tags,
  'Customer' AS BillingAccountType, sub_account_name AS SubAccountName,
  'Subscription' AS SubAccountType, organization_id || '-' || {q(month)} AS InvoiceId,
  'Standard' AS PricingCategory, 'USD' AS PricingCurrency,
  dec10(div_round(raw10(list_unit_price) * (100 * {ONE} + raw10(adj)), 100 * {ONE})) AS ContractedUnitPrice,
  last_price::DECIMAL(38,10) AS PricingCurrencyListUnitPrice,
  last_price::DECIMAL(38,10) AS PricingCurrencyContractedUnitPrice,
  usd AS PricingCurrencyEffectiveCost,
  meter_id || ':' || rtrim(rtrim(last_min::DECIMAL(38,10)::VARCHAR, '0'), '.') || ':' || eff::VARCHAR AS SkuPriceId,
  resource_type AS ResourceType,
  NULL::VARCHAR AS CommitmentDiscountId, NULL::VARCHAR AS CommitmentDiscountType,
  NULL::VARCHAR AS CommitmentDiscountCategory, NULL::VARCHAR AS CommitmentDiscountName,
  NULL::DECIMAL(38,10) AS CommitmentDiscountQuantity, NULL::VARCHAR AS CommitmentDiscountUnit,
  NULL::VARCHAR AS CommitmentDiscountStatus,
  customer_tenant_id AS x_CustomerTenantId, organization_id AS x_OrganizationId,
  partnership_id AS x_PartnershipId, {q(month)} AS x_BillingMonth,
  usage_date AS x_UsageDate, meter_id AS x_MeterId,
  usd AS x_ListCostUsd, fx AS x_FxUsdPerUnit, {q(month)} AS x_FxRateMonth,
  'subscription' AS x_TierScope,
  cum_before AS x_CumulativeQuantityBefore, cum_after AS x_CumulativeQuantityAfter,
  first_min AS x_TierFirstMinimum, last_min AS x_TierLastMinimum,
  eff AS x_PriceEffectiveStart,
  source_file AS x_SourceFile, source_row AS x_SourceRow,
  NULL::VARCHAR AS x_OrderId, NULL::VARCHAR AS x_ReservationId,
  NULL::BIGINT AS x_InstallmentIndex, NULL::BIGINT AS x_InstallmentCount,
  unit_of_measure AS x_PricingUnitDescription, pricing_block AS x_PricingBlockSize,
  'duckdb' AS x_RunId,
  -- billing.md: null for direct customers, the only kind the peer's data set has
  NULL::DECIMAL(38,10) AS x_ResellerCost,
  organization_id AS org, {q(month)} AS month
FROM z
"""
    )
    # Rows inside a partition sorted like cspcost's (outputs.md).
    con.execute(
        f"""COPY (SELECT * FROM rated
                  ORDER BY org, month, SubAccountId, x_MeterId, ChargePeriodStart, ResourceId,
                           ChargePeriodEnd, x_SourceFile, x_SourceRow)
            TO {q(out)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (org, month),
                         FILENAME_PATTERN 'usage-{{i}}', OVERWRITE_OR_IGNORE)"""
    )
    return {}


def floor(con, costs, out):
    """The I/O floor of `rate`: the rows it wrote (every column of cspcost's costs/ partitions,
    the same width it has to encode) read from Parquet and written again into the same
    org=/month= partitioning. No rating, no sort: Parquet in, partitioned Parquet out."""
    con.execute(
        f"""COPY (SELECT * FROM read_parquet({q(os.path.join(costs, '**', '*.parquet'))}, hive_partitioning = true))
            TO {q(out)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (org, month),
                         FILENAME_PATTERN 'usage-{{i}}', OVERWRITE_OR_IGNORE)"""
    )
    return {}


# ---------------------------------------------------------------------------------------------
# check: cspcost's costs/ against the peer's, row by row

COMPARED = [
    "BillingAccountId", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
    "ListCost", "BilledCost", "EffectiveCost", "ContractedCost", "ListUnitPrice",
    "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit",
    "ChargeDescription", "ServiceName", "ServiceCategory", "ServiceSubcategory", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "SubAccountId", "SkuId", "SkuMeter", "Tags",
    "InvoiceIssuerName", "ProviderName", "ServiceProviderName", "SubAccountName", "InvoiceId",
    "ContractedUnitPrice", "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "SkuPriceId", "ResourceType", "x_PricingUnitDescription",
    "x_PricingBlockSize", "x_CustomerTenantId", "x_PartnershipId", "x_UsageDate", "x_MeterId",
    "x_ListCostUsd", "x_FxUsdPerUnit", "x_CumulativeQuantityBefore",
    "x_CumulativeQuantityAfter", "x_TierFirstMinimum", "x_TierLastMinimum",
    "x_PriceEffectiveStart", "org", "month",
]


def check(con, costs, peer):
    src = lambda d: f"read_parquet({q(os.path.join(d, '**', '*.parquet'))}, hive_partitioning = true)"
    cols = ", ".join(COMPARED)
    con.execute(f"CREATE TEMP TABLE a AS SELECT x_SourceFile, x_SourceRow, {cols} FROM {src(costs)} WHERE ChargeCategory = 'Usage'")
    con.execute(f"CREATE TEMP TABLE b AS SELECT x_SourceFile, x_SourceRow, {cols} FROM {src(peer)}")
    diff_cols = " + ".join(f"(a.{c} IS DISTINCT FROM b.{c})::INT" for c in COMPARED)
    which = ", ".join(f"count(*) FILTER (WHERE a.{c} IS DISTINCT FROM b.{c}) AS {c}" for c in COMPARED)
    res = {
        "cspcost_rows": con.execute("SELECT count(*) FROM a").fetchone()[0],
        "peer_rows": con.execute("SELECT count(*) FROM b").fetchone()[0],
        "only_cspcost": con.execute("SELECT count(*) FROM a ANTI JOIN b USING (x_SourceFile, x_SourceRow)").fetchone()[0],
        "only_peer": con.execute("SELECT count(*) FROM b ANTI JOIN a USING (x_SourceFile, x_SourceRow)").fetchone()[0],
    }
    j = "FROM a JOIN b USING (x_SourceFile, x_SourceRow)"
    res["differing_rows"] = con.execute(f"SELECT count(*) {j} WHERE {diff_cols} > 0").fetchone()[0]
    per_col = con.execute(f"SELECT {which} {j}").fetchone()
    res["differing_by_column"] = {c: n for c, n in zip(COMPARED, per_col) if n}
    res["examples"] = [
        [str(v) for v in r]
        for r in con.execute(
            f"""SELECT x_SourceFile, x_SourceRow, a.x_ListCostUsd::VARCHAR, b.x_ListCostUsd::VARCHAR,
                       a.BilledCost::VARCHAR, b.BilledCost::VARCHAR {j} WHERE {diff_cols} > 0
                ORDER BY x_SourceFile, x_SourceRow LIMIT 5"""
        ).fetchall()
    ]
    totals = con.execute(
        """SELECT (SELECT sum(x_ListCostUsd) FROM a)::VARCHAR, (SELECT sum(x_ListCostUsd) FROM b)::VARCHAR,
                  (SELECT sum(BilledCost) FROM a)::VARCHAR, (SELECT sum(BilledCost) FROM b)::VARCHAR"""
    ).fetchone()
    res["sum_x_ListCostUsd"] = [totals[0], totals[1]]
    res["sum_BilledCost"] = [totals[2], totals[3]]
    res["equal"] = (
        res["cspcost_rows"] == res["peer_rows"] and res["only_cspcost"] == 0 and res["only_peer"] == 0
        and res["differing_rows"] == 0 and res["cspcost_rows"] > 0
    )
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--memory-limit", default=None)
    ap.add_argument("--temp", default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ingest"); s.add_argument("pages"); s.add_argument("out")
    s = sub.add_parser("rate"); s.add_argument("lake"); s.add_argument("month"); s.add_argument("out")
    s = sub.add_parser("floor"); s.add_argument("costs"); s.add_argument("out")
    s = sub.add_parser("check"); s.add_argument("costs"); s.add_argument("peer")
    args = ap.parse_args()
    con = connect(args)
    if args.cmd == "ingest":
        res = ingest(con, args.pages, args.out)
    elif args.cmd == "rate":
        res = rate(con, args.lake, args.month, args.out)
    elif args.cmd == "floor":
        res = floor(con, args.costs, args.out)
    else:
        res = check(con, args.costs, args.peer)
    res["threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]
    res["duckdb"] = duckdb.__version__
    print(json.dumps(res))
    if args.cmd == "check" and not res["equal"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
