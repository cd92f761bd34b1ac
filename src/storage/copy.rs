//! Copying a store row for row, between any two backends: `kvseal operator migrate`, a PostgreSQL
//! store's snapshot (a SQLite file of the same schema) and its restore.
//!
//! Every stored row is sealed by the engine with associated data binding its table and key columns,
//! never the backend, so a row copied byte for byte opens where it lands: nothing is opened or sealed
//! again, and a copy needs no key. The rows are read in key order a page at a time
//! ([`ReadTx::export_rows`], keyset pagination) and written as they were read
//! ([`WriteTx::import_row`]).

use sha2::{Digest, Sha256};

use super::error::{StorageError, StorageResult};
use super::rows::{SealedRow, TokenRecord, VersionBlob};
use super::{ReadTx, Store, WriteTx};

/// The tables of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `kvseal_meta`: the seal configuration, the sealed root key and keyring, the sealed
    /// administrative tables.
    Facts,
    Secrets,
    Versions,
    Tokens,
    /// Each token's private storage (schema 3).
    Cubbyhole,
}

impl Table {
    /// Every table, in the order a copy writes them: the facts last, so that nodes following a
    /// PostgreSQL target see an uninitialised store until every secret and token is there.
    pub const ALL: [Table; 5] = [
        Table::Secrets,
        Table::Versions,
        Table::Tokens,
        Table::Cubbyhole,
        Table::Facts,
    ];
    /// The tables of a schema-2 store (a backup made before cubbyholes), in the same order.
    pub const V2: [Table; 4] = [Table::Secrets, Table::Versions, Table::Tokens, Table::Facts];

    pub fn name(self) -> &'static str {
        match self {
            Table::Facts => "facts",
            Table::Secrets => "secrets",
            Table::Versions => "versions",
            Table::Tokens => "tokens",
            Table::Cubbyhole => "cubbyhole",
        }
    }
}

/// One stored row as it lies: its key columns in clear and its sealed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawRow {
    Fact {
        key: String,
        value: Vec<u8>,
    },
    Secret {
        mount_id: i64,
        path: String,
        row: SealedRow,
    },
    Version {
        mount_id: i64,
        path: String,
        version: u64,
        blob: VersionBlob,
    },
    Token(TokenRecord),
    /// An entry of a token's cubbyhole: the token's keyed hash, the path in it, the sealed entry.
    Cubby {
        token: Vec<u8>,
        path: String,
        row: SealedRow,
    },
}

impl RawRow {
    pub fn table(&self) -> Table {
        match self {
            RawRow::Fact { .. } => Table::Facts,
            RawRow::Secret { .. } => Table::Secrets,
            RawRow::Version { .. } => Table::Versions,
            RawRow::Token(_) => Table::Tokens,
            RawRow::Cubby { .. } => Table::Cubbyhole,
        }
    }

    /// Feeds every column, each with its length, to `h` (a copy is verified by comparing digests).
    fn hash_into(&self, h: &mut Sha256) {
        fn field(h: &mut Sha256, bytes: &[u8]) {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        match self {
            RawRow::Fact { key, value } => {
                field(h, key.as_bytes());
                field(h, value);
            }
            RawRow::Secret {
                mount_id,
                path,
                row,
            } => {
                field(h, &mount_id.to_be_bytes());
                field(h, path.as_bytes());
                field(h, &row.key_id.to_be_bytes());
                field(h, &row.blob);
            }
            RawRow::Version {
                mount_id,
                path,
                version,
                blob,
            } => {
                field(h, &mount_id.to_be_bytes());
                field(h, path.as_bytes());
                field(h, &version.to_be_bytes());
                field(h, &blob.key_id.to_be_bytes());
                field(h, &blob.nonce);
                field(h, &blob.ciphertext);
            }
            RawRow::Token(t) => {
                field(h, &t.hash);
                field(h, &t.accessor);
                match &t.parent {
                    Some(p) => field(h, p),
                    None => h.update([0xff]),
                }
                field(h, &t.sealed.key_id.to_be_bytes());
                field(h, &t.sealed.blob);
            }
            RawRow::Cubby { token, path, row } => {
                field(h, token);
                field(h, path.as_bytes());
                field(h, &row.key_id.to_be_bytes());
                field(h, &row.blob);
            }
        }
    }
}

/// The rows a page of a copy reads (and a write transaction of `migrate` writes).
pub const BATCH: usize = 1000;

/// Calls `f` with each page of `table`, in key order.
fn for_each_page(
    tx: &dyn ReadTx,
    table: Table,
    mut f: impl FnMut(Vec<RawRow>) -> StorageResult<()>,
) -> StorageResult<()> {
    let mut after: Option<RawRow> = None;
    loop {
        let page = tx.export_rows(table, after.as_ref(), BATCH)?;
        let full = page.len() == BATCH;
        after = page.last().cloned();
        if page.is_empty() {
            return Ok(());
        }
        f(page)?;
        if !full {
            return Ok(());
        }
    }
}

/// Copies every row of `from` into `into`, both transactions already open (a snapshot's file, a
/// restore). `into` must hold none of them.
pub fn copy_all(from: &dyn ReadTx, into: &dyn WriteTx) -> StorageResult<()> {
    copy_tables(from, into, &Table::ALL)
}

/// [`copy_all`] of the tables `tables` only (a schema-2 backup has no cubbyhole table).
pub fn copy_tables(from: &dyn ReadTx, into: &dyn WriteTx, tables: &[Table]) -> StorageResult<()> {
    for &table in tables {
        for_each_page(from, table, |page| {
            page.iter().try_for_each(|row| into.import_row(row))
        })?;
    }
    Ok(())
}

/// How many rows a table holds and the digest of them all, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSum {
    pub table: Table,
    pub rows: u64,
    digest: [u8; 32],
}

/// Reads every row of the store `tx` sees (one transaction) and sums each table up.
fn sums(tx: &dyn ReadTx) -> StorageResult<Vec<TableSum>> {
    Table::ALL
        .into_iter()
        .map(|table| {
            let (mut h, mut rows) = (Sha256::new(), 0u64);
            for_each_page(tx, table, |page| {
                rows += page.len() as u64;
                page.iter().for_each(|r| r.hash_into(&mut h));
                Ok(())
            })?;
            Ok(TableSum {
                table,
                rows,
                digest: h.finalize().into(),
            })
        })
        .collect()
}

/// Copies every row of `from` into `to` (`kvseal operator migrate`). The source is read in one read
/// transaction, so the copy is the store as it was when the copy began even if a PostgreSQL source
/// keeps serving; the target is written [`BATCH`] rows per write transaction, and must be empty
/// (checked before anything is written). `progress` is told (table, rows copied, rows in all) after
/// each batch, and once for an empty table. The copy is then read back from the target and compared with the source, table by
/// table, row count and digest of every byte; what is returned is the source's sums.
pub fn migrate(
    from: &Store,
    to: &Store,
    progress: &mut dyn FnMut(Table, u64, u64),
) -> StorageResult<Vec<TableSum>> {
    if from.is_empty()? {
        return Err(StorageError::Other(
            "the source store holds nothing to copy".into(),
        ));
    }
    if !to.is_empty()? {
        return Err(StorageError::Other(
            "the target store is not empty; a migration copies into an empty store only, and \
             nothing was written"
                .into(),
        ));
    }
    let source = from.read(|tx| {
        for table in Table::ALL {
            let total = tx.count_rows(table)?;
            let mut done = 0u64;
            if total == 0 {
                progress(table, 0, 0);
            }
            for_each_page(tx, table, |page| {
                done += page.len() as u64;
                to.write_blocking(move |w| page.iter().try_for_each(|row| w.import_row(row)))?;
                progress(table, done, total);
                Ok(())
            })?;
        }
        sums(tx)
    })?;
    let copied = to.read(sums)?;
    for (s, c) in source.iter().zip(&copied) {
        if s != c {
            return Err(StorageError::Other(format!(
                "the copy does not match the source: {} has {} rows in the source and {} in the \
                 target{}",
                s.table.name(),
                s.rows,
                c.rows,
                if s.rows == c.rows {
                    ", with different bytes"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{snapshot, Durability};

    fn store(dir: &std::path::Path, name: &str) -> Store {
        Store::open(&dir.join(name), Durability::Normal).unwrap()
    }

    /// Every row of every table, in key order.
    fn all_rows(s: &Store) -> Vec<RawRow> {
        s.read(|tx| {
            let mut out = Vec::new();
            for table in Table::ALL {
                for_each_page(tx, table, |page| {
                    out.extend(page);
                    Ok(())
                })?;
            }
            Ok::<_, StorageError>(out)
        })
        .unwrap()
    }

    fn sealed(n: usize) -> SealedRow {
        SealedRow {
            key_id: (n % 3) as u32 + 1,
            blob: format!("sealed-{n}").into_bytes(),
        }
    }

    /// Fills `s` through the ordinary write methods: more than a page of key records (over three
    /// mounts, with paths whose byte order differs from a naive one), of versions and of tokens.
    fn fill(s: &Store) {
        s.write_blocking(|tx| {
            for (i, key) in ["", "keyring", "mounts", "é-fact", "z"].iter().enumerate() {
                tx.put_fact(key, &sealed(i).blob)?;
            }
            for i in 0..1234usize {
                let mount = [-1i64, 1, 7][i % 3];
                let path = match i % 5 {
                    0 => format!("a/{i}"),
                    1 => format!("a{i}"),
                    2 => format!("é/{i}"),
                    3 => format!("a b/{i}\u{10FFFF}"),
                    _ => format!("{i}"),
                };
                tx.put_secret(mount, &path, None, &sealed(i))?;
                if i % 2 == 0 {
                    for v in 1..=3u64 {
                        let blob = VersionBlob {
                            key_id: v as u32,
                            nonce: vec![v as u8; 24],
                            ciphertext: format!("{path}#{v}").into_bytes(),
                        };
                        tx.insert_version(mount, &path, v, &blob)?;
                    }
                }
            }
            for i in 0..1005u32 {
                tx.insert_token(&TokenRecord {
                    hash: i.to_be_bytes().to_vec(),
                    accessor: (i + 1_000_000).to_le_bytes().to_vec(),
                    parent: (i % 4 != 0).then(|| (i / 2).to_be_bytes().to_vec()),
                    sealed: sealed(i as usize),
                })?;
                // Two cubbyhole entries for every other token: more than a page in all.
                if i % 2 == 0 {
                    for path in ["response", "wrapinfo/é"] {
                        tx.put_cubby(&i.to_be_bytes(), path, &sealed(i as usize))?;
                    }
                }
            }
            Ok::<_, StorageError>(())
        })
        .unwrap();
    }

    #[test]
    fn a_migration_copies_every_row_in_key_order_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (store(dir.path(), "from"), store(dir.path(), "to"));
        fill(&from);
        let mut last = std::collections::HashMap::new();
        let sums = migrate(&from, &to, &mut |t, done, total| {
            last.insert(t.name(), (done, total));
        })
        .unwrap();
        let rows: Vec<(Table, u64)> = sums.iter().map(|s| (s.table, s.rows)).collect();
        assert_eq!(
            rows,
            [
                (Table::Secrets, 1234),
                (Table::Versions, 617 * 3),
                (Table::Tokens, 1005),
                (Table::Cubbyhole, 503 * 2),
                (Table::Facts, 5),
            ]
        );
        for (t, n) in rows {
            assert_eq!(last[t.name()], (n, n), "{}", t.name());
        }
        assert_eq!(all_rows(&from), all_rows(&to));
    }

    #[test]
    fn a_migration_into_a_store_that_holds_anything_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (store(dir.path(), "from"), store(dir.path(), "to"));
        fill(&from);
        to.write_blocking(|tx| tx.put_fact("mounts", b"theirs"))
            .unwrap();
        let e = migrate(&from, &to, &mut |_, _, _| {}).unwrap_err();
        assert!(
            e.to_string().contains("the target store is not empty"),
            "{e}"
        );
        assert_eq!(
            all_rows(&to),
            [RawRow::Fact {
                key: "mounts".into(),
                value: b"theirs".to_vec()
            }]
        );
        let empty = store(dir.path(), "empty");
        let e = migrate(&empty, &to, &mut |_, _, _| {}).unwrap_err();
        assert!(e.to_string().contains("holds nothing to copy"), "{e}");
    }

    #[test]
    fn a_schema_2_snapshot_restores_without_a_cubbyhole_table() {
        let dir = tempfile::tempdir().unwrap();
        let (from, other) = (store(dir.path(), "from"), store(dir.path(), "other"));
        fill(&from);
        let file = dir.path().join("v2.db");
        snapshot::new_file(&file, |into| {
            from.read(|tx| copy_tables(tx, into, &Table::V2))
        })
        .unwrap();
        {
            // What a kvseal of schema 2 wrote: no cubbyhole table, user_version 2.
            let c = rusqlite::Connection::open(&file).unwrap();
            c.execute_batch("DROP TABLE cubbyhole; PRAGMA user_version = 2;")
                .unwrap();
        }
        other
            .write_blocking(|tx| tx.put_cubby(b"t", "p", &sealed(1)))
            .unwrap();
        other.replace_from(&file).unwrap();
        let without_cubby = |s: &Store| -> Vec<RawRow> {
            all_rows(s)
                .into_iter()
                .filter(|r| r.table() != Table::Cubbyhole)
                .collect()
        };
        assert_eq!(without_cubby(&other), without_cubby(&from));
        assert_eq!(other.read(|tx| tx.count_rows(Table::Cubbyhole)).unwrap(), 0);
    }

    #[test]
    fn revoking_a_token_tree_deletes_its_cubbyholes_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "s");
        let token = |hash: &[u8], parent: Option<&[u8]>| TokenRecord {
            hash: hash.to_vec(),
            accessor: [hash, b"-acc"].concat(),
            parent: parent.map(<[u8]>::to_vec),
            sealed: sealed(1),
        };
        s.write_blocking(move |tx| {
            tx.insert_token(&token(b"p", None))?;
            tx.insert_token(&token(b"c", Some(b"p")))?;
            tx.insert_token(&token(b"g", Some(b"c")))?;
            tx.insert_token(&token(b"o", None))?;
            for t in [b"p", b"c", b"g", b"o"] {
                tx.put_cubby(t, "x", &sealed(2))?;
                tx.put_cubby(t, "y/z", &sealed(3))?;
            }
            Ok::<_, StorageError>(())
        })
        .unwrap();
        let owners = |s: &Store| s.read(|tx| tx.cubby_owners(None, 10)).unwrap();
        assert_eq!(
            owners(&s),
            [b"c".to_vec(), b"g".to_vec(), b"o".to_vec(), b"p".to_vec()]
        );
        assert_eq!(
            s.write_blocking(|tx| tx.delete_token_tree(b"c")).unwrap(),
            2
        );
        assert_eq!(owners(&s), [b"o".to_vec(), b"p".to_vec()]);
        assert_eq!(s.write_blocking(|tx| tx.delete_token(b"p")).unwrap(), 1);
        assert_eq!(owners(&s), [b"o".to_vec()]);
        let kids = s.read(|tx| tx.cubby_children(b"o", "")).unwrap();
        let names: Vec<&str> = kids.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "y/"]);
        assert_eq!(
            s.read(|tx| tx.get_cubby(b"o", "y/z")).unwrap(),
            Some(sealed(3))
        );
    }

    #[test]
    fn a_snapshot_file_restores_every_row_over_another_store() {
        let dir = tempfile::tempdir().unwrap();
        let (from, other) = (store(dir.path(), "from"), store(dir.path(), "other"));
        fill(&from);
        other
            .write_blocking(|tx| {
                tx.put_fact("keyring", b"another")?;
                tx.put_secret(1, "only-here", None, &sealed(9))
            })
            .unwrap();
        let file = dir.path().join("snap.db");
        snapshot::new_file(&file, |into| from.read(|tx| copy_all(tx, into))).unwrap();
        snapshot::verify(&file).unwrap();
        other.replace_from(&file).unwrap();
        assert_eq!(all_rows(&other), all_rows(&from));
        // A file that exists already is never overwritten.
        let e = snapshot::new_file(&file, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("File exists"), "{e}");
        snapshot::verify(&file).unwrap();
    }
}
