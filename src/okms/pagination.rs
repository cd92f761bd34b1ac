//! `X-Pagination-Size` / `X-Pagination-Cursor` in, `X-Pagination-Cursor-Next` out.
//!
//! A cursor is the base64url of the last key (or version number) of the previous page. The next
//! page starts strictly after it, by an index range scan, so a page costs O(log n + size) and an
//! entry that exists for the whole walk is returned exactly once, whatever is written in between.

use actix_web::HttpRequest;
use base64::Engine as _;

use super::error::{OkmsError, OkmsResult};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub const DEFAULT_SIZE: usize = 100;

pub struct Page {
    pub size: usize,
    /// The decoded cursor: list after this.
    pub after: Option<String>,
}

pub fn from_request(req: &HttpRequest) -> OkmsResult<Page> {
    let header = |name: &str| -> OkmsResult<Option<String>> {
        match req.headers().get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_string()))
                .map_err(|_| OkmsError::bad(format!("{name} is not valid text"))),
        }
    };
    let size = match header("X-Pagination-Size")? {
        None => DEFAULT_SIZE,
        Some(s) if s.is_empty() => DEFAULT_SIZE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (10..=100).contains(&n) => n,
            _ => {
                return Err(OkmsError::bad(format!(
                    "X-Pagination-Size must be an integer from 10 to 100, got {s:?}"
                )))
            }
        },
    };
    let after = match header("X-Pagination-Cursor")? {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => Some(decode_cursor(&c)?),
    };
    Ok(Page { size, after })
}

pub fn encode_cursor(last: &str) -> String {
    B64.encode(last.as_bytes())
}

pub fn decode_cursor(c: &str) -> OkmsResult<String> {
    let bad = || OkmsError::bad("X-Pagination-Cursor is not a cursor this server issued");
    let bytes = B64.decode(c.trim_end_matches('=')).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    if s.is_empty() || s.contains('\0') {
        return Err(bad());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for k in ["a", "prod/db/MySQL", "x=y@z:1"] {
            assert_eq!(decode_cursor(&encode_cursor(k)).unwrap(), k);
        }
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&B64.encode([0xff, 0xfe])).is_err());
    }
}
