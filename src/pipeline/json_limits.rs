//! JSON complexity limits, enforced on the raw bytes **before** the body is parsed: one linear pass
//! with no allocation beyond a stack as deep as the depth limit. Checking a parsed `Value` afterwards
//! (as kvseal did) let a 32 MB body of `[[],[],…]` cost half a gigabyte before it was refused.
//!
//! The scan does not validate JSON (serde_json does that next, on bytes known to be within limits);
//! it only counts. Malformed input is never refused here for being malformed.

/// The limits of `[limits]` (`max_json_depth`, `…_object_entries`, `…_array_elements`,
/// `…_string_length`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonLimits {
    pub depth: usize,
    pub object_entries: usize,
    pub array_elements: usize,
    pub string_length: usize,
}

impl JsonLimits {
    pub fn from_config(l: &crate::config::Limits) -> Self {
        Self {
            depth: l.max_json_depth,
            object_entries: l.max_json_object_entries,
            array_elements: l.max_json_array_elements,
            string_length: l.max_json_string_length,
        }
    }
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self::from_config(&crate::config::Limits::default())
    }
}

struct Frame {
    array: bool,
    /// Elements (arrays) or keys (objects) seen so far.
    count: usize,
    /// In an array: a value has started since `[` (so the first element counts once).
    started: bool,
}

/// Checks `body` against `limits`; the message says which limit was exceeded.
pub fn check(body: &[u8], limits: &JsonLimits) -> Result<(), String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'"' => {
                // A string: count its raw bytes up to the closing quote (escapes included, so the
                // count is an upper bound of the decoded length).
                let start = i + 1;
                let mut j = start;
                while j < body.len() && body[j] != b'"' {
                    j += if body[j] == b'\\' { 2 } else { 1 };
                }
                let len = j.min(body.len()) - start;
                if len > limits.string_length {
                    return Err(format!(
                        "a JSON string exceeds the limit of {} bytes",
                        limits.string_length
                    ));
                }
                value_starts(&mut stack, limits)?;
                i = j + 1;
                continue;
            }
            b'{' | b'[' => {
                value_starts(&mut stack, limits)?;
                if stack.len() + 1 > limits.depth {
                    return Err(format!(
                        "JSON nesting exceeds the limit of {}",
                        limits.depth
                    ));
                }
                stack.push(Frame {
                    array: b == b'[',
                    count: 0,
                    started: false,
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(f) = stack.last_mut() {
                    if f.array {
                        f.started = false;
                    }
                }
            }
            b':' => {
                if let Some(f) = stack.last_mut() {
                    if !f.array {
                        f.count += 1;
                        if f.count > limits.object_entries {
                            return Err(format!(
                                "a JSON object exceeds the limit of {} entries",
                                limits.object_entries
                            ));
                        }
                    }
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            // The first byte of a number or a literal (true, false, null): one value.
            _ => {
                value_starts(&mut stack, limits)?;
                while i + 1 < body.len()
                    && !matches!(
                        body[i + 1],
                        b',' | b']' | b'}' | b':' | b'"' | b' ' | b'\t' | b'\r' | b'\n'
                    )
                {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// A value starts at the current position: in an array, it is one more element.
fn value_starts(stack: &mut [Frame], limits: &JsonLimits) -> Result<(), String> {
    if let Some(f) = stack.last_mut() {
        if f.array && !f.started {
            f.started = true;
            f.count += 1;
            if f.count > limits.array_elements {
                return Err(format!(
                    "a JSON array exceeds the limit of {} elements",
                    limits.array_elements
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: JsonLimits = JsonLimits {
        depth: 3,
        object_entries: 2,
        array_elements: 3,
        string_length: 5,
    };

    #[test]
    fn limits_table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            (r#"{"a":"b"}"#, Ok(())),
            (r#"{"a":[1,2,3]}"#, Ok(())),
            (r#"{"a":[1,2,3,4]}"#, Err("array")),
            (r#"{"a":["","","",""]}"#, Err("array")),
            (r#"{"a":[[],[],[]]}"#, Ok(())),
            (r#"{"a":[[],[],[],[]]}"#, Err("array")),
            (r#"{"a":1,"b":2}"#, Ok(())),
            (r#"{"a":1,"b":2,"c":3}"#, Err("object")),
            (r#"{"a":{"b":{}}}"#, Ok(())),
            (r#"{"a":{"b":{"c":{}}}}"#, Err("nesting")),
            (r#"[[["x"]]]"#, Ok(())),
            (r#"[[[[]]]]"#, Err("nesting")),
            (r#"{"a":"12345"}"#, Ok(())),
            (r#"{"a":"123456"}"#, Err("string")),
            (r#"{"abcdef":1}"#, Err("string")),
            // Escaped quotes do not end a string; colons and commas inside strings do not count.
            (r#"{"a":"\",:,"}"#, Ok(())),
            (r#"{"a":"x,y"}"#, Ok(())),
            // Numbers and literals are single elements.
            (r#"[12345678, true, null]"#, Ok(())),
            (r#"[1, 2, 3, false]"#, Err("array")),
            ("", Ok(())),
        ];
        for (body, want) in cases {
            let got = check(body.as_bytes(), &L);
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(word), Err(msg)) if msg.contains(word) => {}
                _ => panic!("{body}: expected {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_huge_flat_array_is_refused_without_allocating_its_elements() {
        let mut body = b"{\"a\":[".to_vec();
        for _ in 0..1_000_000 {
            body.extend_from_slice(b"\"\",");
        }
        body.extend_from_slice(b"\"\"]}");
        let err = check(&body, &JsonLimits::default()).unwrap_err();
        assert!(err.contains("array"), "{err}");
    }
}
