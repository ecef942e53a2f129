//! ISO 4217 currencies: how many minor-unit digits an amount billed in a currency carries
//! (reservation prices and installments are rounded to them, reservations.md).

/// Minor-unit digits of a currency (ISO 4217): 0 for JPY/KRW and the other zero-decimal
/// currencies, 3 for the dinars, 2 otherwise.
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "JPY" | "KRW" | "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "KMF" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_per_iso_4217() {
        assert_eq!(minor_unit_digits("EUR"), 2);
        assert_eq!(minor_unit_digits("usd"), 2);
        assert_eq!(minor_unit_digits("JPY"), 0);
        assert_eq!(minor_unit_digits("KRW"), 0);
        assert_eq!(minor_unit_digits("KWD"), 3);
    }
}
