//! Tools from PyPI that the tests run (moto's server, Node.js), installed once into the
//! workspace's `target/tools` when they are not on `PATH`, so that `cargo test` passes on a
//! fresh clone with only Rust and Python 3, the first time and every time:
//!
//! - one install at a time: threads of one test binary wait on a lock in the process, test
//!   binaries run at once (nextest) on a lock directory beside the install;
//! - made in place: a virtual environment cannot be moved (its scripts name the folder they
//!   were made in), so it is never made elsewhere and renamed;
//! - checked before use: an install a stopped run left half-made is removed and made again;
//! - pip's own output is shown when it fails.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How long a lock directory may stand before it counts as left by a run that was stopped.
const STALE_LOCK: Duration = Duration::from_secs(15 * 60);

/// `program` on `PATH`, unless `ILERT_SERVICENOW_TOOLS=install` asks for the installed
/// copies (what CI does to prove a fresh machine's first run).
pub fn on_path(program: &str) -> Option<PathBuf> {
    if std::env::var("ILERT_SERVICENOW_TOOLS").is_ok_and(|v| v == "install") {
        return None;
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The workspace's `target/tools`.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools")
}

/// A virtual environment `tools/name` with `packages` installed, in which `check` (a program
/// of the environment, `bin/…`, and its arguments) succeeds; made (or made again) if it does
/// not. Returns its folder.
pub fn python_tool(
    tools: &Path,
    name: &str,
    packages: &[&str],
    check: &[&str],
) -> io::Result<PathBuf> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _one_thread = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let venv = tools.join(name);
    if works(&venv, check) {
        return Ok(venv);
    }
    std::fs::create_dir_all(tools)?;
    let _one_process = DirLock::acquire(&tools.join(format!("{name}.lock")))?;
    // Another process may have made it while this one waited.
    if works(&venv, check) {
        return Ok(venv);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(packages))?;
    if works(&venv, check) {
        Ok(venv)
    } else {
        Err(io::Error::other(format!(
            "{} was installed into {} but `{}` fails there",
            packages.join(" "),
            venv.display(),
            check.join(" ")
        )))
    }
}

fn works(venv: &Path, check: &[&str]) -> bool {
    let Some((program, args)) = check.split_first() else {
        return venv.is_dir();
    };
    Command::new(venv.join(program))
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs an install step; a failure says what the step printed.
fn run(command: &mut Command) -> io::Result<()> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// A directory made to hold a lock across processes (making a directory is atomic); removed
/// when dropped.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> io::Result<Self> {
        let started = Instant::now();
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(Self(path.to_owned())),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| SystemTime::now().duration_since(at).ok());
                    if age.is_some_and(|age| age > STALE_LOCK) {
                        let _ = std::fs::remove_dir(path);
                        continue;
                    }
                    if started.elapsed() > STALE_LOCK {
                        return Err(io::Error::other(format!(
                            "{} is held by another install for too long",
                            path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}
