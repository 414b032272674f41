//! orchestrate: declarative, cached, reproducible experiment pipelines for the
//! parameter-efficient fine-tuning lab. The `orchestrate` binary is a thin CLI over
//! this library.
//!
//! The flow, one module per concern:
//! [`spec`] (TOML → validated, expanded tasks) → [`graph`] (DAG, order, cycles) →
//! [`plan`] (cache keys, cached or why not) → [`scheduler`] (runs what is missing, emits
//! [`events`]) → [`tasks`] (one file per kind) writing into the [`store`] →
//! [`report`] (tables read from the cache). [`commands`] wires them for the CLI;
//! [`model`] holds the tch transformer code the neural tasks use, and [`train`] the
//! training engine they share (it knows nothing of tasks, the store or the scheduler).

pub mod bench;
pub mod commands;
pub mod estimate;
pub mod events;
pub mod graph;
pub mod hub;
pub mod model;
pub mod plan;
pub mod report;
pub mod reporter;
pub mod scheduler;
pub mod scoring;
pub mod spec;
pub mod store;
pub mod tasks;
pub mod train;
pub mod util;
