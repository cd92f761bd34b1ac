//! ACL policies: `policy::parse` (HCL and JSON) never panics; a parsed policy compiles with
//! `Acl::new` and answers `capabilities`, `allows` and `has_any_under` on fuzzed and fixed paths
//! without panicking.
#![no_main]

use kvseal::policy::{parse, Acl, Capabilities};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 10] = [
    "",
    "secret/data/foo",
    "secret/metadata/",
    "secret/data/a/b/c",
    "sys/mounts",
    "auth/token/lookup-self",
    "secret/+/x",
    "secret/data/*",
    "a//b",
    "\u{10FFFF}/x",
];

fuzz_target!(|data: &[u8]| {
    // Split the input: a policy text, and after the first 0xFF byte, paths to ask about.
    let (text, rest) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(policy) = parse("fuzz", text) else {
        return;
    };
    let acl = Acl::new(&[policy.clone(), policy]);
    let extra = String::from_utf8_lossy(rest);
    let mut paths: Vec<&str> = PATHS.to_vec();
    paths.extend(extra.split('\n'));
    for p in paths {
        let caps = acl.capabilities(p);
        let _ = caps.names();
        let _ = acl.allows(p, Capabilities::READ);
        let _ = acl.has_any_under(p);
    }
});
