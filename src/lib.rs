//! kvseal: a self-hosted secrets server speaking the HashiCorp Vault KV v2 API (and, next, the
//! OVHcloud OKMS Secret Manager API) over one versioned, encrypted secret engine on SQLite.

pub mod app;
pub mod audit;
pub mod client_addr;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod kv2;
pub mod okms;
pub mod operator;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod server;
pub mod storage;
pub mod tls;
pub mod vault;

#[cfg(test)]
mod testutil;
