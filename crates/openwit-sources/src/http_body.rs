//! The payload of an HTTP response as a WARC file stores it: undoes `Transfer-Encoding: chunked`
//! and then each `Content-Encoding` (`gzip`/`x-gzip`, `deflate` zlib-wrapped or raw as browsers
//! accept it, `br`, `identity`), as warcio's `content_stream()` does. A body whose framing or
//! compression is broken is an error ([`BodyError`]), never bytes that mix chunk-size lines or
//! compressed data into the page (the WARC stage counts it as `undecodable_body`).
//!
//! Two lenient readings, both from warcio and browsers: a body that says `chunked` but does not
//! start with a chunk-size line was stored already de-chunked (some writers keep the header) and
//! is taken as it is; a chunked body that ends on a chunk boundary without the last `0` chunk is
//! complete so far. A record body cut by the reader's cap (`truncated`) decodes to the prefix it
//! holds instead of failing.
//!
//! ```
//! use openwit_sources::http_body::decode_payload;
//! let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
//! let got = decode_payload(Some("chunked"), None, body, false).unwrap();
//! assert_eq!(&got[..], b"hello world");
//! ```

use std::borrow::Cow;
use std::io::Read;

/// Most bytes a decoded body may have; the rest is cut off (a decompression bomb is cut, not
/// inflated in memory).
pub const MAX_DECODED_BYTES: usize = crate::warc::MAX_BODY_BYTES;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed chunked body at byte {at}: {what}")]
    Chunked { at: usize, what: &'static str },
    #[error("corrupt {encoding} body: {error}")]
    Corrupt {
        encoding: &'static str,
        error: String,
    },
    #[error("unsupported Content-Encoding `{0}`")]
    Unsupported(String),
}

/// Decodes a response body: `transfer_encoding` and `content_encoding` are the header values
/// (a comma-separated list each; `None` when absent); `truncated` says the stored body was cut
/// short by the reader (then an incomplete stream yields what it holds).
pub fn decode_payload<'a>(
    transfer_encoding: Option<&str>,
    content_encoding: Option<&str>,
    body: &'a [u8],
    truncated: bool,
) -> Result<Cow<'a, [u8]>, BodyError> {
    let mut data = Cow::Borrowed(body);
    if let Some(te) = transfer_encoding {
        // Codings in the order applied; only `chunked` (the last one) is seen in practice. Other
        // transfer codings (`gzip` ahead of chunked) decode as content codings do.
        let codings = codings(te);
        for c in codings.iter().rev() {
            data = if c.eq_ignore_ascii_case("chunked") {
                match dechunk(&data, truncated)? {
                    Some(d) => Cow::Owned(d),
                    None => data,
                }
            } else {
                Cow::Owned(decode_one(c, &data, truncated)?.into_owned())
            };
        }
    }
    if let Some(ce) = content_encoding {
        for c in codings(ce).iter().rev() {
            if let Cow::Owned(d) = decode_one(c, &data, truncated)? {
                data = Cow::Owned(d);
            }
        }
    }
    Ok(data)
}

fn codings(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// One content coding; `Borrowed` when it is the identity.
fn decode_one<'a>(
    coding: &str,
    data: &'a [u8],
    truncated: bool,
) -> Result<Cow<'a, [u8]>, BodyError> {
    let c = coding.to_ascii_lowercase();
    let (name, out) = match c.as_str() {
        "identity" | "none" => return Ok(Cow::Borrowed(data)),
        "gzip" | "x-gzip" => (
            "gzip",
            read_capped(flate2::read::MultiGzDecoder::new(data), truncated),
        ),
        "deflate" => {
            // zlib-wrapped as the RFC says; raw deflate as some servers send and browsers accept
            // (a zlib header is two bytes whose big-endian value is a multiple of 31, method 8).
            let zlib = data.len() >= 2
                && data[0] & 0x0f == 8
                && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
            let out = if zlib {
                read_capped(flate2::read::ZlibDecoder::new(data), truncated)
            } else {
                read_capped(flate2::read::DeflateDecoder::new(data), truncated)
            };
            ("deflate", out)
        }
        "br" => (
            "br",
            read_capped(
                brotli_decompressor::Decompressor::new(data, 1 << 16),
                truncated,
            ),
        ),
        _ => return Err(BodyError::Unsupported(coding.to_string())),
    };
    out.map(Cow::Owned).map_err(|e| BodyError::Corrupt {
        encoding: name,
        error: e.to_string(),
    })
}

/// Reads a decoder to its end, at most [`MAX_DECODED_BYTES`]. A stream that breaks off is an
/// error unless the input was truncated on purpose (then the prefix decoded so far is kept).
fn read_capped(r: impl Read, truncated: bool) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match r.take(MAX_DECODED_BYTES as u64).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if truncated && e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(out),
        Err(e) if truncated && !out.is_empty() => {
            tracing::debug!(error = %e, "a truncated compressed body: kept its decoded prefix");
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

/// Undoes chunked framing (RFC 9112 §7.1: hex size, optional `;extensions`, CRLF, data, CRLF;
/// a `0` chunk, then trailers). `None`: the body does not start with a chunk-size line, so it is
/// not chunked (kept as it is, as warcio does).
fn dechunk(data: &[u8], truncated: bool) -> Result<Option<Vec<u8>>, BodyError> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0usize;
    let mut first = true;
    loop {
        if i >= data.len() {
            // ended on a chunk boundary without the last chunk: what came is whole
            return Ok(Some(out));
        }
        let Some(nl) = memchr::memchr(b'\n', &data[i..]) else {
            if truncated {
                return Ok(Some(out));
            }
            return if first {
                Ok(None)
            } else {
                Err(BodyError::Chunked {
                    at: i,
                    what: "chunk-size line without an end",
                })
            };
        };
        let line = data[i..i + nl].trim_ascii();
        let size_part = match memchr::memchr(b';', line) {
            Some(p) => line[..p].trim_ascii(),
            None => line,
        };
        let size = (!size_part.is_empty()
            && size_part.len() <= 15
            && size_part.iter().all(u8::is_ascii_hexdigit))
        .then(|| {
            size_part.iter().fold(0usize, |n, &b| {
                n * 16 + (b as char).to_digit(16).unwrap_or(0) as usize
            })
        });
        let Some(size) = size else {
            if first {
                return Ok(None);
            }
            return Err(BodyError::Chunked {
                at: i,
                what: "invalid chunk-size line",
            });
        };
        first = false;
        i += nl + 1;
        if size == 0 {
            // trailers and the final CRLF are not payload
            return Ok(Some(out));
        }
        let Some(chunk) = data.get(i..i.saturating_add(size)) else {
            if truncated {
                out.extend_from_slice(&data[i.min(data.len())..]);
                return Ok(Some(out));
            }
            return Err(BodyError::Chunked {
                at: i,
                what: "chunk longer than the body",
            });
        };
        if out.len() + chunk.len() > MAX_DECODED_BYTES {
            out.extend_from_slice(&chunk[..MAX_DECODED_BYTES - out.len()]);
            return Ok(Some(out));
        }
        out.extend_from_slice(chunk);
        i += size;
        // the CRLF after the data (a bare LF is accepted, as browsers do)
        let rest = &data[i..];
        if rest.starts_with(b"\r\n") {
            i += 2;
        } else if rest.starts_with(b"\n") {
            i += 1;
        } else if rest.is_empty() || (truncated && rest == b"\r") {
            i = data.len();
        } else {
            return Err(BodyError::Chunked {
                at: i,
                what: "chunk data not followed by CRLF",
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chunk(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend(format!("{:x}\r\n", p.len()).bytes());
            v.extend_from_slice(p);
            v.extend(b"\r\n");
        }
        v.extend(b"0\r\n\r\n");
        v
    }

    fn gzip(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn zlib(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    const PAGE: &[u8] = "<img src=a.jpg alt=\"red car — ünïcode\">".as_bytes();

    #[test]
    fn chunked_with_extensions_trailers_and_split_captions() {
        let body = chunk(&[&PAGE[..13], &PAGE[13..22], &PAGE[22..]]);
        let got = decode_payload(Some("chunked"), None, &body, false).unwrap();
        assert_eq!(&got[..], PAGE);
        let ext = b"4;name=val\r\nabcd\r\n2\nef\n0\r\nTrailer: x\r\n\r\n";
        let got = decode_payload(Some("Chunked"), None, ext, false).unwrap();
        assert_eq!(&got[..], b"abcdef");
        // no last chunk, ends on a boundary: whole so far
        let got = decode_payload(Some("chunked"), None, b"3\r\nabc\r\n", false).unwrap();
        assert_eq!(&got[..], b"abc");
    }

    #[test]
    fn broken_chunking_is_an_error_not_a_mixed_body() {
        for bad in [
            &b"3\r\nabc\r\nzz\r\nxyz\r\n0\r\n\r\n"[..],
            b"10\r\nshort\r\n",
            b"3\r\nabcdef\r\n0\r\n\r\n",
            b"3\r\nabc\r\n5",
        ] {
            let e = decode_payload(Some("chunked"), None, bad, false).unwrap_err();
            assert!(matches!(e, BodyError::Chunked { .. }), "{e}");
        }
        // a truncated record keeps the prefix
        let got = decode_payload(Some("chunked"), None, b"3\r\nabc\r\n10\r\nshort", true).unwrap();
        assert_eq!(&got[..], b"abcshort");
        // a body stored de-chunked under a chunked header stays as it is
        let got = decode_payload(Some("chunked"), None, PAGE, false).unwrap();
        assert!(matches!(got, Cow::Borrowed(_)));
        assert_eq!(&got[..], PAGE);
    }

    #[test]
    fn content_codings_and_stacks() {
        let br = {
            let mut v = Vec::new();
            brotli_encode(PAGE, &mut v);
            v
        };
        for (ce, body) in [
            ("gzip", gzip(PAGE)),
            ("x-gzip", gzip(PAGE)),
            ("deflate", zlib(PAGE)),
            ("deflate", raw_deflate(PAGE)),
            ("br", br),
            ("identity", PAGE.to_vec()),
            ("gzip, deflate", zlib(&gzip(PAGE))),
        ] {
            let got = decode_payload(None, Some(ce), &body, false).unwrap();
            assert_eq!(&got[..], PAGE, "{ce}");
            // and chunked on top
            let ch = chunk(&[&body[..body.len() / 2], &body[body.len() / 2..]]);
            let got = decode_payload(Some("chunked"), Some(ce), &ch, false).unwrap();
            assert_eq!(&got[..], PAGE, "chunked {ce}");
        }
    }

    fn brotli_encode(d: &[u8], out: &mut Vec<u8>) {
        let mut w = brotli::CompressorWriter::new(out, 4096, 5, 22);
        w.write_all(d).unwrap();
    }

    #[test]
    fn corrupt_and_unknown_codings_are_errors() {
        let mut g = gzip(PAGE);
        let n = g.len();
        g[n / 2] ^= 0xff;
        g[n / 2 + 1] ^= 0xff;
        assert!(decode_payload(None, Some("gzip"), &g, false).is_err());
        assert!(decode_payload(None, Some("gzip"), PAGE, false).is_err());
        assert!(decode_payload(None, Some("br"), PAGE, false).is_err());
        assert!(decode_payload(None, Some("deflate"), b"\xff\xff\xff\xff", false).is_err());
        assert!(matches!(
            decode_payload(None, Some("compress"), PAGE, false),
            Err(BodyError::Unsupported(_))
        ));
        // a gzip body cut by the reader's cap keeps its decoded prefix
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let g = gzip(&big);
        let cut = &g[..g.len() / 2];
        assert!(decode_payload(None, Some("gzip"), cut, false).is_err());
        let got = decode_payload(None, Some("gzip"), cut, true).unwrap();
        assert!(!got.is_empty() && big.starts_with(&got));
    }

    #[test]
    fn decompression_bombs_are_capped() {
        let zeros = vec![0u8; MAX_DECODED_BYTES + 4096];
        let g = gzip(&zeros);
        assert!(g.len() < 64 << 10);
        let got = decode_payload(None, Some("gzip"), &g, false).unwrap();
        assert_eq!(got.len(), MAX_DECODED_BYTES);
    }
}
