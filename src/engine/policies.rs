//! ACL policies as stored objects: CRUD, the built-in `root` and `default`, and the compiled ACL of a
//! token. Parsing and matching live in `crate::policy`; this is the storage and caching around it.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{EngineError, EngineResult};
use super::{Engine, Identity, Memory};
use crate::policy::{self, Acl, Policy};
use crate::storage::token_rows::{self as rows, Named};

/// Parsed policies by name (the `default` policy included once it is stored).
pub type PolicyCache = HashMap<String, Arc<Policy>>;

/// Loads and parses every stored policy. A stored policy that no longer parses is left out (and
/// logged), so it grants nothing rather than failing every request.
pub(super) fn load_cache(store: &crate::storage::Store) -> EngineResult<PolicyCache> {
    let stored = store.read(|c| rows::list_named(c, Named::Policies))?;
    let mut cache = PolicyCache::new();
    for (name, text) in stored {
        match policy::parse(&name, &text) {
            Ok(p) => {
                cache.insert(name, Arc::new(p));
            }
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "stored policy does not parse; ignored")
            }
        }
    }
    Ok(cache)
}

/// Puts a committed policy (or its deletion) into memory and drops every compiled ACL.
fn install_policy(mem: &Memory, name: String, policy: Option<Policy>) {
    {
        let mut cache = mem.policies.write().unwrap_or_else(|p| p.into_inner());
        match policy {
            Some(p) => cache.insert(name, Arc::new(p)),
            None => cache.remove(&name),
        };
    }
    mem.acl_cache.invalidate();
}

impl Engine {
    /// Stores the built-in `default` policy if it is missing (at init, and for stores created before
    /// policies existed).
    pub async fn ensure_default_policy(&self) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        self.keyring()?;
        let parsed = policy::parse("default", policy::DEFAULT_POLICY)
            .map_err(|e| EngineError::Storage(format!("the built-in default policy: {e}")))?;
        self.admin_write(
            guard,
            |c| {
                if rows::get_named(c, Named::Policies, "default")?.is_some() {
                    return Ok(false);
                }
                rows::put_named(c, Named::Policies, "default", policy::DEFAULT_POLICY)?;
                Ok(true)
            },
            move |mem, written| {
                if written {
                    install_policy(mem, "default".into(), Some(parsed));
                }
                Ok(())
            },
        )
        .await
    }

    /// A policy's text as written. `root` has no text.
    pub fn policy_text(&self, name: &str) -> EngineResult<Option<String>> {
        self.store
            .read(|c| rows::get_named(c, Named::Policies, name))
    }

    /// Every policy name, `root` included (as Vault lists it).
    pub fn policy_names(&self) -> EngineResult<Vec<String>> {
        let mut names: Vec<String> = self
            .store
            .read(|c| rows::list_named(c, Named::Policies))?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.push("root".into());
        names.sort();
        Ok(names)
    }

    /// Creates or replaces a policy. `root` cannot be changed. The ACL enforced from then on is the
    /// one of the text stored, even with concurrent writes of the same policy (see `admin_write`).
    pub async fn put_policy(&self, name: &str, text: &str) -> EngineResult<()> {
        self.keyring()?;
        if name == "root" {
            return Err(EngineError::invalid("cannot update \"root\" policy"));
        }
        let parsed = policy::parse(name, text).map_err(|e| EngineError::invalid(e.to_string()))?;
        let guard = self.admin_lock().await;
        self.keyring()?;
        let (n, t) = (name.to_string(), text.to_string());
        self.admin_write(
            guard,
            move |c| rows::put_named(c, Named::Policies, &n, &t).map(|()| n),
            move |mem, n| {
                install_policy(mem, n, Some(parsed));
                Ok(())
            },
        )
        .await
    }

    /// Deletes a policy. `root` and `default` cannot be deleted; a missing policy is not an error.
    pub async fn delete_policy(&self, name: &str) -> EngineResult<()> {
        self.keyring()?;
        if name == "root" || name == "default" {
            return Err(EngineError::invalid(format!(
                "cannot delete {name:?} policy"
            )));
        }
        let guard = self.admin_lock().await;
        self.keyring()?;
        let n = name.to_string();
        self.admin_write(
            guard,
            move |c| rows::delete_named(c, Named::Policies, &n).map(|()| n),
            |mem, n| {
                install_policy(mem, n, None);
                Ok(())
            },
        )
        .await
    }

    /// The ACL of a set of policy names: the union of their rules (`root` allows everything; unknown
    /// names grant nothing).
    pub fn acl_of(&self, names: &[String]) -> Arc<Acl> {
        if names.iter().any(|n| n == "root") {
            return Arc::new(Acl::root());
        }
        let key = names.to_vec();
        if let Some(acl) = self.mem.acl_cache.get(&key) {
            return acl;
        }
        let generation = self.mem.acl_cache.generation();
        let acl = {
            let cache = self.mem.policies.read().unwrap_or_else(|p| p.into_inner());
            let set: Vec<Policy> = names
                .iter()
                .filter_map(|n| cache.get(n).map(|p| (**p).clone()))
                .collect();
            Arc::new(Acl::new(&set))
        };
        self.mem.acl_cache.insert_if(generation, key, acl.clone());
        acl
    }

    /// The ACL of the caller.
    pub fn acl(&self, id: &Identity) -> Arc<Acl> {
        self.acl_of(&id.entry.policies)
    }
}
