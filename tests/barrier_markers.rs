//! The barrier, acceptance 3 (issue 11): markers written into `custom_metadata`, a policy name and
//! body, a token's `display_name` and `meta`, and an audit device path never appear in plaintext
//! in the database, its WAL or its shared-memory file.
//!
//! A fresh server is populated through both APIs (`common::populate`), then every file of its
//! storage directory is scanned as bytes for each marker, once while the server runs (what sits
//! in the WAL), once after a clean stop, and once more after checkpointing the WAL into
//! `kvseal.db` (what a plain copy of the database holds). The markers are
//! letters, digits and `-`, so their JSON-escaped form is the same bytes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;

use common::populate::{self, Markers, Population};
use common::{contains_bytes, files_under};

/// Every (marker, file) hit in the storage directory, as report lines.
fn scan(storage: &Path, pop: &Population, phase: &str) -> Vec<String> {
    let files = files_under(storage);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "kvseal.db"),
        "{phase}: no kvseal.db in {storage:?}: {names:?}"
    );
    // Not a vacuous scan: secret paths stay in clear by design, so the one carrying `path_tag`
    // must be found in these very files.
    let mut hits = Vec::new();
    let mut path_seen = false;
    for f in &files {
        let bytes = fs::read(f).unwrap_or_else(|e| panic!("read {f:?}: {e}"));
        path_seen |= contains_bytes(&bytes, pop.path_tag.as_bytes());
        for (place, marker) in pop.markers.all() {
            if contains_bytes(&bytes, marker.as_bytes()) {
                hits.push(format!(
                    "{phase}: the {place} marker {marker:?} is in plaintext in {}",
                    f.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        path_seen,
        "{phase}: the secret path segment {:?} (in clear by design) was not found in {names:?}: \
         the scan reads the wrong files",
        pop.path_tag
    );
    hits
}

#[test]
fn markers_never_reach_the_storage_files_in_plaintext() {
    let (mut server, audit_dir) = populate::server(None);
    server.init();
    let markers = Markers::random();
    let path_tag = format!("pathtag-{}", common::uid());
    let pop = populate::populate(&server, &markers, &audit_dir, &path_tag);
    let storage = server.storage_dir();

    // Running: the recent writes sit in kvseal.db-wal.
    let mut hits = scan(&storage, &pop, "server running");
    // Stopped cleanly: the WAL is checkpointed into kvseal.db.
    let st = server.stop().expect("server was running");
    assert!(st.success(), "kvseal exited with {st} on SIGTERM");
    hits.extend(scan(&storage, &pop, "server stopped"));
    // Checkpointed: everything in kvseal.db itself (what a file copy of the store holds).
    {
        let c = common::db::open(&storage.join("kvseal.db"));
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    hits.extend(scan(&storage, &pop, "after a WAL checkpoint"));

    assert!(
        hits.is_empty(),
        "{} marker hit(s) in the storage files (issue 11: every record that is not needed in \
         clear to find rows must be sealed):\n  {}",
        hits.len(),
        hits.join("\n  ")
    );
}
