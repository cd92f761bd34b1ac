//! The skip scan behind `ReadTx::list_children`, shared by the backends: each supplies one query,
//! "the rows of a mount with a path after `cursor` (exclusive) and before `end`, in path order, at
//! most `batch`".
//!
//! Rows are read a small batch at a time and, when a row lies in a sub-folder, the scan jumps past
//! that whole sub-folder. A folder's deep contents are never loaded, so a folder with 100,000 keys
//! lists in pages without holding them all in memory. The cursor is an exclusive bound because
//! PostgreSQL text cannot hold the NUL an inclusive "just after" cursor would need.

use super::error::{StorageError, StorageResult};
use super::rows::SealedRow;

const BATCH: usize = 256;

/// The smallest string greater than every string that starts with `prefix` (U+10FFFF sorts after
/// every other code point in UTF-8 byte order).
pub(super) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The direct children of `folder` (see `ReadTx::list_children`), read with `fetch(cursor, end,
/// batch)`.
pub(super) fn list_children(
    folder: &str,
    after: Option<&str>,
    limit: Option<usize>,
    mut fetch: impl FnMut(&str, &str, usize) -> StorageResult<Vec<(String, SealedRow)>>,
) -> StorageResult<Vec<(String, String, SealedRow)>> {
    let end = prefix_end(folder);
    let mut cursor = match after {
        // Names greater than `after`: past `folder + after` and, if `after` is a folder (`x/`), past
        // everything inside it.
        Some(a) if a.ends_with('/') => prefix_end(&format!("{folder}{a}")),
        Some(a) => format!("{folder}{a}"),
        None => folder.to_string(),
    };
    let mut out = Vec::new();
    loop {
        let rows = fetch(&cursor, &end, BATCH)?;
        let full = rows.len() == BATCH;
        let mut next_cursor = None;
        for (path, row) in &rows {
            let Some(rest) = path.get(folder.len()..) else {
                return Err(StorageError::Corrupt(format!(
                    "secret path {path:?} outside the scanned folder"
                )));
            };
            match rest.find('/') {
                Some(i) => {
                    let child = format!("{}/", &rest[..i]);
                    // Skip the whole sub-folder and query again from past it.
                    next_cursor = Some(prefix_end(&format!("{folder}{child}")));
                    out.push((child, path.clone(), row.clone()));
                }
                None => out.push((rest.to_string(), path.clone(), row.clone())),
            }
            if limit.is_some_and(|l| out.len() >= l) {
                return Ok(out);
            }
            if next_cursor.is_some() {
                break;
            }
        }
        cursor = match (next_cursor, rows.last()) {
            (Some(c), _) => c,
            (None, Some((last, _))) if full => last.clone(),
            _ => return Ok(out),
        };
    }
}
