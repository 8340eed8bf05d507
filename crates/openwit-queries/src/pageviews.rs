//! Wikimedia hourly pageview files (`pageviews-YYYYMMDD-HH0000.gz`, lines
//! `domain_code page_title count_views total_response_size`), summed per English title the way
//! MetaCLIP's `build_metadata.py` does: only lines of the `en` project (the desktop site; `en.m`
//! is another project), `_` -> space, titles containing `:` skipped, hourly counts below the
//! hourly minimum (50) skipped, the rest summed per title.

use std::collections::BTreeMap;
use std::path::Path;

use openwit_core::Drops;

use crate::error::Result;
use crate::lines::Lines;

pub const BAD_LINE: &str = "pageview_bad_line";
pub const INVALID_UTF8: &str = "pageview_invalid_utf8";

/// Sums the `en` views of one pageview file (plain, gzip or bzip2) per title, keeping hourly
/// counts of at least `min_hourly`. Returns the sums (sorted by title) and the number of lines read.
pub fn read_file(
    path: &Path,
    min_hourly: u64,
    drops: &mut Drops,
) -> Result<(BTreeMap<String, u64>, u64)> {
    let mut lines = Lines::open(path, "the file is damaged or truncated: download it again")?;
    let mut sums = BTreeMap::new();
    while let Some(line) = lines.next_line()? {
        if !line.starts_with(b"en ") {
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            drops.inc(INVALID_UTF8);
            continue;
        };
        let fields: Vec<&str> = text.trim().split(' ').collect();
        if fields.len() != 4 {
            drops.inc(BAD_LINE);
            continue;
        }
        let Ok(count) = fields[2].parse::<u64>() else {
            drops.inc(BAD_LINE);
            continue;
        };
        let title = fields[1].trim().replace('_', " ");
        if count < min_hourly || title.contains(':') || title.is_empty() {
            continue;
        }
        // saturating: two hostile counts near u64::MAX must not overflow (found by fuzzing)
        let sum = sums.entry(title).or_insert(0u64);
        *sum = sum.saturating_add(count);
    }
    Ok((sums, lines.lines_read()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    #[test]
    fn sums_like_metaclip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pageviews-20240101-000000.gz");
        let mut gz = flate2::write::GzEncoder::new(File::create(&p).unwrap(), Default::default());
        gz.write_all(
            b"en Red_fox 60 0\nen Red_fox 49 0\nen.m Red_fox 500 0\nde Hund 900 0\n\
              en Special:Search 999 0\nen Dog 50 0\nen broken line\nen Cat x 0\n",
        )
        .unwrap();
        gz.finish().unwrap();
        let mut drops = Drops::default();
        let (sums, n) = read_file(&p, 50, &mut drops).unwrap();
        assert_eq!(n, 8);
        assert_eq!(
            sums.into_iter().collect::<Vec<_>>(),
            vec![("Dog".to_string(), 50), ("Red fox".to_string(), 60)]
        );
        assert_eq!(drops.get(BAD_LINE), 2);
    }

    /// `fuzz_targets/pageviews_read` (minimized): two lines of one title whose counts add up past
    /// `u64::MAX` overflowed the sum (a panic with overflow checks, a wrapped count without).
    #[test]
    fn huge_counts_saturate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pageviews-fuzz");
        std::fs::write(
            &p,
            b"en \0\0ryxd 12475941756269202994 0\nen \0\0ryxd 12475941756269202994 0",
        )
        .unwrap();
        let mut drops = Drops::default();
        let (sums, n) = read_file(&p, 0, &mut drops).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            sums.into_iter().collect::<Vec<_>>(),
            vec![("\0\0ryxd".to_string(), u64::MAX)]
        );
    }
}
