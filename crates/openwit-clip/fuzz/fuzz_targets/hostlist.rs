//! A Slurm host list (`SLURM_JOB_NODELIST`, `openwit-clip/src/hostlist.rs`) on arbitrary bytes
//! (lossy UTF-8): its first host or none, never a panic; a host found is one name, its own first
//! host, and stays first whatever follows it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/hostlist.rs"]
mod hostlist;

fuzz_target!(|data: &[u8]| {
    let list = String::from_utf8_lossy(data);
    let Some(host) = hostlist::first_host(&list) else {
        return;
    };
    assert!(!host.is_empty());
    assert!(!host.contains([',', ' ', '\t', '\n', '\r', '\x0b', '\x0c', '[']), "{host:?}");
    assert_eq!(hostlist::first_host(&host).as_deref(), Some(host.as_str()));
    let ahead = format!("{host},{list}");
    assert_eq!(hostlist::first_host(&ahead).as_deref(), Some(host.as_str()));
});
