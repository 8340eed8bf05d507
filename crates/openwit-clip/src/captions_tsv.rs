//! An image folder's `captions.tsv`: the caption of each image, which makes the folder a
//! retrieval set (`crate::bench`). On its own, with no dependency, so that the fuzz target
//! (`fuzz/fuzz_targets/captions_tsv.rs`) compiles it without libtorch.

/// The (file, caption) pairs of an image folder's `captions.tsv`, its lines as read (trimmed):
/// `file<TAB>...<TAB>caption`, the file relative to the folder, the caption last; a first line
/// whose first column is `file` is the header. A malformed line is an error: (its 1-based
/// number, what a line must be).
pub fn parse_captions_tsv(
    lines: &[String],
) -> std::result::Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if line.is_empty() || (n == 0 && cols[0] == "file") {
            continue;
        }
        if cols.len() < 2 || cols[0].is_empty() {
            return Err((
                n + 1,
                "a line is `file<TAB>caption` (or `file<TAB>class<TAB>caption`)".into(),
            ));
        }
        out.push((cols[0].to_string(), cols[cols.len() - 1].to_string()));
    }
    Ok(out)
}
