//! Atomic file writes: write under a temporary name, fsync, rename into place, fsync the folder.
//!
//! A reader (or a rerun after `kill -9`) sees either the old file or the complete new one, never a
//! truncated one. Temporary names end in `.tmp` and start with `.`, so stray ones are easy to find
//! and remove ([`remove_stray_temps`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// The temporary name used for `path` while it is being written.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Whether `path` is a temporary name made by this module.
pub fn is_temp_name(path: &Path) -> bool {
    path.file_name()
        .map(|n| {
            let n = n.to_string_lossy();
            n.starts_with('.') && n.ends_with(".tmp")
        })
        .unwrap_or(false)
}

/// fsyncs a folder so that renames inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).at(dir)?;
        d.sync_all().at(dir)?;
    }
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).at(path)?;
    f.commit()
}

/// A file written under a temporary name and renamed into place by [`AtomicFile::commit`].
/// Dropped without `commit`, the temporary file is removed.
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<io::BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (its folder is created if needed).
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        let temp = temp_path_for(path);
        let file = File::create(&temp).at(&temp)?;
        Ok(AtomicFile {
            target: path.to_path_buf(),
            temp,
            file: Some(io::BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, fsyncs, renames into place and fsyncs the folder.
    pub fn commit(mut self) -> Result<()> {
        let w = self.file.take().expect("committed twice");
        let f = w
            .into_inner()
            .map_err(|e| crate::Error::io(&self.temp, e.into_error()))?;
        f.sync_all().at(&self.temp)?;
        drop(f);
        fs::rename(&self.temp, &self.target).at(&self.target)?;
        if let Some(parent) = self.target.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// fsyncs a file, or every file and folder below a folder.
pub fn sync_tree(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).at(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).at(path)? {
            let entry = entry.at(path)?;
            sync_tree(&entry.path())?;
        }
        sync_dir(path)
    } else if meta.is_file() {
        File::open(path).at(path)?.sync_all().at(path)
    } else {
        Ok(())
    }
}

/// Removes a file or a folder tree if it exists.
pub fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).at(path),
        Ok(_) => fs::remove_file(path).at(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}

/// Removes temporary files left by [`AtomicFile`] under `dir` (recursively). Returns how many.
pub fn remove_stray_temps(dir: &Path) -> Result<usize> {
    let mut n = 0;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(crate::Error::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.at(dir)?;
        let p = entry.path();
        let ft = entry.file_type().at(&p)?;
        if is_temp_name(&p) {
            remove_any(&p)?;
            n += 1;
        } else if ft.is_dir() {
            n += remove_stray_temps(&p)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_discards() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.txt");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"two, unfinished").unwrap();
            // dropped without commit
        }
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        write_atomic(&p, b"three").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
    }

    #[test]
    fn stray_temps_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/y.bin");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(temp_path_for(&p), b"partial").unwrap();
        fs::write(&p, b"done").unwrap();
        assert_eq!(remove_stray_temps(dir.path()).unwrap(), 1);
        assert!(p.exists());
        assert_eq!(remove_stray_temps(dir.path()).unwrap(), 0);
    }
}
