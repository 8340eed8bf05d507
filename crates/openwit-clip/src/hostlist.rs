//! Slurm's host lists (`SLURM_JOB_NODELIST`): the first host, which serves the rendezvous store
//! when a job runs under `srun` without `MASTER_ADDR`. On its own, with no dependency, so that the
//! fuzz target (`fuzz/fuzz_targets/hostlist.rs`) compiles it without libtorch.
//!
//! The syntax, as `slurm.conf(5)` gives it and Slurm's own `scontrol show hostnames` reads it:
//! host names or ranged names separated by commas or white space; a ranged name is a prefix and
//! one or more bracketed lists of numbers (`lo`, `lo-hi`), one of them at the end of the name
//! (`rack[0-63]_blade[0-41]` is a list, `unit[0-31]rack` is not), each number as wide as written
//! (`linux[0000-1023]` starts at `linux0000`). `tests/slurm_hostlist.rs` holds this against
//! `scontrol show hostnames` on real and generated lists.

/// The most hosts one range may hold, as Slurm allows (`n[0-65535]` is a list, `n[0-65536]` is
/// not).
const MAX_RANGE: u64 = 1 << 16;

/// The first host of a Slurm host list: `node[03-05,9],gpu1` -> `node03`,
/// `rack[0-63]_blade[0-41]` -> `rack0_blade0`, `a b` -> `a`. `None` for an empty list and for a
/// first entry that Slurm would not read as a list (an unclosed bracket, text after the last
/// bracket, a range that is not decimal numbers, `lo > hi`, more than 65,536 hosts in a range).
pub fn first_host(list: &str) -> Option<String> {
    let entry = first_entry(list)?;
    let mut host = String::new();
    let mut rest = entry;
    while let Some(open) = rest.find('[') {
        host.push_str(&rest[..open]);
        let close = open + rest[open..].find(']')?;
        host.push_str(first_number(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
        if rest.is_empty() {
            return Some(host);
        }
    }
    // No bracket left: a plain name, or text after the last range (which Slurm refuses).
    host.is_empty().then(|| rest.to_string())
}

/// The list's first entry: up to the first comma or white space outside brackets, empty entries
/// skipped.
fn first_entry(list: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut start = None;
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            // C's isspace, as Slurm splits.
            ',' | ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' if depth == 0 => match start {
                Some(s) => return Some(&list[s..i]),
                None => continue,
            },
            _ => {}
        }
        start.get_or_insert(i);
    }
    start.map(|s| &list[s..])
}

/// The first number of a bracket's ranges (`03-05,9` -> `03`), as written; `None` unless every
/// range is `lo`, `lo-` or `lo-hi` in decimal digits with `lo <= hi` and at most [`MAX_RANGE`]
/// hosts.
fn first_number(ranges: &str) -> Option<&str> {
    let mut first = None;
    for range in ranges.split(',') {
        let (lo, hi) = match range.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (range, ""),
        };
        let lo_value = decimal(lo)?;
        if !hi.is_empty() {
            let hi_value = decimal(hi)?;
            if hi_value < lo_value || hi_value - lo_value >= MAX_RANGE {
                return None;
            }
        }
        first.get_or_insert(lo);
    }
    first
}

/// A non-empty run of ASCII digits as a number (saturating, as C's `strtoul`).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::first_host;

    #[test]
    fn first_host_of_slurm_host_lists() {
        // From slurm.conf(5), scontrol(1) and srun(1) (Slurm 22.05), and what
        // `scontrol show hostnames` prints first for them.
        for (list, first) in [
            ("node07", "node07"),
            ("a,b", "a"),
            ("n[3-5]", "n3"),
            ("tux[0-3,12,18-20]", "tux0"),
            ("linux[0000-1023]", "linux0000"),
            ("rack[0-63]_blade[0-41]", "rack0_blade0"),
            ("nid[1-3],nid[10-20]", "nid1"),
            ("tux[2,1-2]", "tux2"),
            ("n[1-2][3-4]", "n13"),
            ("[1-3]", "1"),
            (",a", "a"),
            ("a b", "a"),
            (" a[1-2]\tb", "a1"),
            ("n[2-]", "n2"),
            ("a]b", "a]b"),
            ("n[0-65535]", "n0"),
            ("n1,x[", "n1"),
        ] {
            assert_eq!(first_host(list).as_deref(), Some(first), "{list:?}");
        }
        // Slurm refuses these ("Invalid hostlist") or finds no host in them.
        for list in [
            "",
            " , ",
            "unit[0-31]rack",
            "dev[0-25].llnl.gov",
            "n[09,11]-ib",
            "n[]",
            "n[5-3]",
            "n[x]",
            "n[1-2-3]",
            "n[,2]",
            "n[-2]",
            "n[0-65536]",
            "n[1-2]]",
            "n[٣]",
        ] {
            assert_eq!(first_host(list), None, "{list:?}");
        }
        // An unclosed bracket: Slurm reads `n[3-5` as the one host `n]`, which no node is called.
        assert_eq!(first_host("n[3-5"), None);
    }
}
