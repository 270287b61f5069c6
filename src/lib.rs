//! Turnstile: Kubernetes-native authorization.
//!
//! Three layers, arrows pointing one way (DESIGN §7):
//! - [`engine`]: pure decision logic over an immutable snapshot;
//! - [`sources`]: the custom resources, their conversion into engine definitions, and the
//!   folder loader;
//! - [`cli`]: the `turnstile` commands.
#![forbid(unsafe_code)]

pub mod cli;
pub mod engine;
pub mod sources;
