//! Schema-agnostic access to a kvseal SQLite file, for the barrier tests: tables and columns come
//! from `sqlite_master` and `PRAGMA table_info`, rows are named by their primary key (or `rowid`),
//! and no column of today's schema is named here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use serde::{Deserialize, Serialize};

/// One SQLite value. Text is kept as raw bytes: an edited cell may no longer be UTF-8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Cell {
    fn from_ref(v: ValueRef<'_>) -> Cell {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(t.to_vec()),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }

    pub fn text(s: &str) -> Cell {
        Cell::Text(s.as_bytes().to_vec())
    }

    /// A short, printable form for reports.
    pub fn short(&self) -> String {
        let s = match self {
            Cell::Null => "NULL".to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Real(f) => f.to_string(),
            Cell::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
            Cell::Blob(b) => format!(
                "x'{}'",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
        };
        if s.len() > 40 {
            let mut end = 37;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &s[..end])
        } else {
            s
        }
    }
}

impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Cell::Null => ValueRef::Null,
            Cell::Int(i) => ValueRef::Integer(*i),
            Cell::Real(f) => ValueRef::Real(*f),
            Cell::Text(t) => ValueRef::Text(t),
            Cell::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub decl_type: String,
    pub not_null: bool,
    /// 1-based position in the primary key, 0 if not part of it.
    pub pk: i64,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// The columns naming a row: the primary key in order, or `rowid` when there is none.
    pub key_cols: Vec<String>,
}

/// A row's identity: its table and key values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowRef {
    pub table: String,
    pub key: Vec<Cell>,
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k: Vec<String> = self.key.iter().map(Cell::short).collect();
        write!(f, "{}[{}]", self.table, k.join(", "))
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub key: Vec<Cell>,
    /// One cell per column of the table, in `Table::columns` order.
    pub cells: Vec<Cell>,
}

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Opens a database file for reading and writing (never creating it).
pub fn open(path: &Path) -> Connection {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    c.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy_timeout");
    c
}

/// Every table but SQLite's own (`sqlite_%`), with its columns and key.
pub fn tables(c: &Connection) -> Vec<Table> {
    let mut st = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .expect("list tables");
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("list tables")
        .collect::<Result<_, _>>()
        .expect("list tables");
    names
        .into_iter()
        .map(|name| {
            let mut st = c
                .prepare(&format!("PRAGMA table_info({})", quote(&name)))
                .expect("table_info");
            let columns: Vec<Column> = st
                .query_map([], |r| {
                    Ok(Column {
                        name: r.get(1)?,
                        decl_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        not_null: r.get::<_, i64>(3)? != 0,
                        pk: r.get(5)?,
                    })
                })
                .expect("table_info")
                .collect::<Result<_, _>>()
                .expect("table_info");
            let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
            pk.sort_by_key(|c| c.pk);
            let key_cols = if pk.is_empty() {
                vec!["rowid".to_string()]
            } else {
                pk.iter().map(|c| c.name.clone()).collect()
            };
            Table {
                name,
                columns,
                key_cols,
            }
        })
        .collect()
}

/// Every row of `t`, ordered by its key.
pub fn rows(c: &Connection, t: &Table) -> Vec<Row> {
    let keys: Vec<String> = t.key_cols.iter().map(|k| quote(k)).collect();
    let cols: Vec<String> = t.columns.iter().map(|k| quote(&k.name)).collect();
    let sql = format!(
        "SELECT {}, {} FROM {} ORDER BY {}",
        keys.join(", "),
        cols.join(", "),
        quote(&t.name),
        keys.join(", ")
    );
    let nk = keys.len();
    let nc = cols.len();
    let mut st = c.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    st.query_map([], |r| {
        let key = (0..nk)
            .map(|i| r.get_ref(i).map(Cell::from_ref))
            .collect::<Result<_, _>>()?;
        let cells = (nk..nk + nc)
            .map(|i| r.get_ref(i).map(Cell::from_ref))
            .collect::<Result<_, _>>()?;
        Ok(Row { key, cells })
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .collect::<Result<_, _>>()
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Sets `col` of the row `key` of `t` to `value`; returns the number of rows changed, or the
/// error SQLite gave (a constraint, a type).
pub fn set_cell(
    c: &Connection,
    t: &Table,
    key: &[Cell],
    col: &str,
    value: &Cell,
) -> rusqlite::Result<usize> {
    let cond: Vec<String> = t
        .key_cols
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} IS ?{}", quote(k), i + 2))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} = ?1 WHERE {}",
        quote(&t.name),
        quote(col),
        cond.join(" AND ")
    );
    let mut params: Vec<&dyn ToSql> = vec![value];
    for k in key {
        params.push(k);
    }
    c.execute(&sql, params.as_slice())
}

/// The key of a row after its `col` was set to `value` (the key changes when `col` is part of it).
pub fn key_after(t: &Table, key: &[Cell], col: &str, value: &Cell) -> Vec<Cell> {
    let mut k = key.to_vec();
    if let Some(i) = t.key_cols.iter().position(|c| c == col) {
        k[i] = value.clone();
    }
    k
}

/// Every row of every table, by (table, key) → cells: for telling which rows a step added or changed.
pub type Snapshot = BTreeMap<String, (RowRef, Vec<Cell>)>;

pub fn snapshot(path: &Path) -> Snapshot {
    let c = open(path);
    let mut out = Snapshot::new();
    for t in tables(&c) {
        for r in rows(&c, &t) {
            let rr = RowRef {
                table: t.name.clone(),
                key: r.key,
            };
            out.insert(format!("{rr:?}"), (rr, r.cells));
        }
    }
    out
}

/// The rows of `after` that are not in `before` or differ from it.
pub fn changed(before: &Snapshot, after: &Snapshot) -> Vec<RowRef> {
    after
        .iter()
        .filter(|(k, (_, cells))| before.get(*k).map(|(_, b)| b != cells).unwrap_or(true))
        .map(|(_, (r, _))| r.clone())
        .collect()
}

/// `PRAGMA user_version` of a database file.
pub fn user_version(path: &Path) -> i64 {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}
