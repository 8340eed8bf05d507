//! The `picture` fuzz target's checks (`fuzz/fuzz_targets/picture_check.rs`: `rgb::decode` and
//! `rgb::decode_oriented` agree, refuse truncated JPEGs and pictures over PIL's pixel limit, and
//! give pictures of their size) on every seed of the target, real images nobody here made
//! (`crates/openwit-fetch/fuzz/seeds/image_decode`: Pillow's, Go's and scikit-image's test
//! files), each whole and cut at a few places, on the stable toolchain.

#[path = "../fuzz/fuzz_targets/picture_check.rs"]
mod picture_check;

use std::path::Path;

#[test]
fn picture_checks_hold_on_real_images_and_their_cuts() {
    let seeds =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openwit-fetch/fuzz/seeds/image_decode");
    let mut files = 0;
    let mut decoded = 0;
    for e in std::fs::read_dir(&seeds).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        files += 1;
        picture_check::check(&bytes);
        decoded += usize::from(openwit_shard::rgb::decode(&bytes).is_ok());
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len().saturating_sub(2),
        ] {
            picture_check::check(&bytes[..cut]);
        }
    }
    assert!(files >= 30, "{files} seeds in {}", seeds.display());
    // Most of them are pictures; the broken, truncated and bomb files are not.
    assert!(
        decoded >= 24 && decoded < files,
        "{decoded} of {files} decoded"
    );
}
