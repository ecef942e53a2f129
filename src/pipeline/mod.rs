//! `cspcost run pipelines/<name>.toml`: a configured sequence of stages. [`config`] is the
//! serde file format, [`plan`] the validated plan and its execution.

pub mod config;
pub mod plan;
