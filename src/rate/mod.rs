//! Stage 2, rate: the parallel engine that turns staged usage into `costs/` partitions
//! (rating.md), using the shared pure rules of [`crate::pricing`], and its spill-and-merge of
//! sorted runs ([`runs`]); the default scope is rated as a stream of each staged file
//! ([`stream`]); the customer and organization scopes by groups of ladders ([`scopes`]).

pub mod engine;
pub mod run;
pub mod runs;
pub mod scopes;
pub mod stream;
