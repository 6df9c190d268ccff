//! The direction of the dependencies between the core's top-level modules (ARCHITECTURE.md,
//! "Layers"): every `crate::<module>` a module's code names must be one of the modules it is
//! allowed to use. `export` writes the shared results but never reaches back into the run that
//! made them; `run` and `reid` write files through `fsio`, not through `export`; the importers
//! (`import`) are not exporters. A new top-level module must be placed here too.
//!
//! Read from the source text: `crate::X` in code lines (comments and doc links are not
//! dependencies), test modules left out (a round-trip test may write with an exporter).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` (the bindings `python` apart) and the modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    // `Error::Reid` and `Error::Convert` wrap re-ID's and the converter's error types so the bindings map one error enum.
    ("error", &["convert", "reid"]),
    ("fsio", &["error"]),
    ("parallel", &["error"]),
    ("progress", &[]),
    ("manifest", &["error"]),
    ("runtime", &["error"]),
    // The converter: a checkpoint reader and an ONNX writer, below every stage.
    // `manifest`: the source's sha256; `runtime`: the converted model's check run.
    ("convert", &["error", "fsio", "manifest", "runtime"]),
    ("image_io", &["error", "parallel"]),
    ("preprocess", &["error", "image_io", "manifest"]),
    (
        "detect",
        &[
            "error",
            "image_io",
            "manifest",
            "parallel",
            "preprocess",
            "runtime",
        ],
    ),
    // `reid`: the box formats a caller's boxes come in (`reid::embed::BoxFormat`).
    (
        "classify",
        &[
            "detect",
            "error",
            "image_io",
            "manifest",
            "parallel",
            "preprocess",
            "reid",
            "runtime",
        ],
    ),
    // `fetch`: model names (detector modes, classifier specs) and the lock file's atomic write.
    (
        "fetch",
        &[
            "classify", "detect", "error", "fsio", "image_io", "manifest",
        ],
    ),
    ("sequence", &["detect", "error", "image_io", "manifest"]),
    ("results", &["detect", "error", "image_io", "sequence"]),
    (
        "import",
        &[
            "detect", "error", "image_io", "manifest", "parallel", "results",
        ],
    ),
    (
        "run",
        &[
            "classify",
            "detect",
            "error",
            "fsio",
            "image_io",
            "import",
            "manifest",
            "parallel",
            "preprocess",
            "results",
            "runtime",
            "sequence",
        ],
    ),
    (
        "export",
        &[
            "detect", "error", "fsio", "image_io", "manifest", "parallel", "results", "sequence",
        ],
    ),
    (
        "reid",
        &[
            "detect",
            "error",
            "fsio",
            "image_io",
            "manifest",
            "parallel",
            "preprocess",
            "runtime",
        ],
    ),
    // `import`: a table reviewed without its run takes its boxes from a MegaDetector file.
    (
        "review",
        &[
            "error",
            "export",
            "fsio",
            "image_io",
            "import",
            "manifest",
            "preprocess",
            "results",
            "run",
            "sequence",
        ],
    ),
    (
        "pipeline",
        &[
            "classify", "detect", "error", "export", "image_io", "import", "manifest", "results",
            "review", "run", "runtime", "sequence",
        ],
    ),
    // The command line, on top of everything: it parses, checks and calls the stages.
    (
        "cli",
        &[
            "classify",
            "convert",
            "detect",
            "error",
            "export",
            "fetch",
            "fsio",
            "image_io",
            "import",
            "manifest",
            "parallel",
            "pipeline",
            "preprocess",
            "reid",
            "results",
            "review",
            "run",
            "runtime",
            "sequence",
        ],
    ),
];

/// The top-level modules named as `crate::X` in the code lines of `text` (a file of module
/// `own`): comments skipped, everything from a `#[cfg(test)] mod` on left out.
fn uses(text: &str, own: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                // `crate::{a::X, b}`: each name of the group.
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")],
            };
            for n in names {
                if !n.is_empty() && n != own {
                    found.insert(n.to_string());
                }
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`, test files (`tests.rs`, `*_tests.rs`) left out.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let name = p.file_name().unwrap().to_string_lossy();
            if name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.push(p);
            }
        }
    }
}

/// Module -> (used module -> the files that use it).
fn graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "python" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let entry = g.entry(module.clone()).or_default();
        for used in uses(&text, &module) {
            entry
                .entry(used)
                .or_default()
                .push(rel.display().to_string());
        }
    }
    g
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let g = graph();
    let mut wrong = Vec::new();
    for (module, used) in &g {
        let Some(ok) = allowed.get(module.as_str()) else {
            wrong.push(format!("module {module} is not placed in ALLOWED"));
            continue;
        };
        for (dep, files) in used {
            if !ok.contains(dep.as_str()) {
                wrong.push(format!("{module} -> {dep} ({})", files.join(", ")));
            }
        }
    }
    for m in allowed.keys() {
        if !g.contains_key(*m) {
            wrong.push(format!("ALLOWED names {m}, which is not a module of src/"));
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_uses_and_skips_comments_and_tests() {
    let text = "//! See [`crate::run::Pipeline`].\n\
                use crate::results::Failure;\n\
                use crate::{fsio::write_atomic, image_io};\n\
                let x = crate::run::detect_files(); // crate::reid in a comment\n\
                use crate::export::table; // own module\n\
                #[cfg(test)]\n\
                mod tests {\n    use crate::review::Reviewed;\n}\n";
    let found: Vec<String> = uses(text, "export").into_iter().collect();
    assert_eq!(found, ["fsio", "image_io", "results", "run"]);
}
