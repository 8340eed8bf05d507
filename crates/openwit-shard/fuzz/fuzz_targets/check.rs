//! The checks of the `shard_reader` fuzz target, also run by `tests/real_tars.rs` on every
//! committed seed (stable toolchain, no libFuzzer): the shard reader on arbitrary bytes as a
//! tar must not panic, must end after at most one error, and every member it gives must be the
//! bytes the tar holds where it says they are.

use openwit_shard::{Members, TarMember};

/// Every member of `data` read as a tar, and whether the stream ended with an error.
fn read(data: &[u8]) -> (Vec<TarMember>, bool) {
    let mut members = Vec::new();
    let mut failed = false;
    for m in Members::from_reader("fuzz.tar", data) {
        assert!(!failed, "an item after an error");
        match m {
            Ok(m) => members.push(m),
            Err(_) => failed = true,
        }
    }
    (members, failed)
}

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    let (members, failed) = read(data);
    let mut end_of_last = 0u64;
    for (i, m) in members.iter().enumerate() {
        let off = m.member.offset;
        assert!(m.header_offset >= end_of_last, "members overlap");
        assert!(m.header_offset + 512 <= off, "a member has no header");
        assert_eq!((off - m.header_offset) % 512, 0, "headers are whole blocks");
        let end = off + m.member.data.len() as u64;
        assert!(end <= data.len() as u64, "data past the end of the tar");
        assert_eq!(&data[off as usize..end as usize], &m.member.data[..]);
        if m.complete {
            assert_eq!(m.member.data.len() as u64, m.member.size);
        } else {
            assert!(
                i + 1 == members.len() && failed,
                "a cut member is last, an error follows"
            );
        }
        end_of_last = end;
    }
    // The samples are the complete members grouped by key, the sample being read when the tar
    // broke left out.
    let mut grouped = 0;
    let mut sample_error = false;
    for s in Members::from_reader("fuzz.tar", data).into_samples() {
        match s {
            Ok(s) => {
                assert!(!s.members.is_empty());
                grouped += s.members.len();
            }
            Err(_) => sample_error = true,
        }
    }
    assert_eq!(sample_error, failed);
    let complete = members.iter().filter(|m| m.complete).count();
    if failed {
        assert!(grouped <= complete);
    } else {
        assert_eq!(grouped, complete);
    }
    // A tar cut short reads as the same members up to the cut.
    let cut = data.len() / 2;
    let (short, _) = read(&data[..cut]);
    for (a, b) in short.iter().filter(|m| m.complete).zip(&members) {
        assert_eq!(a, b, "a member reads differently in a prefix of the tar");
    }
}
