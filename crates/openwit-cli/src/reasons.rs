//! Drop reasons in words: the stages count drops under short tokens (`duplicate`, `http_404`,
//! `opted_out:noai`, ...); the run's output and `openwit status` say what each one means, and
//! where the dropped rows can be looked at.

/// What `n` items dropped for `reason` means, as a sentence a user can read. `unit` is what the
/// stage counts (pairs, pages, rows, ...).
pub fn explain(stage: &str, reason: &str, n: u64) -> String {
    let unit = unit(stage, n);
    let what: String = match reason {
        "duplicate" | "duplicate_image" => {
            "the same image as an earlier pair (each image is kept once)".into()
        }
        "near_duplicate" => {
            "an image that looks the same as an earlier one (perceptual hash; each is kept once)".into()
        }
        "duplicate_url" => "the same image URL as an earlier pair (each URL is kept once)".into(),
        "duplicate_url_caption" => {
            "the same image URL and caption as an earlier pair (kept once)".into()
        }
        "robots_disallowed" => "the site's robots.txt asks crawlers not to fetch these".into(),
        "opted_out_page" => "on pages that opt out (noai, noimageai, noindex, ... in X-Robots-Tag or <meta name=\"robots\">)".into(),
        "opted_out" => "opted out (noai, noimageai, noindex, ... in X-Robots-Tag)".into(),
        "tracking_pixel" => "tracking pixels or spacers (1x1 or tiny images), not pictures".into(),
        "forbidden_address" => "on private, loopback or other non-public addresses, which are never fetched (allow_private_networks = true lifts this)".into(),
        "timeout" => "timed out (the server did not answer in time, after the retries)".into(),
        "stalled" => "stalled mid-body (no bytes for read_timeout seconds)".into(),
        "connect_error" => "the server could not be connected to".into(),
        "connection_reset" | "reset_mid_body" => "cut off by the server mid-transfer".into(),
        "dns_error" => "a host name that does not resolve".into(),
        "too_many_redirects" => "more than 5 redirects".into(),
        "redirect_loop" => "redirects in a loop".into(),
        "bad_redirect" => "a redirect to a malformed or non-HTTP address".into(),
        "bad_url" | "invalid_url" | "non_http_url" | "invalid_page_url" => {
            "a URL that is malformed or not http(s)".into()
        }
        "url_too_long" => "a URL that is too long".into(),
        "data_uri" => "an image embedded in the page as a data: URI (no URL to fetch)".into(),
        "no_target_uri" => "an archive response record without its page URL".into(),
        "empty_body" => "an empty answer".into(),
        "too_large" => "larger than max_body_bytes (or the pixel limit)".into(),
        "wrong_content_type" => "not an image (the server sent another content type)".into(),
        "corrupt_image" => "not a decodable image (corrupt data)".into(),
        "truncated_image" | "truncated_file" => "cut short (the file ends early)".into(),
        "unsupported_format" => "an image format the decoder does not read".into(),
        "bomb" => "more pixels declared than allowed (a decompression bomb)".into(),
        "decode_panic" => "the image decoder crashed (caught; please report the URL)".into(),
        "resize_error" | "failed_to_resize" => "the image could not be resized".into(),
        "encode_error" => "the image could not be re-encoded".into(),
        "undecodable_body" => "an HTTP body whose encoding cannot be decoded".into(),
        "missing_url" | "no_image_url" => "no image URL".into(),
        "missing_caption" | "no_caption" | "caption_empty" => "no caption".into(),
        "caption_too_long" => "a caption that is too long".into(),
        "caption_too_short" => "a caption that is too short".into(),
        "caption_too_few_words" => "a caption with too few words".into(),
        "caption_boilerplate" => "a boilerplate caption (\"image\", \"photo\", \"logo\", ...)".into(),
        "caption_camera_name" => "a caption that is a camera file name (IMG_1234, DSC01234, ...)".into(),
        "caption_url_or_path" => "a caption that is a URL or a file path".into(),
        "language_not_kept" => "a caption not in the language kept (English by default)".into(),
        "no_match" => "a caption that contains no query entry".into(),
        "invalid_utf8" => "not valid UTF-8 text".into(),
        "malformed_json" => "not valid JSON".into(),
        "not_an_object" => "a JSON value that is not an object".into(),
        "unterminated_quote" => "inside an unterminated CSV quote".into(),
        "bad_quote" => "a stray quote (not RFC 4180 CSV)".into(),
        "field_count" => "a different number of fields than the header".into(),
        "unreadable_row_group" => "in a parquet row group that cannot be read".into(),
        "malformed_record" | "malformed_http" | "malformed_wat" | "record_too_long" => {
            "a malformed archive record".into()
        }
        "not_html" | "not_text" => "not an HTML page".into(),
        "out_of_scope" => "outside the crawl's scope (other hosts or prefixes)".into(),
        "page_truncated" => "cut at max_page_bytes".into(),
        r if r.starts_with("opted_out:") => format!(
            "opted out with `{}` (X-Robots-Tag or <meta name=\"robots\">)",
            &r["opted_out:".len()..]
        ),
        r if r.starts_with("http_") => {
            format!("HTTP status {} from the server", &r["http_".len()..])
        }
        other => format!("dropped as `{other}`"),
    };
    format!("{n} {unit}: {what}")
}

/// What a stage counts, for `n` of them.
fn unit(stage: &str, n: u64) -> &'static str {
    let one = n == 1;
    match stage {
        "download" | "curate" | "balance" => {
            if one {
                "pair"
            } else {
                "pairs"
            }
        }
        "crawl" | "warc" | "import" => {
            if one {
                "candidate"
            } else {
                "candidates"
            }
        }
        "queries" => {
            if one {
                "page"
            } else {
                "pages"
            }
        }
        _ => {
            if one {
                "item"
            } else {
                "items"
            }
        }
    }
}

/// Where the dropped rows of `stage` are listed, relative to the workdir, if anywhere.
pub fn where_listed(stage: &str) -> Option<&'static str> {
    match stage {
        "download" => Some(
            "download/*.parquet: one row per pair, status \"failed_to_download\" and the reason in error_message",
        ),
        "curate" => Some(
            "curate/dropped/*.parquet: url, caption and reason of each row the filters dropped; curate/part-*.parquet: rows balancing left out have kept = false",
        ),
        "crawl" => Some(
            "crawl/dropped/crawl.parquet: one row per dropped page or image: url, page_url, caption, the seed (input), reason and detail",
        ),
        "warc" => Some(
            "warc/dropped/*.parquet: one row per dropped record or image: url, page_url, caption, the WARC file (input) and record offset, reason and detail",
        ),
        "import" => Some(
            "import/dropped/*.parquet: one row per dropped row: the list file (input), row, line and byte offset, url and caption as read, reason and detail",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_prefixed_and_unknown_reasons() {
        assert_eq!(
            explain("download", "duplicate", 75),
            "75 pairs: the same image as an earlier pair (each image is kept once)"
        );
        assert_eq!(
            explain("download", "duplicate", 1),
            "1 pair: the same image as an earlier pair (each image is kept once)"
        );
        assert_eq!(
            explain("download", "http_404", 3),
            "3 pairs: HTTP status 404 from the server"
        );
        assert!(explain("crawl", "opted_out:noai", 2).contains("`noai`"));
        assert_eq!(
            explain("warc", "something_new", 4),
            "4 candidates: dropped as `something_new`"
        );
    }

    #[test]
    fn every_stage_that_lists_its_drops_says_where() {
        for (stage, at) in [
            ("download", "download/*.parquet"),
            ("curate", "curate/dropped/*.parquet"),
            ("crawl", "crawl/dropped/crawl.parquet"),
            ("warc", "warc/dropped/*.parquet"),
            ("import", "import/dropped/*.parquet"),
        ] {
            let w = where_listed(stage).unwrap_or_else(|| panic!("{stage} is not listed"));
            assert!(w.starts_with(at), "{stage}: {w}");
            assert!(w.contains("reason"), "{stage}: {w}");
        }
        assert_eq!(where_listed("queries"), None);
    }
}
