//! Turnstile: Kubernetes-native authorization.
//!
//! Three layers, arrows pointing one way (DESIGN §7):
//! - [`engine`]: pure decision logic over an immutable snapshot;
//! - [`sources`]: the custom resources, their conversion into engine definitions, and the
//!   folder loader;
//! - [`http`]: the HTTP authorizer, over the engine only;
//! - [`publisher`]: the published snapshot, written by a source and read by `http`;
//! - [`run`]: file mode and cluster mode, each feeding the publisher next to the server;
//! - [`cli`]: the `turnstile` commands.
#![forbid(unsafe_code)]

pub mod cli;
pub mod engine;
pub mod http;
pub mod publisher;
pub mod run;
pub mod sources;
