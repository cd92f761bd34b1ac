//! ACL policies as stored objects: CRUD, the built-in `root` and `default`, and the compiled ACL of a
//! token. Parsing and matching live in `crate::policy`; this is the storage and caching around it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::barrier;
use super::error::{EngineError, EngineResult};
use super::wrapping::{RESPONSE_WRAPPING_POLICY, RESPONSE_WRAPPING_POLICY_TEXT};
use super::{Engine, Identity, Memory};
use crate::crypto::Keyring;
use crate::policy::{self, Acl, Policy};
use crate::storage::{ReadTx, WriteTx};

/// Parsed policies by name (the `default` policy included once it is stored), and the names of
/// stored policies that could not be parsed: a token holding one of those is refused as a whole (a
/// broken `deny` must not turn into more access).
#[derive(Default)]
pub struct PolicyCache {
    pub parsed: HashMap<String, Arc<Policy>>,
    pub broken: HashSet<String>,
}

/// The name of the sealed policy table: every policy's text by name, one record.
pub(super) const POLICIES_DOC: &str = "policies";

pub(super) type PolicyTexts = BTreeMap<String, String>;

pub(super) fn read_texts(
    tx: &dyn ReadTx,
    keyring: &Keyring,
) -> EngineResult<(Vec<u8>, PolicyTexts)> {
    barrier::require_doc(tx, keyring, POLICIES_DOC)
}

/// Changes the policy table with `change` and stores it.
fn change_texts(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    change: impl FnOnce(&mut PolicyTexts) -> bool,
) -> EngineResult<bool> {
    let (old, mut texts) = read_texts(tx, keyring)?;
    if !change(&mut texts) {
        return Ok(false);
    }
    barrier::write_doc(tx, keyring, POLICIES_DOC, Some(&old), &texts)?;
    Ok(true)
}

/// Parses every stored policy (at unseal).
pub(super) fn load_cache(tx: &dyn ReadTx, keyring: &Keyring) -> EngineResult<PolicyCache> {
    let (_, texts) = read_texts(tx, keyring)?;
    let mut cache = PolicyCache::default();
    for (name, text) in texts {
        match policy::parse(&name, &text) {
            Ok(p) => {
                cache.parsed.insert(name, Arc::new(p));
            }
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "stored policy does not parse; tokens holding it are refused");
                cache.broken.insert(name);
            }
        }
    }
    Ok(cache)
}

/// Puts a committed policy (or its deletion) into memory and drops every compiled ACL.
fn install_policy(mem: &Memory, name: String, policy: Option<Policy>) {
    {
        let mut cache = mem.policies.write().unwrap_or_else(|p| p.into_inner());
        cache.broken.remove(&name);
        match policy {
            Some(p) => cache.parsed.insert(name, Arc::new(p)),
            None => cache.parsed.remove(&name),
        };
    }
    mem.acl_cache.invalidate();
}

impl Engine {
    /// Stores the built-in `default` policy if it is missing (at init, and for stores created before
    /// policies existed), or if it is still the built-in text of an earlier kvseal (which did not
    /// grant the token's cubbyhole and response wrapping, as Vault's does).
    pub async fn ensure_default_policy(&self) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let parsed = policy::parse("default", policy::DEFAULT_POLICY)
            .map_err(|e| EngineError::Storage(format!("the built-in default policy: {e}")))?;
        self.admin_write(
            guard,
            move |tx| {
                change_texts(tx, &keyring, |texts| {
                    match texts.get("default") {
                        Some(t) if t != policy::PREVIOUS_DEFAULT_POLICY => return false,
                        _ => {}
                    }
                    texts.insert("default".into(), policy::DEFAULT_POLICY.into());
                    true
                })
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

    /// A policy's text as written. `root` has no text; `response-wrapping` is built in.
    pub fn policy_text(&self, name: &str) -> EngineResult<Option<String>> {
        let keyring = self.keyring()?;
        if name == RESPONSE_WRAPPING_POLICY {
            return Ok(Some(RESPONSE_WRAPPING_POLICY_TEXT.to_string()));
        }
        self.store
            .read(|tx| Ok(read_texts(tx, &keyring)?.1.remove(name)))
    }

    /// Every policy name, `root` included and `response-wrapping` left out (as Vault lists them).
    pub fn policy_names(&self) -> EngineResult<Vec<String>> {
        let keyring = self.keyring()?;
        let mut names: Vec<String> = self
            .store
            .read(|tx| read_texts(tx, &keyring))?
            .1
            .into_keys()
            .filter(|n| n != RESPONSE_WRAPPING_POLICY)
            .collect();
        names.push("root".into());
        names.sort();
        Ok(names)
    }

    /// Creates or replaces a policy. `root` cannot be changed. The ACL enforced from then on is the
    /// one of the text stored, even with concurrent writes of the same policy (see `admin_write`).
    pub async fn put_policy(&self, name: &str, text: &str) -> EngineResult<()> {
        self.keyring()?;
        if name == "root" || name == RESPONSE_WRAPPING_POLICY {
            return Err(EngineError::invalid(format!(
                "cannot update {name:?} policy"
            )));
        }
        let parsed = policy::parse(name, text).map_err(|e| EngineError::invalid(e.to_string()))?;
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let (n, t) = (name.to_string(), text.to_string());
        self.admin_write(
            guard,
            move |tx| {
                change_texts(tx, &keyring, |texts| {
                    texts.insert(n.clone(), t.clone());
                    true
                })?;
                Ok(n.clone())
            },
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
        if name == "root" || name == "default" || name == RESPONSE_WRAPPING_POLICY {
            return Err(EngineError::invalid(format!(
                "cannot delete {name:?} policy"
            )));
        }
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let n = name.to_string();
        self.admin_write(
            guard,
            move |tx| {
                change_texts(tx, &keyring, |texts| texts.remove(&n).is_some())?;
                Ok(n.clone())
            },
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
        // A wrapping token's ACL is the built-in policy's, whatever a store may hold by that name
        // (earlier kvseal let one be written).
        if names == [RESPONSE_WRAPPING_POLICY] {
            static WRAPPING: std::sync::OnceLock<Arc<Acl>> = std::sync::OnceLock::new();
            return WRAPPING
                .get_or_init(|| {
                    let p = policy::parse(RESPONSE_WRAPPING_POLICY, RESPONSE_WRAPPING_POLICY_TEXT)
                        .map(|p| vec![p])
                        .unwrap_or_default();
                    Arc::new(Acl::new(&p))
                })
                .clone();
        }
        let key = names.to_vec();
        if let Some(acl) = self.mem.acl_cache.get(&key) {
            return acl;
        }
        let generation = self.mem.acl_cache.generation();
        self.catch_up_policies(names);
        let acl = {
            let cache = self.mem.policies.read().unwrap_or_else(|p| p.into_inner());
            let set: Vec<Policy> = names
                .iter()
                .filter_map(|n| cache.parsed.get(n).map(|p| (**p).clone()))
                .collect();
            Arc::new(Acl::new(&set))
        };
        self.mem.acl_cache.insert_if(generation, key, acl.clone());
        acl
    }

    /// On a shared store, a policy name this node does not know may be one another node wrote since
    /// the last poll (`vault policy write` on one node, then a token using it on another): the
    /// policies are read again before the ACL is built. At most once per set of names between two
    /// changes, since the ACL built is cached.
    fn catch_up_policies(&self, names: &[String]) {
        if !self.store.is_shared() {
            return;
        }
        let unknown = {
            let cache = self.mem.policies.read().unwrap_or_else(|p| p.into_inner());
            names
                .iter()
                .any(|n| !cache.parsed.contains_key(n) && !cache.broken.contains(n))
        };
        if !unknown {
            return;
        }
        let loaded = self
            .keyring()
            .and_then(|keyring| self.store.read(|tx| load_cache(tx, &keyring)));
        match loaded {
            Ok(cache) => *self.mem.policies.write().unwrap_or_else(|p| p.into_inner()) = cache,
            Err(e) => tracing::warn!(error = %e, "reading the policies again failed"),
        }
    }

    /// Whether any of `names` is a stored policy that could not be loaded: a token holding one is
    /// refused as a whole.
    pub(super) fn holds_broken_policy(&self, names: &[String]) -> bool {
        let cache = self.mem.policies.read().unwrap_or_else(|p| p.into_inner());
        !cache.broken.is_empty() && names.iter().any(|n| cache.broken.contains(n))
    }

    /// The ACL of the caller.
    pub fn acl(&self, id: &Identity) -> Arc<Acl> {
        self.acl_of(&id.entry.policies)
    }
}
