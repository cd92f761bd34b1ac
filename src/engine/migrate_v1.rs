//! Sealing a schema-1 store (kvseal's first release kept everything but secret values in clear). Runs
//! at the first unseal, in one write transaction: storage hands over the records in clear
//! (`WriteTx::take_v1`), they are written back sealed through the ordinary interface, and the old
//! tables are dropped with their pages zeroed. Storage kept a copy of the original database beside
//! it (`kvseal.db.v1.bak`) before anything changed; a failure rolls the whole migration back.

use std::sync::Arc;

use super::barrier;
use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use super::kv::save_secret;
use super::model::{KvConfig, Mount, SecretMeta, SecretRecord, VersionMeta};
use super::path::MountPath;
use super::token_entry::{seal_token, TokenRow};
use super::{audit, mounts, policies, token_roles};
use crate::crypto::Keyring;
use crate::storage::rows::{V1Mount, V1Secret, V1Token};
use crate::storage::Store;

fn small(n: i64, what: &str) -> EngineResult<u32> {
    u32::try_from(n).map_err(|_| EngineError::Corrupt(format!("schema-1 {what} {n} out of range")))
}

fn mount(m: V1Mount) -> EngineResult<Mount> {
    Ok(Mount {
        id: m.id,
        path: MountPath::parse(&m.path)
            .map_err(|e| EngineError::Corrupt(format!("schema-1 mount path {:?}: {e}", m.path)))?,
        kind: m.kind,
        kv_version: if m.kv_version == 1 { 1 } else { 2 },
        description: m.description,
        uuid: m.uuid,
        accessor: m.accessor,
        options: serde_json::from_str(&m.options).unwrap_or_default(),
        default_lease_ttl: m.default_lease_ttl,
        max_lease_ttl: m.max_lease_ttl,
        force_no_cache: m.force_no_cache,
        kv: KvConfig {
            max_versions: small(m.max_versions, "max_versions")?,
            cas_required: m.cas_required,
            delete_version_after: m.delete_version_after,
            delete_version_after_text: m.delete_version_after_text,
        },
        created: m.created_ns,
    })
}

fn secret(s: &V1Secret) -> EngineResult<SecretRecord> {
    let version = |v: i64| {
        u64::try_from(v).map_err(|_| EngineError::Corrupt(format!("schema-1 version {v}")))
    };
    Ok(SecretRecord {
        meta: SecretMeta {
            created: s.created_ns,
            updated: s.updated_ns,
            current_version: version(s.current_version)?,
            oldest_version: version(s.oldest_version)?,
            max_versions: small(s.max_versions, "max_versions")?,
            cas_required: s.cas_required,
            delete_version_after: s.delete_version_after,
            delete_version_after_text: s.delete_version_after_text.clone(),
            // As schema 1 read it: text that is not a JSON map is no custom metadata.
            custom_metadata: s
                .custom_metadata
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
        },
        versions: s
            .versions
            .iter()
            .map(|v| {
                Ok(VersionMeta {
                    version: version(v.version)?,
                    created: v.created_ns,
                    deletion_time: v.deletion_ns,
                    destroyed: v.destroyed,
                })
            })
            .collect::<EngineResult<_>>()?,
    })
}

fn token(t: V1Token) -> TokenRow {
    TokenRow {
        hash: t.hash,
        accessor: t.accessor,
        parent: t.parent_hash,
        policies: serde_json::from_str(&t.policies).unwrap_or_default(),
        path: t.path,
        display_name: t.display_name,
        meta: t.meta.and_then(|m| serde_json::from_str(&m).ok()),
        creation: t.creation_ns,
        creation_ttl: t.creation_ttl,
        expire: t.expire_ns,
        explicit_max_ttl: t.explicit_max_ttl,
        period: t.period,
        renewable: t.renewable,
        num_uses: t.num_uses,
        orphan: t.orphan,
        role: t.role,
        last_renewal: t.last_renewal_ns,
    }
}

/// Seals every record of a schema-1 store, in one transaction, then merges the WAL into the file so
/// that the pages that held records in clear are overwritten there too.
pub(super) fn run(store: &Store, keyring: &Arc<Keyring>, _now: Nanos) -> EngineResult<()> {
    let ring = Arc::clone(keyring);
    let counts = store.write_blocking(move |tx| {
        let Some(dump) = tx.take_v1()? else {
            return Ok::<_, EngineError>(None);
        };
        let counts = (dump.mounts.len(), dump.secrets.len(), dump.tokens.len());
        let table = mounts::MountTable {
            next_id: dump.next_mount_id,
            mounts: dump
                .mounts
                .into_iter()
                .map(mount)
                .collect::<EngineResult<_>>()?,
            ..Default::default()
        };
        barrier::write_doc(tx, &ring, mounts::MOUNTS_DOC, None, &table)?;
        for s in &dump.secrets {
            save_secret(tx, &ring, s.mount_id, &s.path, None, &secret(s)?)?;
        }
        for t in dump.tokens {
            tx.insert_token(&seal_token(&ring, &token(t))?)?;
        }
        let texts: policies::PolicyTexts = dump.policies.into_iter().collect();
        barrier::write_doc(tx, &ring, policies::POLICIES_DOC, None, &texts)?;
        let roles: std::collections::BTreeMap<String, String> =
            dump.token_roles.into_iter().collect();
        barrier::write_doc(tx, &ring, token_roles::ROLES_DOC, None, &roles)?;
        let devices: Vec<audit::AuditRow> = dump
            .audit_devices
            .into_iter()
            .map(|a| audit::AuditRow {
                name: a.name,
                kind: a.kind,
                description: a.description,
                options: a.options,
                salt: a.salt,
            })
            .collect();
        barrier::write_doc(tx, &ring, audit::AUDIT_DOC, None, &devices)?;
        tx.finish_v1()?;
        Ok(Some(counts))
    })?;
    if let Some((m, s, t)) = counts {
        store.checkpoint()?;
        tracing::info!(
            mounts = m,
            secrets = s,
            tokens = t,
            copy = crate::storage::V1_BACKUP_NAME,
            "schema-1 store migrated: every record is now sealed (the copy beside the database still holds them in clear: delete it once satisfied)"
        );
    }
    Ok(())
}
