//! ACL policies as stored objects: CRUD, the built-in `root` and `default`, and the compiled ACL of a
//! token. Parsing and matching live in `crate::policy`; this is the storage and caching around it.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{EngineError, EngineResult};
use super::{Engine, Identity};
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

impl Engine {
    /// Stores the built-in `default` policy if it is missing (at init, and for stores created before
    /// policies existed).
    pub async fn ensure_default_policy(&self) -> EngineResult<()> {
        if self.policy_text("default")?.is_none() {
            self.put_policy("default", policy::DEFAULT_POLICY).await?;
        }
        Ok(())
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

    /// Creates or replaces a policy. `root` cannot be changed.
    pub async fn put_policy(&self, name: &str, text: &str) -> EngineResult<()> {
        self.keyring()?;
        if name == "root" {
            return Err(EngineError::invalid("cannot update \"root\" policy"));
        }
        let parsed = policy::parse(name, text).map_err(|e| EngineError::invalid(e.to_string()))?;
        let (n, t) = (name.to_string(), text.to_string());
        self.store
            .write(move |c| rows::put_named(c, Named::Policies, &n, &t))
            .await?;
        self.policies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(parsed));
        self.acl_cache.invalidate();
        Ok(())
    }

    /// Deletes a policy. `root` and `default` cannot be deleted; a missing policy is not an error.
    pub async fn delete_policy(&self, name: &str) -> EngineResult<()> {
        self.keyring()?;
        if name == "root" || name == "default" {
            return Err(EngineError::invalid(format!(
                "cannot delete {name:?} policy"
            )));
        }
        let n = name.to_string();
        self.store
            .write(move |c| rows::delete_named(c, Named::Policies, &n))
            .await?;
        self.policies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.acl_cache.invalidate();
        Ok(())
    }

    /// The ACL of a set of policy names: the union of their rules (`root` allows everything; unknown
    /// names grant nothing).
    pub fn acl_of(&self, names: &[String]) -> Arc<Acl> {
        if names.iter().any(|n| n == "root") {
            return Arc::new(Acl::root());
        }
        let key = names.to_vec();
        if let Some(acl) = self.acl_cache.get(&key) {
            return acl;
        }
        let generation = self.acl_cache.generation();
        let acl = {
            let cache = self.policies.read().unwrap_or_else(|p| p.into_inner());
            let set: Vec<Policy> = names
                .iter()
                .filter_map(|n| cache.get(n).map(|p| (**p).clone()))
                .collect();
            Arc::new(Acl::new(&set))
        };
        self.acl_cache.insert_if(generation, key, acl.clone());
        acl
    }

    /// The ACL of the caller.
    pub fn acl(&self, id: &Identity) -> Arc<Acl> {
        self.acl_of(&id.entry.policies)
    }
}
