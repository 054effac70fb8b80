//! The installer of the tests' Python tools, as a fresh clone meets it: several tests at once,
//! a half-made install left by a stopped run, a lock left behind. With a tiny package (`six`)
//! into a folder of the test's own, so nothing else is touched.

use simulator::tools::python_tool;
use std::path::PathBuf;

const CHECK: &[&str] = &["bin/python", "-c", "import six"];

fn fresh_tools(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn tests_asking_at_once_get_one_working_install() {
    let tools = fresh_tools("at-once");
    let installs: Vec<_> = (0..3)
        .map(|_| {
            let tools = tools.clone();
            std::thread::spawn(move || python_tool(&tools, "six", &["six"], CHECK))
        })
        .collect();
    for install in installs {
        let venv = install.join().unwrap().expect("installed");
        assert_eq!(venv, tools.join("six"));
    }
    let status = std::process::Command::new(tools.join("six/bin/python"))
        .args(["-c", "import six"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!tools.join("six.lock").exists(), "the lock is released");
    let _ = std::fs::remove_dir_all(&tools);
}

#[test]
fn a_half_made_install_and_a_stale_lock_are_cleared_and_made_again() {
    let tools = fresh_tools("half-made");
    // What a run stopped in the middle of `pip install` leaves: a folder that does not work,
    // and its lock.
    std::fs::create_dir_all(tools.join("six/bin")).unwrap();
    std::fs::write(tools.join("six/bin/python"), "not a python").unwrap();
    std::fs::create_dir_all(tools.join("six.lock")).unwrap();
    let stale = std::process::Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(tools.join("six.lock"))
        .status()
        .unwrap();
    assert!(stale.success());

    let venv = python_tool(&tools, "six", &["six"], CHECK).expect("made again");
    let status = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import six"])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&tools);
}

#[test]
fn a_failing_install_says_what_pip_said() {
    let tools = fresh_tools("failing");
    let error = python_tool(
        &tools,
        "nothing",
        &["this-package-does-not-exist-ilert-servicenow"],
        CHECK,
    )
    .expect_err("no such package");
    let message = error.to_string();
    assert!(
        message.contains("this-package-does-not-exist-ilert-servicenow")
            && (message.contains("No matching distribution") || message.contains("ERROR")),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&tools);
}
