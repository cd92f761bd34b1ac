//! OKMS API request bodies (`POST/PUT v2/secret`, versions, `secretConfig`): strict serde decoding
//! plus the field checks. Nothing may panic and no body may produce a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ROUTES: [(&str, &str); 6] = [
    ("POST", "v2/secret"),
    ("PUT", "v2/secret/seed%2Fs05"),
    ("POST", "v2/secret/seed%2Fs06/version"),
    ("PUT", "v2/secret/seed%2Fs07/version/1"),
    ("PUT", "v2/secretConfig"),
    ("PUT", "v2/secret/fz-missing"),
];

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = data.split_first() else {
        return;
    };
    let (method, rest) = ROUTES[*sel as usize % ROUTES.len()];
    let uri = format!("/api/{}/{rest}", kvseal_fuzz::OKMS_ID);
    let (status, resp) =
        kvseal_fuzz::call(method, &uri, &[("Content-Type", "application/json")], body);
    kvseal_fuzz::assert_not_5xx(&format!("{method} {uri}"), status, &resp);
});
