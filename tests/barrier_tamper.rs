//! The barrier, acceptance 2 (issue 11): whoever edits the storage files can only break them.
//!
//! A store is populated through both APIs (`common::populate`) and stopped. Then, on a fresh copy
//! of that pristine storage directory each time, one cell is edited with rusqlite (every table but
//! SQLite's own, every column; the edits: flip one byte, swap the column's value with another
//! row's, set NULL, set the text `["root"]`), the server is started on the copy with the same key
//! file, and a fixed list of probes (`populate::probes`) is replayed and compared with the
//! pristine store's answers:
//!
//! * a probe that succeeded must answer the same (status and body, times and TTLs that move
//!   dropped) or an error status: a success with another value is an edited value served as valid;
//! * a probe that failed (a limited token's 403, a deleted version's 404) must still fail: no token
//!   gains a capability, nothing deleted comes back;
//! * the process is alive after the probes, no request lost its connection, and stderr has no
//!   `panicked`. A server that exits at start-up on an edited cell is a failure too: the issue
//!   wants a broken record to make its object unusable, not the server.
//!
//! Tables and columns come from `sqlite_master` / `PRAGMA table_info`, rows are named by their key:
//! nothing here names a column of today's schema. The rows edited are chosen from what each
//! population step added or changed (`Population::row_tags`): the limited token's row, the limited
//! policy's, the multi-version secret's, ... in that order; a swap takes its other row from the
//! rows there at initialisation first (the root token's, the `default` policy's, `secret/`'s).
//! The rows of the steps in `ALWAYS` get every edit, and so do the first `KVSEAL_TAMPER_ROWS`
//! (default 1000: every row of this population, about 330 server starts and 20 s) rows of each
//! table in that order, and every row of `kvseal_meta` (a handful, each a whole table of the
//! store); `KVSEAL_TAMPER_THREADS` (default 3) is how many servers run at once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::db::{self, Cell, Table};
use common::populate::{self, Answer, Client, Expect, Markers, Population, Probe, ROOT};
use common::Server;
use serde_json::Value;

/// Which rows of a table are edited first: by the first population step that added or changed
/// them, in this order (prefixes of `RowTag::tag`); rows of no listed step come last.
const TAG_ORDER: &[&str] = &[
    "token:limited",
    "cubbyhole:limited",
    "cubbyhole:root",
    "policy:limited",
    "secret:app/db@v4",
    "secret:app/db@delete",
    "secret:app/db@destroy",
    "secret:app/db",
    "mount:team",
    "audit:marker",
    "role:app",
    "policy:deny",
    "token:child",
    "token:uses",
    "secret:app/okms",
    "secret:team",
    "token:orphan",
    "token:role",
    "role:ops",
    "audit:discard",
    "secret:other",
    "secret:app/denied",
    "init",
];

/// Rows that get every edit whatever `KVSEAL_TAMPER_ROWS` says: those of these steps (the limited
/// token, both policies, the current and the soft-deleted version of the multi-version secret).
const ALWAYS: &[&str] = &[
    "token:limited",
    "cubbyhole:limited",
    "policy:limited",
    "policy:deny",
    "secret:app/db@v4",
    "secret:app/db@delete",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Flip,
    Swap,
    Null,
    Root,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Flip, Kind::Swap, Kind::Null, Kind::Root];
    fn name(self) -> &'static str {
        match self {
            Kind::Flip => "flip a byte",
            Kind::Swap => "swap rows",
            Kind::Null => "set NULL",
            Kind::Root => "set [\"root\"]",
        }
    }
}

/// One edit of one cell.
#[derive(Clone, Debug)]
struct Edit {
    table: usize,
    column: usize,
    kind: Kind,
    row: Vec<Cell>,
    /// The step that made the row (for reports).
    row_tag: String,
    /// The value written.
    value: Cell,
    /// Swap: the other row and the value it gets.
    partner: Option<(Vec<Cell>, String, Cell)>,
}

#[derive(Debug)]
enum Outcome {
    /// The schema refused it, or it changes nothing.
    NotApplicable(String),
    /// Every probe answered as before.
    Unchanged,
    /// Some probe answered an error where it had succeeded (or another error).
    Detected,
    Fail(Vec<String>),
}

impl Outcome {
    fn column(&self) -> usize {
        match self {
            Outcome::NotApplicable(_) => 0,
            Outcome::Unchanged => 1,
            Outcome::Detected => 2,
            Outcome::Fail(_) => 3,
        }
    }
}

/// A flipped byte: integers xor 1; text and blobs get one byte in the middle changed (text: the
/// nearest ASCII byte xor 1, so it stays ASCII where it was).
fn flipped(v: &Cell) -> Option<Cell> {
    match v {
        Cell::Null => None,
        Cell::Int(i) => Some(Cell::Int(i ^ 1)),
        Cell::Real(f) => Some(Cell::Real(f + 1.0)),
        Cell::Text(t) | Cell::Blob(t) if t.is_empty() => None,
        Cell::Text(t) => {
            let mid = t.len() / 2;
            let at = (0..t.len())
                .flat_map(|d| [mid.checked_add(d), mid.checked_sub(d)])
                .flatten()
                .find(|&i| i < t.len() && t[i].is_ascii())
                .unwrap_or(mid);
            let mut t = t.clone();
            t[at] ^= 1;
            Some(Cell::Text(t))
        }
        Cell::Blob(b) => {
            let mut b = b.clone();
            let mid = b.len() / 2;
            b[mid] ^= 1;
            Some(Cell::Blob(b))
        }
    }
}

/// A value of the same type as `v` that no row holds (the middle step of a swap on a unique
/// column).
fn placeholder(v: &Cell) -> Cell {
    match v {
        Cell::Int(_) => Cell::Int(i64::MIN + 7),
        Cell::Real(_) => Cell::Real(-1e300),
        Cell::Blob(_) => Cell::Blob(b"kvseal-swap-placeholder".to_vec()),
        _ => Cell::text("kvseal-swap-placeholder"),
    }
}

fn set(
    c: &rusqlite::Connection,
    t: &Table,
    key: &[Cell],
    col: &str,
    v: &Cell,
) -> Result<(), String> {
    match db::set_cell(c, t, key, col, v) {
        Ok(1) => Ok(()),
        Ok(n) => Err(format!("{n} rows changed")),
        Err(e) => Err(e.to_string()),
    }
}

/// Applies `e` to the database file `path`; `Err` is SQLite's refusal (a constraint, a type).
fn apply(path: &Path, tables: &[Table], e: &Edit) -> Result<(), String> {
    let mut c = db::open(path);
    let t = &tables[e.table];
    let col = t.columns[e.column].name.as_str();
    let tx = c.transaction().map_err(|x| x.to_string())?;
    let direct = (|| {
        set(&tx, t, &e.row, col, &e.value)?;
        if let Some((pkey, _, pval)) = &e.partner {
            set(&tx, t, pkey, col, pval)?;
        }
        Ok::<(), String>(())
    })();
    match (direct, &e.partner) {
        (Ok(()), _) => tx.commit().map_err(|x| x.to_string()),
        (Err(err), None) => Err(err),
        (Err(_), Some((pkey, _, pval))) => {
            // A unique column: through a placeholder.
            tx.rollback().map_err(|x| x.to_string())?;
            let tx = c.transaction().map_err(|x| x.to_string())?;
            let tmp = placeholder(pval);
            set(&tx, t, &e.row, col, &tmp)?;
            let row_tmp = db::key_after(t, &e.row, col, &tmp);
            set(&tx, t, pkey, col, pval)?;
            set(&tx, t, &row_tmp, col, &e.value)?;
            tx.commit().map_err(|x| x.to_string())
        }
    }
}

/// The rows of `t` in edit order: by the first step of `TAG_ORDER` that added or changed them.
fn ordered_rows(pop: &Population, t: &Table, all: &[db::Row]) -> Vec<(Vec<Cell>, String)> {
    let mut out: Vec<(Vec<Cell>, String)> = Vec::new();
    for prefix in TAG_ORDER {
        for tag in pop.row_tags.iter().filter(|g| g.tag.starts_with(prefix)) {
            for r in tag.rows.iter().filter(|r| r.table == t.name) {
                if all.iter().any(|a| a.key == r.key) && !out.iter().any(|(k, _)| *k == r.key) {
                    out.push((r.key.clone(), tag.tag.clone()));
                }
            }
        }
    }
    for r in all {
        if !out.iter().any(|(k, _)| *k == r.key) {
            out.push((r.key.clone(), "untagged".into()));
        }
    }
    out
}

/// Every edit to try, and the ones that are not applicable without trying (nothing to flip, the
/// value is already there, no other row to swap with).
fn plan(
    pop: &Population,
    tables: &[Table],
    rows: &[Vec<db::Row>],
    per_table: usize,
) -> (Vec<Edit>, Vec<(Edit, String)>) {
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let order = ordered_rows(pop, t, &rows[ti]);
        // Swap partners: rows there at initialisation first (the most privileged: the root
        // token, the default policy, secret/), then the edit order.
        let init = pop.row_tags.first().expect("init tag");
        let mut partners: Vec<(Vec<Cell>, String)> = init
            .rows
            .iter()
            .filter(|r| r.table == t.name)
            .map(|r| (r.key.clone(), "init".to_string()))
            .collect();
        for o in &order {
            if !partners.iter().any(|(k, _)| *k == o.0) {
                partners.push(o.clone());
            }
        }
        let cell = |key: &[Cell], ci: usize| -> Cell {
            rows[ti].iter().find(|r| r.key == key).expect("row").cells[ci].clone()
        };
        let always = |key: &Vec<Cell>| {
            pop.row_tags.iter().any(|g| {
                ALWAYS.contains(&g.tag.as_str())
                    && g.rows.iter().any(|r| r.table == t.name && r.key == *key)
            })
        };
        let chosen: Vec<&(Vec<Cell>, String)> = order
            .iter()
            .enumerate()
            // Every fact: each is a whole table (keys, mounts, policies, roles, audit devices).
            .filter(|(i, (k, _))| *i < per_table || always(k) || t.name == "kvseal_meta")
            .map(|(_, o)| o)
            .collect();
        for ci in 0..t.columns.len() {
            for (key, tag) in chosen.iter().copied() {
                let old = cell(key, ci);
                for kind in Kind::ALL {
                    let mut e = Edit {
                        table: ti,
                        column: ci,
                        kind,
                        row: key.clone(),
                        row_tag: tag.clone(),
                        value: Cell::Null,
                        partner: None,
                    };
                    let why = match kind {
                        Kind::Flip => match flipped(&old) {
                            Some(v) => {
                                e.value = v;
                                None
                            }
                            None => Some("nothing to flip (NULL or empty)"),
                        },
                        Kind::Null if old == Cell::Null => Some("already NULL"),
                        Kind::Null => None,
                        Kind::Root => {
                            e.value = Cell::text("[\"root\"]");
                            (old == e.value).then_some("already [\"root\"]")
                        }
                        Kind::Swap => {
                            let other = partners
                                .iter()
                                .find(|(k, _)| k != key && cell(k, ci) != old);
                            match other {
                                Some((k, ptag)) => {
                                    e.value = cell(k, ci);
                                    e.partner = Some((k.clone(), ptag.clone(), old.clone()));
                                    None
                                }
                                None => Some("no other row with a different value"),
                            }
                        }
                    };
                    match why {
                        Some(w) => skipped.push((e, w.to_string())),
                        None => jobs.push(e),
                    }
                }
            }
        }
    }
    (jobs, skipped)
}

fn describe(tables: &[Table], e: &Edit) -> String {
    let t = &tables[e.table];
    let key: Vec<String> = e.row.iter().map(Cell::short).collect();
    let mut s = format!(
        "{}.{} ({}) of row [{}] (from {}) to {}",
        t.name,
        t.columns[e.column].name,
        e.kind.name(),
        key.join(", "),
        e.row_tag,
        e.value.short()
    );
    if let Some((pk, ptag, pv)) = &e.partner {
        let pk: Vec<String> = pk.iter().map(Cell::short).collect();
        s.push_str(&format!(
            ", and row [{}] (from {ptag}) to {}",
            pk.join(", "),
            pv.short()
        ));
    }
    s
}

/// The first place where two JSON values differ, shortly.
fn first_diff(a: &Value, b: &Value, at: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (x.get(k), y.get(k));
                if va != vb {
                    return match (va, vb) {
                        (Some(va), Some(vb)) => first_diff(va, vb, &format!("{at}/{k}")),
                        _ => format!("{at}/{k}: {} -> {}", short(va), short(vb)),
                    };
                }
            }
            format!("{at}: equal")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if va != vb {
                    return first_diff(va, vb, &format!("{at}/{i}"));
                }
            }
            format!("{at}: equal")
        }
        _ => format!("{at}: {} -> {}", short(Some(a)), short(Some(b))),
    }
}

fn short(v: Option<&Value>) -> String {
    let s = v
        .map(|v| v.to_string())
        .unwrap_or_else(|| "(absent)".into());
    if s.len() > 120 {
        let mut end = 117;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Starts a server on `tmp` (retrying when the picked port was taken meanwhile).
fn start(tmp: tempfile::TempDir, audit_dir: &Path) -> (Server, Result<u16, String>) {
    let mut s = Server::spawn_on(tmp, audit_dir, Some("warn"));
    let mut r = s.wait_answering(Duration::from_secs(20));
    for _ in 0..3 {
        match &r {
            Err(e) if e.contains("in use") => {
                s.respawn();
                r = s.wait_answering(Duration::from_secs(20));
            }
            _ => break,
        }
    }
    (s, r)
}

struct Ctx<'a> {
    pop: &'a Population,
    probes: &'a [Probe],
    storage: PathBuf,
    key_file: PathBuf,
    audit_dir: PathBuf,
    tables: &'a [Table],
}

/// Runs the probes on a server started on a copy of the pristine store, after `edit`; again when
/// its port was taken by another process meanwhile (the probes may then have reached that one).
fn run(ctx: &Ctx<'_>, edit: Option<&Edit>) -> Result<Vec<Answer>, Vec<String>> {
    let mut r = run_once(ctx, edit);
    for _ in 0..3 {
        match &r {
            Err(e) if e.iter().any(|l| l.contains("cannot listen on")) => r = run_once(ctx, edit),
            _ => break,
        }
    }
    r
}

fn run_once(ctx: &Ctx<'_>, edit: Option<&Edit>) -> Result<Vec<Answer>, Vec<String>> {
    let tmp = populate::copy_store(&ctx.storage, &ctx.key_file);
    if let Some(e) = edit {
        apply(&tmp.path().join("storage").join("kvseal.db"), ctx.tables, e)
            .map_err(|err| vec![format!("n/a: {err}")])?;
    }
    let (mut s, started) = start(tmp, &ctx.audit_dir);
    if let Err(e) = started {
        let panicked = e.contains("panicked");
        return Err(vec![format!(
            "the server did not come up{}: {}",
            if panicked { " (it panicked)" } else { "" },
            e.trim()
        )]);
    }
    let c = Client::new(&s.addr);
    let mut answers = Vec::new();
    let mut errs = Vec::new();
    for p in ctx.probes {
        match populate::run_probe(&c, ctx.pop, p) {
            Ok(a) => answers.push(a),
            Err(e) => {
                errs.push(format!("{}: no answer ({e})", p.name));
                answers.push(Answer {
                    status: 0,
                    body: Value::Null,
                });
            }
        }
    }
    if !s.is_alive() {
        errs.push(format!(
            "the server died during the probes: {}",
            s.stderr_text()
        ));
    }
    s.kill9();
    let stderr = s.stderr_text();
    if stderr.contains("panicked") {
        errs.push(format!("stderr has a panic: {}", stderr.trim()));
    }
    if errs.is_empty() {
        Ok(answers)
    } else {
        Err(errs)
    }
}

/// Compares answers after an edit with the pristine ones.
fn judge(ctx: &Ctx<'_>, base: &[Answer], edit: &Edit) -> Outcome {
    let answers = match run(ctx, Some(edit)) {
        Ok(a) => a,
        Err(e) if e.len() == 1 && e[0].starts_with("n/a: ") => {
            return Outcome::NotApplicable(e[0][5..].to_string())
        }
        Err(e) => return Outcome::Fail(e),
    };
    // An edit of a row's key (its primary key columns, outside kvseal_meta) moves the row away:
    // where it was, it reads as deleted, and no barrier can tell that from a deletion (nothing
    // sealed lists a mount's keys or a key's rows; Vault's barrier cannot tell either). Answers
    // there may lose that row: an error, or a listing without it. Whatever the moved row would
    // serve at its new place must still fail (that is what the other probes check).
    let table = &ctx.tables[edit.table];
    let moves_row =
        table.name != "kvseal_meta" && table.key_cols.contains(&table.columns[edit.column].name);
    let mut fails = Vec::new();
    let mut detected = false;
    for ((p, b), a) in ctx.probes.iter().zip(base).zip(&answers) {
        let (was_ok, is_ok) = (b.status < 400, a.status < 400);
        match (was_ok, is_ok) {
            (true, true)
                if a != b && moves_row && a.status == b.status && lost_only(&a.body, &b.body) =>
            {
                detected = true
            }
            (true, true) if a != b => fails.push(format!(
                "{}: served another value ({} -> {}; {})",
                p.name,
                b.status,
                a.status,
                first_diff(&b.body, &a.body, "")
            )),
            (true, true) => {}
            (true, false) => detected = true,
            (false, true) => fails.push(if p.who == ROOT {
                format!(
                    "{}: was {}, now served ({} {})",
                    p.name,
                    b.status,
                    a.status,
                    short(Some(&a.body))
                )
            } else {
                format!(
                    "{}: the {} token gained this ({} -> {} {})",
                    p.name,
                    p.who,
                    b.status,
                    a.status,
                    short(Some(&a.body))
                )
            }),
            (false, false) => detected |= a.status != b.status,
        }
    }
    if !fails.is_empty() {
        Outcome::Fail(fails)
    } else if detected {
        Outcome::Detected
    } else {
        Outcome::Unchanged
    }
}

/// Whether `now` is `was` with some entries of its arrays gone and nothing else changed.
fn lost_only(now: &Value, was: &Value) -> bool {
    match (now, was) {
        (Value::Array(n), Value::Array(w)) => {
            n.len() < w.len() && n.iter().all(|x| w.contains(x))
                || n.len() == w.len() && n.iter().zip(w).all(|(x, y)| lost_only(x, y))
        }
        (Value::Object(n), Value::Object(w)) => {
            n.len() == w.len()
                && n.iter()
                    .all(|(k, x)| w.get(k).is_some_and(|y| lost_only(x, y)))
        }
        _ => now == was,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_edited_cell_is_served_as_valid_and_no_token_gains_a_capability() {
    let t0 = Instant::now();
    let per_table = env_usize("KVSEAL_TAMPER_ROWS", 1000).max(1);
    let threads = env_usize("KVSEAL_TAMPER_THREADS", 3).max(1);

    let (mut server, audit_dir) = populate::server(None);
    server.init();
    let pop = populate::populate(
        &server,
        &Markers::random(),
        &audit_dir,
        &format!("t{}", common::uid()),
    );
    let st = server.stop().expect("running");
    assert!(st.success(), "kvseal exited with {st} on SIGTERM");
    let probes = populate::probes(&pop);

    let c = db::open(&server.storage_dir().join("kvseal.db"));
    let tables = db::tables(&c);
    let rows: Vec<Vec<db::Row>> = tables.iter().map(|t| db::rows(&c, t)).collect();
    drop(c);
    assert!(!tables.is_empty(), "no tables in the store");

    let ctx = Ctx {
        pop: &pop,
        probes: &probes,
        storage: server.storage_dir(),
        key_file: server.key_file(),
        audit_dir: audit_dir.clone(),
        tables: &tables,
    };

    // The pristine answers, twice: each probe as designed, and the comparison is stable.
    let base = run(&ctx, None).unwrap_or_else(|e| panic!("pristine copy: {}", e.join("\n")));
    for (p, a) in probes.iter().zip(&base) {
        let ok = match p.expect {
            Expect::Any => a.status == 200 || a.status == 204 || a.status == 404,
            Expect::Allowed => a.status == 200 || a.status == 204,
            Expect::Denied => a.status == 403,
        };
        assert!(
            ok,
            "pristine copy, probe {}: {} {}",
            p.name, a.status, a.body
        );
    }
    let again = run(&ctx, None).unwrap_or_else(|e| panic!("pristine copy: {}", e.join("\n")));
    let unstable: Vec<String> = probes
        .iter()
        .zip(base.iter().zip(&again))
        .filter(|(_, (a, b))| a != b)
        .map(|(p, (a, b))| format!("{}: {}", p.name, first_diff(&a.body, &b.body, "")))
        .collect();
    assert!(
        unstable.is_empty(),
        "two pristine copies answer differently (a probe needs normalising):\n{}",
        unstable.join("\n")
    );
    let t_base = t0.elapsed();

    let (jobs, skipped) = plan(&pop, &tables, &rows, per_table);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(e) = jobs.get(i) else { break };
                let o = judge(&ctx, &base, e);
                results.lock().unwrap().push((i, o));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);

    // (table, column, edit) -> [n/a, unchanged, detected, FAIL]
    let mut counts: BTreeMap<(String, String, Kind), [usize; 4]> = BTreeMap::new();
    let key = |e: &Edit| {
        let t = &tables[e.table];
        (t.name.clone(), t.columns[e.column].name.clone(), e.kind)
    };
    for t in &tables {
        for c in &t.columns {
            for k in Kind::ALL {
                counts.insert((t.name.clone(), c.name.clone(), k), [0; 4]);
            }
        }
    }
    for (e, _) in &skipped {
        counts.get_mut(&key(e)).unwrap()[0] += 1;
    }
    let mut failures: Vec<(bool, String)> = Vec::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    // "NOT NULL constraint failed: t.c" counts as "NOT NULL constraint failed".
    let reason = |why: &str| why.split(':').next().unwrap_or(why).to_string();
    for (_, why) in &skipped {
        *reasons.entry(reason(why)).or_default() += 1;
    }
    let mut applied: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, o) in &results {
        let e = &jobs[*i];
        counts.get_mut(&key(e)).unwrap()[o.column()] += 1;
        if !matches!(o, Outcome::NotApplicable(_)) {
            let (t, c, _) = key(e);
            *applied.entry((t, c)).or_default() += 1;
        }
        if let Outcome::NotApplicable(why) = o {
            *reasons.entry(reason(why)).or_default() += 1;
        }
        if let Outcome::Fail(f) = o {
            let gained = f.iter().any(|l| l.contains(" token gained this"));
            let broke = f.iter().any(|l| {
                l.starts_with("the server did not come up")
                    || l.starts_with("the server died")
                    || l.starts_with("stderr has a panic")
                    || l.contains(": no answer (")
            });
            let what = match (gained, broke) {
                (true, _) => "a token gained a capability",
                (_, true) => "the server broke",
                _ => "an edited value was served",
            };
            *kinds.entry(what).or_default() += 1;
            let mut lines: Vec<String> = f.iter().take(6).cloned().collect();
            if f.len() > 6 {
                lines.push(format!("... and {} more probe(s)", f.len() - 6));
            }
            failures.push((
                !gained,
                format!(
                    "[{what}] {}:\n    {}",
                    describe(&tables, e),
                    lines.join("\n    ")
                ),
            ));
        }
    }

    let mut report = format!(
        "{:<16} {:<26} {:<14} {:>4} {:>9} {:>8} {:>5}\n",
        "table", "column", "edit", "n/a", "unchanged", "detected", "FAIL"
    );
    for ((t, c, k), n) in &counts {
        report.push_str(&format!(
            "{t:<16} {c:<26} {:<14} {:>4} {:>9} {:>8} {:>5}\n",
            k.name(),
            n[0],
            n[1],
            n[2],
            n[3]
        ));
    }
    let totals = counts.values().fold([0; 4], |mut acc, n| {
        for i in 0..4 {
            acc[i] += n[i];
        }
        acc
    });
    report.push_str(&format!(
        "{} edits tried ({} rows per table, {threads} threads): {} n/a, {} unchanged, {} detected, \
         {} FAIL; {} servers started; baseline {:.1?}, total {:.1?}\n",
        totals.iter().sum::<usize>(),
        per_table,
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        results
            .iter()
            .filter(|(_, o)| !matches!(o, Outcome::NotApplicable(_)))
            .count()
            + 2,
        t_base,
        t0.elapsed()
    ));
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} x {r}")).collect();
    report.push_str(&format!("n/a: {}\n", reasons.join("; ")));
    // Straight to stderr: the test harness captures print! and eprint!, and the table is wanted
    // on success too.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("\n{report}").as_bytes());

    let mut unexercised = Vec::new();
    for t in &tables {
        for c in &t.columns {
            if applied
                .get(&(t.name.clone(), c.name.clone()))
                .copied()
                .unwrap_or(0)
                == 0
            {
                unexercised.push(format!("{}.{}", t.name, c.name));
            }
        }
    }
    // Capabilities gained first.
    failures.sort_by_key(|(not_gained, _)| *not_gained);
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}: {k}")).collect();
    assert!(
        failures.is_empty(),
        "{} edit(s) of the storage file were not refused (issue 11: tampering must fail closed; \
         {}):\n{}\n\n{report}",
        failures.len(),
        kinds.join(", "),
        failures
            .iter()
            .map(|(_, f)| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        unexercised.is_empty(),
        "no applicable edit for: {} (every edit was refused by the schema or changed nothing)\n\n{report}",
        unexercised.join(", ")
    );
}
