//! The Vault KV v2 protocol: parsing a Vault logical request, the reply and error shapes, weak
//! decoding of fields, and the KV v2 handlers (`config`, `data/`, `metadata/`, `delete/`,
//! `undelete/`, `destroy/`, `subkeys/`). Two APIs speak it: the Vault API (`crate::vault`) on every
//! KV v2 mount, and OKMS's Vault-compatible v1 API (`crate::okms`) on a domain's mount. Neither
//! API imports the other; both import this.

pub mod access;
pub mod decode;
pub mod error;
pub mod kv;
mod kv_data;
mod kv_metadata;
mod kv_versions;
pub mod render;
pub mod request;
pub mod response;

use std::sync::Arc;

use crate::engine::{Engine, Identity};
use request::VaultRequest;

impl Ctx<'_> {
    /// Whether the caller holds `sudo` on `path` (root always does).
    pub fn has_sudo(&self, path: &str) -> bool {
        self.acl.allows(path, crate::policy::Capabilities::SUDO)
    }
}

/// A request being served: the engine, the parsed request and, once authenticated, the caller.
pub struct Ctx<'a> {
    pub engine: &'a Arc<Engine>,
    pub req: &'a VaultRequest,
    pub identity: Option<Identity>,
    /// The caller's ACL (root's allows everything).
    pub acl: Arc<crate::policy::Acl>,
}
