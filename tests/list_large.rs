//! LIST over a folder with 10,000 keys plus subfolders, unpaginated and
//! paginated with `after` / `limit`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use common::{uid, Http, Server};
use serde_json::{json, Value};

const KEYS: usize = 10_000;
const THREADS: usize = 16;

/// Writes all `names` under `secret/data/<dir>/` with THREADS keep-alive clients.
fn write_all(server: &Server, dir: &str, names: Arc<Vec<String>>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..THREADS {
        let http = Http::new(&server.addr, &server.token);
        let names = names.clone();
        let next = next.clone();
        let dir = dir.to_string();
        hs.push(thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= names.len() {
                break;
            }
            let r = http.post(
                &format!("secret/data/{dir}/{}", names[i]),
                &json!({"data": {"i": i}}),
            );
            assert_eq!(r.status, 200, "write {}: {}", names[i], r.text);
        }));
    }
    for h in hs {
        h.join().expect("writer panicked");
    }
}

fn keys_of(body: &Value, ctx: &str) -> Vec<String> {
    let data = body["data"]
        .as_object()
        .unwrap_or_else(|| panic!("{ctx}: no data object"));
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["keys"],
        "{ctx}: data must be exactly {{\"keys\":[...]}}"
    );
    data["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: keys is not an array"))
        .iter()
        .map(|k| {
            k.as_str()
                .unwrap_or_else(|| panic!("{ctx}: non-string key {k}"))
                .to_string()
        })
        .collect()
}

/// Walks the folder page by page. `use_get` selects GET ?list=true instead of
/// the LIST verb. Stops on a short page or a 404 (past the end).
fn walk_pages(http: &Http, dir: &str, limit: usize, use_get: bool) -> (Vec<String>, usize) {
    let mut out: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = format!("limit={limit}");
        if let Some(a) = &after {
            q.push_str(&format!("&after={}", enc(a)));
        }
        let r = if use_get {
            http.get(&format!("secret/metadata/{dir}?list=true&{q}"))
        } else {
            http.list(&format!("secret/metadata/{dir}?{q}"))
        };
        if r.status == 404 && after.is_some() {
            assert_eq!(r.json, json!({"errors": []}), "past-the-end page body");
            break;
        }
        assert_eq!(r.status, 200, "page after {after:?}: {}", r.text);
        let ctx = format!("page after {after:?} limit {limit}");
        let page = keys_of(&r.json, &ctx);
        pages += 1;
        assert!(!page.is_empty(), "{ctx}: empty page with 200");
        assert!(
            page.len() <= limit,
            "{ctx}: page has {} keys, limit {limit}",
            page.len()
        );
        if let Some(a) = &after {
            assert!(
                page[0].as_str() > a.as_str(),
                "{ctx}: first key {:?} not after {a:?}",
                page[0]
            );
        }
        let short = page.len() < limit;
        after = page.last().cloned();
        out.extend(page);
        if short {
            break;
        }
        assert!(pages <= KEYS + 10, "pagination does not terminate");
    }
    (out, pages)
}

/// Percent-encodes a query value (keys here are ASCII letters, digits, '-', '/').
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn list_10k_keys_unpaginated_and_paginated() {
    let server = Server::dev_or_external();
    let http = server.http();
    let dir = format!("big-{}", uid());

    // Unpadded numbers so lexicographic order != numeric order, and folders
    // that sort in between keys ("key-5" < "key-5/" < "key-50").
    let mut names: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    let subs = [
        "key-5/x",
        "key-5/y/z",
        "aaa/one",
        "zzz/two",
        "key-9999/deep/er",
    ];
    names.extend(subs.iter().map(|s| s.to_string()));
    let t0 = Instant::now();
    write_all(&server, &dir, Arc::new(names));
    eprintln!("wrote {} keys in {:?}", KEYS + subs.len(), t0.elapsed());

    let mut expected: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    expected.extend(["key-5/", "aaa/", "zzz/", "key-9999/"].map(String::from));
    expected.sort();
    assert_eq!(expected.len(), KEYS + 4);

    // Unpaginated, LIST verb and GET ?list=true, with and without trailing /.
    let t0 = Instant::now();
    let r = http.list(&format!("secret/metadata/{dir}/"));
    eprintln!("unpaginated LIST took {:?}", t0.elapsed());
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(500)]);
    let all = keys_of(&r.json, "LIST unpaginated");
    assert_eq!(all.len(), expected.len(), "number of entries");
    assert_eq!(all, expected, "LIST must return all keys + folders, sorted");
    let r = http.get(&format!("secret/metadata/{dir}?list=true"));
    assert_eq!(r.status, 200);
    assert_eq!(keys_of(&r.json, "GET ?list=true"), expected);

    // A subfolder lists only its direct children.
    let r = http.list(&format!("secret/metadata/{dir}/key-5"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys_of(&r.json, "key-5/"), ["x", "y/"]);

    // Paginated walks: concatenation == unpaginated, no dups, no gaps.
    for (limit, use_get) in [(1000, false), (777, true), (10_004, false), (4096, true)] {
        let t0 = Instant::now();
        let (walked, pages) = walk_pages(&http, &dir, limit, use_get);
        eprintln!(
            "limit {limit} ({}) -> {pages} pages in {:?}",
            if use_get { "GET" } else { "LIST" },
            t0.elapsed()
        );
        let uniq: HashSet<&String> = walked.iter().collect();
        assert_eq!(uniq.len(), walked.len(), "limit {limit}: duplicates");
        assert_eq!(walked.len(), expected.len(), "limit {limit}: count");
        assert_eq!(walked, expected, "limit {limit}: pages != unpaginated");
        assert_eq!(
            pages,
            expected.len().div_ceil(limit),
            "limit {limit}: pages"
        );
    }

    // Exact page contents around a folder boundary.
    let r = http.list(&format!("secret/metadata/{dir}?after=key-5&limit=3"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys_of(&r.json, "after=key-5"),
        ["key-5/", "key-50", "key-500"]
    );
    let r = http.list(&format!(
        "secret/metadata/{dir}?after={}&limit=2",
        enc("key-5/")
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys_of(&r.json, "after=key-5/"), ["key-50", "key-500"]);
    // `after` need not exist: the page starts at the next greater entry.
    let r = http.list(&format!("secret/metadata/{dir}?after=key-9998z&limit=5"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys_of(&r.json, "after=key-9998z"),
        ["key-9999", "key-9999/", "zzz/"]
    );
    // Past the end: 404 {"errors":[]}.
    let r = http.list(&format!("secret/metadata/{dir}?after=zzz/&limit=3"));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json, json!({"errors": []}));
}
