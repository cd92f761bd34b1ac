//! Vault API request bodies: every KV v2 and sys endpoint that decodes a JSON body (weakly typed
//! fields: ints as strings, comma-separated version lists, durations, custom_metadata) gets a fuzzed
//! body. Nothing may panic and no body may produce a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ROUTES: [(&str, &str, &str); 12] = [
    ("POST", "/v1/secret/data/fz", "application/json"),
    (
        "PATCH",
        "/v1/secret/data/seed/s01",
        "application/merge-patch+json",
    ),
    ("POST", "/v1/secret/metadata/fz", "application/json"),
    (
        "PATCH",
        "/v1/secret/metadata/seed/s02",
        "application/merge-patch+json",
    ),
    ("POST", "/v1/secret/delete/seed/s03", "application/json"),
    ("POST", "/v1/secret/undelete/seed/s03", "application/json"),
    ("POST", "/v1/secret/destroy/seed/s04", "application/json"),
    ("POST", "/v1/secret/config", "application/json"),
    ("POST", "/v1/sys/policies/acl/fz", "application/json"),
    ("POST", "/v1/auth/token/create", "application/json"),
    ("POST", "/v1/sys/mounts/fz", "application/json"),
    ("POST", "/v1/sys/capabilities-self", "application/json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = data.split_first() else {
        return;
    };
    let (method, uri, ct) = ROUTES[*sel as usize % ROUTES.len()];
    let (status, resp) = kvseal_fuzz::call(method, uri, &[("Content-Type", ct)], body);
    kvseal_fuzz::assert_not_5xx(&format!("{method} {uri}"), status, &resp);
});
