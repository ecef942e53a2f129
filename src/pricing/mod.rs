//! The pure money rules that several stages share, no I/O: tier ladders and `C(x)`
//! ([`tiers`]), the price book of USD pay-as-you-go versions ([`price_book`]), FX conversion
//! ([`fx`]), markup ([`markup`]), the rated record they produce ([`rated`]) and the pricing of
//! reservation orders ([`reservation`]). `rate`, `reconcile` (re-tiering) and `reserve`
//! use them; none of them reads or writes the lake.

pub mod fx;
pub mod markup;
pub mod price_book;
pub mod rated;
pub mod reservation;
pub mod tiers;
