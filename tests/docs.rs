//! The documentation cannot drift from the code: every relative link and anchor resolves;
//! the settings table holds exactly the settings the parser knows; every secret key, template
//! parameter and variable its table names exists; every local command a shell block shows is
//! one the binary (or the project) accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("a docs folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The page's text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut inside = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                inside = !inside;
                return false;
            }
            !inside
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| slug(heading.trim_start_matches('#')))
        .collect()
}

/// Every `[text](target)` of the page's prose.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut found = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].to_owned());
        }
    }
    found
}

fn problems_with_links(pages: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((link.as_str(), ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            if !target.exists() {
                problems.push(format!("{}: `{link}` names no file", page.display()));
                continue;
            }
            if !anchor.is_empty() {
                let target_text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&target_text).contains(anchor) {
                    problems.push(format!(
                        "{}: `{link}` names no heading of {}",
                        page.display(),
                        target.display()
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let problems = problems_with_links(&pages());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_broken_link_or_anchor_is_caught() {
    let dir = std::env::temp_dir().join(format!("docs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "# Title\n\n## A section\n\n[fine](#a-section) [gone](missing.md) [no heading](#nowhere)\n\n```\n[in code](ignored.md)\n```\n",
    )
    .unwrap();
    let problems = problems_with_links(&[page]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("missing.md") && problems[1].contains("#nowhere"));
}

/// The backticked names in the first cell of each row of the table whose header starts with
/// `header`.
fn table_names(text: &str, header: &str) -> BTreeSet<String> {
    let mut lines = text.lines().skip_while(|line| !line.starts_with(header));
    assert!(lines.next().is_some(), "a table headed `{header}`");
    lines
        .skip(1)
        .take_while(|line| line.starts_with('|'))
        .flat_map(|line| {
            let cell = line.split('|').nth(1).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn page(name: &str) -> String {
    std::fs::read_to_string(root().join("docs").join(name)).unwrap()
}

#[test]
fn the_settings_table_holds_exactly_the_settings_the_parser_knows() {
    let documented = table_names(
        &page("settings.md"),
        "| name | values | default | example |",
    );
    let mut known: BTreeSet<String> = ilert_servicenow::domain::settings::SETTING_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    known.insert("field.<column>".to_owned());
    let missing: Vec<&String> = known.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "settings the parser knows but the table leaves out: {missing:?}; in the table but \
         unknown to the parser: {unknown:?}"
    );
    for name in &documented {
        if name == "field.<column>" {
            continue;
        }
        // The parser takes each documented name (an empty value clears or refuses, never
        // "unknown setting").
        let refused = ilert_servicenow::domain::settings::Settings::default()
            .with_query(&format!("{name}="))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!refused.contains("unknown"), "{name}: {refused}");
    }
}

#[test]
fn every_secret_key_in_its_table_is_one_the_function_reads() {
    let documented = table_names(&page("deploy.md"), "| key | required | meaning |");
    let source = std::fs::read_to_string(root().join("src/adapters/secrets.rs")).unwrap();
    for key in &documented {
        assert!(
            source.contains(&format!("\"{key}\"")),
            "the secret's table names `{key}`, which the function never reads"
        );
    }
    // And every key the function reads is in the table (or in the section on several
    // instances, which names `instances` and `shared_keys`).
    let read: BTreeSet<String> = ["text(\"", "required(\"", "pair(\""]
        .iter()
        .flat_map(|call| {
            source
                .split(call)
                .skip(1)
                .flat_map(|rest| {
                    // `pair("a", "b")` names two.
                    let args = rest.split(')').next().unwrap_or_default();
                    args.split('"')
                        .step_by(2)
                        .map(str::trim)
                        .map(|s| s.trim_matches(|c| c == ',' || c == ' '))
                        .filter(|s| {
                            !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        })
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let undocumented: Vec<&String> = read.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "read but not in the table: {undocumented:?}"
    );
}

#[test]
fn every_template_parameter_in_its_table_is_the_templates_and_the_other_way_round() {
    let documented = table_names(&page("deploy.md"), "| parameter | default | what it is |");
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let parameters = &template[template.find("\nParameters:\n").unwrap()..];
    let parameters = &parameters[..parameters.find("\nConditions:").unwrap()];
    let declared: BTreeSet<String> = parameters
        .lines()
        .filter_map(|line| line.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| name.chars().all(char::is_alphanumeric))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented, declared,
        "the table against template.yaml's Parameters"
    );
}

#[test]
fn every_variable_in_its_table_is_one_the_function_reads() {
    let documented = table_names(&page("deploy.md"), "| variable | default | meaning |");
    let mut source = String::new();
    for file in walk(&root().join("src")) {
        source.push_str(&std::fs::read_to_string(file).unwrap());
    }
    // Read by the AWS SDK for the function, not by its own code.
    let read_by_the_sdk = ["AWS_ENDPOINT_URL_SECRETS_MANAGER"];
    for variable in documented {
        if read_by_the_sdk.contains(&variable.as_str()) {
            continue;
        }
        assert!(
            source.contains(&format!("\"{variable}\"")),
            "the variables' table names `{variable}`, which the function never reads"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A shell line's words, with quotes as the shell reads them (enough for the docs).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() || any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() || any {
        words.push(word);
    }
    words
}

/// Every command of the docs' `sh` blocks, continuation lines joined, comments dropped.
fn shell_commands() -> Vec<(PathBuf, String)> {
    let mut commands = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let mut inside = false;
        let mut pending = String::new();
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("```") {
                inside = !inside && trimmed == "```sh";
                continue;
            }
            if !inside {
                continue;
            }
            let line = line.split(" #").next().unwrap_or_default().trim_end();
            if let Some(start) = line.strip_suffix('\\') {
                pending.push_str(start);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let command = std::mem::take(&mut pending);
            for part in command.split("&&") {
                if !part.trim().is_empty() {
                    commands.push((page.clone(), part.trim().to_owned()));
                }
            }
        }
    }
    commands
}

#[test]
fn every_local_command_the_docs_show_is_one_the_project_accepts() {
    let binary = env!("CARGO_BIN_EXE_ilert-servicenow");
    let mut checked = 0;
    for (page, command) in shell_commands() {
        let words: Vec<String> = words(&command)
            .into_iter()
            // `VAR=value` before a command sets its environment.
            .skip_while(|word| word.contains('=') && !word.starts_with('-'))
            .collect();
        let Some(program) = words.first() else {
            continue;
        };
        let place = format!("{}: `{command}`", page.display());
        if program.ends_with("ilert-servicenow") {
            let output = Command::new(binary)
                .args(&words[1..])
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{place}: the binary does not take it: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        } else if program == "cargo" && words.get(1).is_some_and(|w| w == "run") {
            if let Some(at) = words.iter().position(|w| w == "--example") {
                let example = &words[at + 1];
                assert!(
                    root()
                        .join("examples")
                        .join(format!("{example}.rs"))
                        .exists(),
                    "{place}: no example `{example}`"
                );
                checked += 1;
            }
        } else if program.starts_with("scripts/") {
            assert!(
                root().join(program).is_file(),
                "{place}: no script `{program}`"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "the docs show local commands: {checked} checked"
    );
}
