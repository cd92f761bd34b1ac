//! The OKMS pagination cursor and size (`X-Pagination-Cursor`, `X-Pagination-Size`) on the secret
//! list and the version list. A cursor that is not one the server issued is a 400, never a panic or
//! a 5xx; a cursor the server issued continues the walk.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = data.split_first() else {
        return;
    };
    // Header values must be visible ASCII for the HTTP layer; keep what the decoder can see.
    let cursor: String = rest
        .iter()
        .map(|b| *b as char)
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let uri = if sel & 1 == 0 {
        format!("/api/{}/v2/secret", kvseal_fuzz::OKMS_ID)
    } else {
        format!("/api/{}/v2/secret/seed%2Fs08/version", kvseal_fuzz::OKMS_ID)
    };
    let size = ["10", "100", "", "11", "0", "abc"][(*sel as usize >> 1) % 6];
    let mut headers = vec![("X-Pagination-Cursor", cursor.as_str())];
    if !size.is_empty() {
        headers.push(("X-Pagination-Size", size));
    }
    let (status, resp) = kvseal_fuzz::call("GET", &uri, &headers, b"");
    kvseal_fuzz::assert_not_5xx(&format!("GET {uri} cursor {cursor:?}"), status, &resp);
});
