//! The crate's layout, held: every import points down. Read from the sources, the modules'
//! imports (`crate::…`, `super::…` reaching a sibling, and the binary's `ilert_servicenow::…`)
//! make a graph; at every level of the module tree (files in a folder, folders in the crate)
//! that graph has no circle, and the crate's top-level modules keep their layers:
//! main → ops (the operator's commands) → startup → config → flow → adapters → domain.
//! Test code (`#[cfg(test)]` modules) sits above what it tests and is left out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

/// Top-level modules from the top down: a module may import only from modules after it.
const LAYERS: &[&str] = &[
    "main", "ops", "startup", "config", "flow", "adapters", "domain",
];

type Module = Vec<String>;

/// Where an import was seen, to name it in a failure.
#[derive(Clone)]
struct Witness {
    file: String,
    line: usize,
    path: String,
}

struct Source {
    file: String,
    module: Module,
    text: String,
}

fn read_sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap();
            let mut module: Module = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().map(String::as_str) == Some("mod") {
                module.pop();
            }
            if module == ["lib"] {
                module.clear();
            }
            sources.push(Source {
                file: format!("src/{}", relative.display()),
                module,
                text: fs::read_to_string(&path).unwrap(),
            });
        }
    }
    sources.sort_by(|a, b| a.file.cmp(&b.file));
    sources
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a use tree or an expression path names, from just after `start::`: `a::b::X`,
/// and each branch of `a::{b::X, c::{self, Y}}`.
fn paths_from(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut path = prefix;
    loop {
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == '{' {
            i += 1;
            loop {
                let rest: String = bytes[i..].iter().collect();
                let used = paths_from(&rest, path.clone(), out);
                i += used;
                while i < bytes.len() && bytes[i].is_whitespace() {
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == ',' {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_whitespace() {
                        i += 1;
                    }
                    if i < bytes.len() && bytes[i] == '}' {
                        return i + 1;
                    }
                    continue;
                }
                if i < bytes.len() && bytes[i] == '}' {
                    i += 1;
                }
                return i;
            }
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i > start {
            let ident: String = bytes[start..i].iter().collect();
            if ident != "self" {
                path.push(ident);
            }
        }
        if i + 1 < bytes.len() && bytes[i] == ':' && bytes[i + 1] == ':' {
            i += 2;
            continue;
        }
        out.push(path);
        return i;
    }
}

/// Text with comments blanked, so a path in prose is not an import, and with inline
/// `#[cfg(test)] mod … { … }` blocks blanked: tests sit above what they test.
fn code_of(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => line[..at].to_string(),
            None => line.to_string(),
        })
        .collect();
    let mut i = 0;
    while i + 1 < lines.len() {
        let next = lines[i + 1].trim();
        if lines[i].trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            let mut depth = 0i32;
            let mut j = i + 1;
            while j < lines.len() {
                depth += lines[j].matches('{').count() as i32;
                depth -= lines[j].matches('}').count() as i32;
                lines[j].clear();
                j += 1;
                if depth <= 0 {
                    break;
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    lines
}

/// Modules declared `#[cfg(test)] mod name;`: test code, left out of the graph.
fn test_only(sources: &[Source]) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    for source in sources {
        let lines: Vec<&str> = source.text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] != "#[cfg(test)]" {
                continue;
            }
            let declared = pair[1].strip_prefix("pub ").unwrap_or(pair[1]);
            if let Some(child) = declared
                .strip_prefix("mod ")
                .and_then(|m| m.strip_suffix(';'))
            {
                let mut module = source.module.clone();
                module.push(child.to_string());
                found.insert(module);
            }
        }
    }
    found
}

/// The longest known module a path starts with.
fn resolve(path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

/// Every import between two modules neither of which contains the other, lifted to the level
/// where they part: `ops::send → flow::edge` is `ops → flow`.
fn edges() -> BTreeMap<(Module, Module), Vec<Witness>> {
    let mut sources = read_sources();
    let tests = test_only(&sources);
    sources.retain(|s| !(1..=s.module.len()).any(|n| tests.contains(&s.module[..n])));
    let mut modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    // Folders are modules too (a folder without mod.rs has its parent's `foo.rs`).
    for source in &sources {
        for n in 1..source.module.len() {
            modules.insert(source.module[..n].to_vec());
        }
    }
    let mut edges: BTreeMap<(Module, Module), Vec<Witness>> = BTreeMap::new();
    for source in &sources {
        let binary = source.file == "src/main.rs";
        let from: Module = if binary {
            vec!["main".to_string()]
        } else {
            source.module.clone()
        };
        let lines = code_of(&source.text);
        let code = lines.join("\n");
        let line_of = |at: usize| code[..at].matches('\n').count() + 1;
        let starts: &[&str] = if binary {
            &["ilert_servicenow::"]
        } else {
            &["crate::", "super::"]
        };
        for start in starts {
            for (at, _) in code.match_indices(start) {
                if at > 0 && is_ident(code[..at].chars().last().unwrap()) {
                    continue;
                }
                let base: Module = if *start == "super::" {
                    let mut parent = source.module.clone();
                    parent.pop();
                    parent
                } else {
                    Vec::new()
                };
                let mut found = Vec::new();
                paths_from(&code[at + start.len()..], base, &mut found);
                for path in found {
                    let Some(to) = resolve(&path, &modules) else {
                        continue;
                    };
                    let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                    if shared == from.len() || shared == to.len() {
                        continue; // the same module, or one inside the other
                    }
                    let key = (from[..=shared].to_vec(), to[..=shared].to_vec());
                    edges.entry(key).or_default().push(Witness {
                        file: source.file.clone(),
                        line: line_of(at),
                        path: format!("{} → {}", name(&from), path.join("::")),
                    });
                }
            }
        }
    }
    edges
}

fn describe(witnesses: &[Witness]) -> String {
    witnesses
        .iter()
        .map(|w| format!("        {}:{}: {}", w.file, w.line, w.path))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let edges = edges();
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut reported: BTreeSet<BTreeSet<Module>> = BTreeSet::new();
    let mut problems = Vec::new();
    for (from, to) in edges.keys() {
        // The shortest way back from `to` to `from`, if any.
        let mut came_from: BTreeMap<&Module, &Module> = BTreeMap::new();
        let mut queue = VecDeque::from([to]);
        while let Some(at) = queue.pop_front() {
            if at == from {
                break;
            }
            for step in next.get(at).into_iter().flatten() {
                if *step != to && !came_from.contains_key(step) {
                    came_from.insert(step, at);
                    queue.push_back(step);
                }
            }
        }
        if !came_from.contains_key(from) {
            continue;
        }
        let mut circle = vec![from.clone()];
        let mut at = from;
        while at != to {
            at = came_from[at];
            circle.push(at.clone());
        }
        circle.reverse(); // to … from
        circle.insert(0, from.clone()); // from → to → … → from
        let members: BTreeSet<Module> = circle.iter().cloned().collect();
        if !reported.insert(members) {
            continue;
        }
        let mut text = format!(
            "circle: {}",
            circle
                .iter()
                .map(|m| name(m))
                .collect::<Vec<_>>()
                .join(" → ")
        );
        for pair in circle.windows(2) {
            let key = (pair[0].clone(), pair[1].clone());
            text.push_str(&format!(
                "\n    {} → {}:\n{}",
                name(&pair[0]),
                name(&pair[1]),
                describe(&edges[&key])
            ));
        }
        problems.push(text);
    }
    assert!(
        problems.is_empty(),
        "imports that run in a circle (give the shared names one home below both):\n{}",
        problems.join("\n")
    );
}

#[test]
fn top_level_modules_import_only_the_layers_below() {
    let mut problems = Vec::new();
    for ((from, to), witnesses) in edges() {
        if from.len() != 1 {
            continue;
        }
        let rank = |m: &Module| LAYERS.iter().position(|l| *l == m[0]);
        match (rank(&from), rank(&to)) {
            (Some(a), Some(b)) if a < b => {}
            (Some(_), Some(_)) => problems.push(format!(
                "{} imports {}, a layer above it:\n{}",
                name(&from),
                name(&to),
                describe(&witnesses)
            )),
            _ => problems.push(format!(
                "{} → {}: a top-level module missing from LAYERS in tests/layout.rs",
                name(&from),
                name(&to)
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "imports that run up (main → ops → startup → config → flow → adapters → domain):\n{}",
        problems.join("\n")
    );
}

/// No file of the function is over 600 lines: a reader who opens one can hold it.
#[test]
fn no_file_of_the_function_is_over_600_lines() {
    fn walk(dir: &Path, long: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, long);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = fs::read_to_string(&path).unwrap().lines().count();
                if lines > 600 {
                    long.push(format!("{} ({lines} lines)", path.display()));
                }
            }
        }
    }
    let mut long = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut long,
    );
    assert!(long.is_empty(), "over 600 lines: {}", long.join(", "));
}
