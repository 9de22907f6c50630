//! The data dir's protection: files and directories readable by their owner
//! only, and the lock by which one `serve` owns an embedded data dir.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::Context;

/// The file `serve` holds an exclusive lock on while it runs (it names the
/// holder's process id).
pub const SERVE_LOCK_FILE: &str = "serve.lock";

/// From now on every file and directory this process creates is its
/// owner's only (umask 077): the event log and its WAL, the snapshot, the
/// secret, the outbox and its mails, the lock file.
pub fn create_owner_only() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Narrows a data dir made by an older version or another umask: the
/// directories under it (itself included) to at most 0700, the files to at
/// most 0600. Symbolic links are left alone. Returns how many it changed.
pub fn tighten(data_dir: &Path) -> anyhow::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut changed = 0;
        let mut pending = vec![data_dir.to_path_buf()];
        while let Some(path) = pending.pop() {
            let metadata = std::fs::symlink_metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let wanted = if metadata.is_dir() {
                for entry in std::fs::read_dir(&path)
                    .with_context(|| format!("listing {}", path.display()))?
                {
                    pending.push(entry?.path());
                }
                0o700
            } else if metadata.is_file() {
                0o600
            } else {
                continue;
            };
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & !wanted != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & wanted))
                    .with_context(|| format!("narrowing the mode of {}", path.display()))?;
                changed += 1;
            }
        }
        Ok(changed)
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        Ok(0)
    }
}

/// The exclusive lock of one `serve` on its data dir, held while this
/// value lives (the operating system drops it when the process ends,
/// however it ends).
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Takes the lock on `<data_dir>/serve.lock` and writes this process's
    /// id into it; fails at once, naming the holder, when another server
    /// holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<ServeLock> {
        ServeLock::acquire_advising(
            data_dir,
            "stop that server first or give this one another --data-dir",
        )
    }

    /// [`ServeLock::acquire`] for a command that needs the data dir to
    /// itself (`seal-log`): a refusal ends with `advice`.
    pub fn acquire_advising(data_dir: &Path, advice: &str) -> anyhow::Result<ServeLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join(SERVE_LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                anyhow::bail!(
                    "the data dir {} is in use by another caseledger server{holder}; {advice}",
                    data_dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(ServeLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_data_dir_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServeLock::acquire(dir.path()).unwrap();
        let refused = ServeLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains("in use by another caseledger server"),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        ServeLock::acquire(dir.path()).expect("free again once dropped");
    }

    #[cfg(unix)]
    #[test]
    fn tighten_narrows_wide_files_and_directories_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let set = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let outbox = dir.path().join("outbox");
        std::fs::create_dir(&outbox).unwrap();
        let log = dir.path().join("events.sqlite3");
        let mail = outbox.join("1.eml");
        let private = dir.path().join("secret.key");
        for file in [&log, &mail, &private] {
            std::fs::write(file, b"x").unwrap();
        }
        set(dir.path(), 0o755);
        set(&outbox, 0o775);
        set(&log, 0o644);
        set(&mail, 0o666);
        set(&private, 0o400);
        assert_eq!(tighten(dir.path()).unwrap(), 4);
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&outbox), 0o700);
        assert_eq!(mode(&log), 0o600);
        assert_eq!(mode(&mail), 0o600);
        assert_eq!(mode(&private), 0o400, "narrower modes stay");
        assert_eq!(tighten(dir.path()).unwrap(), 0);
    }
}
