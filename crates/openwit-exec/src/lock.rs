//! The workdir lock: one `openwit` process per workdir.
//!
//! The lock is an advisory `flock` on `WORKDIR/.openwit.lock`, which holds the holder's pid. The
//! kernel releases it when the holder dies, so a lock left by a killed process is stale by
//! construction: the next process takes it over (and says so).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use openwit_core::error::{Error, IoContext, Result};

/// Name of the lock file in the workdir.
pub const LOCK_FILE: &str = ".openwit.lock";

/// Holds the workdir lock until dropped.
#[derive(Debug)]
pub struct WorkdirLock {
    file: File,
    path: PathBuf,
}

impl WorkdirLock {
    /// Takes the lock on `workdir`, or fails with [`Error::Locked`] naming the holder's pid.
    pub fn acquire(workdir: &Path) -> Result<Self> {
        std::fs::create_dir_all(workdir).at(workdir)?;
        let path = workdir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous = previous.trim().to_string();
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    workdir: workdir.to_path_buf(),
                    pid: if previous.is_empty() {
                        "unknown".into()
                    } else {
                        previous
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        if !previous.is_empty() && previous != std::process::id().to_string() {
            tracing::warn!(
                "took over a stale lock on {} left by pid {previous} (no longer running)",
                workdir.display()
            );
        }
        file.set_len(0).at(&path)?;
        file.seek(SeekFrom::Start(0)).at(&path)?;
        write!(file, "{}", std::process::id()).at(&path)?;
        file.sync_all().at(&path)?;
        Ok(WorkdirLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkdirLock {
    /// A clean exit empties the pid, so only a killed holder leaves a stale pid behind.
    ///
    /// The lock is released explicitly rather than by closing the file: a child process forked
    /// while the lock was held shares the open file until it execs, and closing our copy alone
    /// would leave the lock held by the child's for that moment.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The pid of the process holding the lock on `workdir`, if one does (without taking it).
pub fn holder(workdir: &Path) -> Option<String> {
    let path = workdir.join(LOCK_FILE);
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Some(pid.trim().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let a = WorkdirLock::acquire(dir.path()).unwrap();
        let err = WorkdirLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(holder(dir.path()), Some(std::process::id().to_string()));
        drop(a);
        assert_eq!(holder(dir.path()), None);
        WorkdirLock::acquire(dir.path()).unwrap();
    }
}
