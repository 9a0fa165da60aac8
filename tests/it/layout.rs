//! The rules of the house (ARCHITECTURE.md), checked against the code: no import
//! cycles between modules, at any level of the tree, in the `chute` crate and in the
//! workspace's library crates.
//!
//! Each crate's module tree is read from its `lib.rs` by following `mod` items
//! (test-only modules and items are left out). Every path that names a module of the
//! crate (`use crate::…`, `super::…`, `self::…`, or an item written in place as
//! `crate::a::b::f()`) is an import; `pub use` re-exports are followed to the module
//! that defines the item. Then, for every folder, its child modules are nodes (each
//! with everything below it), and an import from anything under one child to anything
//! under another is an edge between them: that graph must have no cycle. A module may
//! use its own parent's items, and a parent its children's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

type ModPath = Vec<String>;

/// What one module file holds, as far as imports go.
#[derive(Default)]
struct Module {
    file: PathBuf,
    /// Child modules declared here.
    children: BTreeSet<String>,
    /// Paths used by non-test code, absolute (from the crate root).
    uses: Vec<ModPath>,
    /// `pub use` items: name → absolute path of what it names.
    reexports: HashMap<String, ModPath>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                l.tokens
                    .to_string()
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|t| t == "test")
            })
    })
}

/// The `#[path = "..."]` of a `mod` item, if any.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| {
        let nv = a.meta.require_name_value().ok()?;
        if !nv.path.is_ident("path") {
            return None;
        }
        match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        }
    })
}

/// Collects paths from the code, skipping test-only items and modules.
struct Collector<'a> {
    here: &'a [String],
    children: &'a BTreeSet<String>,
    paths: Vec<ModPath>,
    reexports: HashMap<String, ModPath>,
}

impl Collector<'_> {
    /// The absolute form of a path written in this module, if it names the crate.
    fn absolute(&self, segs: &[String]) -> Option<ModPath> {
        let first = segs.first()?;
        let mut base: ModPath = self.here.to_vec();
        let rest = match first.as_str() {
            "crate" => {
                base.clear();
                &segs[1..]
            }
            "self" => &segs[1..],
            "super" => {
                let mut rest = segs;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                rest
            }
            // A child module named by its bare name.
            name if self.children.contains(name) => segs,
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, public: bool) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, public);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident.to_string(), None, public),
            syn::UseTree::Rename(r) => self.use_leaf(
                prefix,
                &r.ident.to_string(),
                Some(r.rename.to_string()),
                public,
            ),
            syn::UseTree::Glob(_) => {
                if let Some(abs) = self.absolute(prefix) {
                    self.paths.push(abs);
                }
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t, public);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], name: &str, rename: Option<String>, public: bool) {
        let mut segs = prefix.to_vec();
        if name != "self" {
            segs.push(name.to_owned());
        }
        if let Some(abs) = self.absolute(&segs) {
            if public {
                let alias = rename.unwrap_or_else(|| segs.last().cloned().unwrap_or_default());
                self.reexports.insert(alias, abs.clone());
            }
            self.paths.push(abs);
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if is_test_only(attrs) {
            return;
        }
        if let syn::Item::Use(u) = item {
            let public = !matches!(u.vis, syn::Visibility::Inherited);
            self.use_tree(&mut Vec::new(), &u.tree, public);
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(abs) = self.absolute(&segs) {
            self.paths.push(abs);
        }
        syn::visit::visit_path(self, p);
    }
}

/// Reads the module tree of the crate whose root file is `root`.
fn read_crate(root: &Path) -> BTreeMap<ModPath, Module> {
    let mut modules = BTreeMap::new();
    let mut todo = vec![(Vec::new(), root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("lib.rs" | "main.rs" | "mod.rs") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        let mut children = BTreeSet::new();
        for item in &ast.items {
            let syn::Item::Mod(m) = item else { continue };
            if is_test_only(&m.attrs) || m.content.is_some() {
                continue;
            }
            let name = m.ident.to_string();
            let child_file = match path_attr(&m.attrs) {
                Some(p) => file.parent().unwrap().join(p),
                None if dir.join(format!("{name}.rs")).exists() => dir.join(format!("{name}.rs")),
                None => dir.join(&name).join("mod.rs"),
            };
            let mut child = path.clone();
            child.push(name.clone());
            children.insert(name);
            todo.push((child, child_file));
        }
        let mut c = Collector {
            here: &path,
            children: &children,
            paths: Vec::new(),
            reexports: HashMap::new(),
        };
        c.visit_file(&ast);
        let (uses, reexports) = (c.paths, c.reexports);
        modules.insert(
            path,
            Module {
                file,
                children,
                uses,
                reexports,
            },
        );
    }
    modules
}

/// The module that defines what `path` names: its longest prefix that is a module,
/// through re-exports.
fn resolve(modules: &BTreeMap<ModPath, Module>, path: &[String]) -> Option<ModPath> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        let len = (0..=path.len())
            .rev()
            .find(|&n| modules.contains_key(&path[..n]))?;
        let module = &modules[&path[..len]];
        match path.get(len).and_then(|name| module.reexports.get(name)) {
            Some(target) if target.as_slice() != path.as_slice() => {
                let mut next = target.clone();
                next.extend(path[len + 1..].iter().cloned());
                path = next;
            }
            _ => return Some(path[..len].to_vec()),
        }
    }
    None
}

/// Every cycle among the children of each folder, as text.
fn cycles(modules: &BTreeMap<ModPath, Module>) -> Vec<String> {
    // Edges between modules, with the file that makes each.
    let mut edges: BTreeMap<(ModPath, ModPath), PathBuf> = BTreeMap::new();
    for (from, m) in modules {
        for used in &m.uses {
            if let Some(to) = resolve(modules, used) {
                if &to != from {
                    edges
                        .entry((from.clone(), to))
                        .or_insert_with(|| m.file.clone());
                }
            }
        }
    }
    let mut found = Vec::new();
    for (folder, m) in modules {
        if m.children.is_empty() {
            continue;
        }
        // Child of `folder` that `path` lies under, if any.
        let child_of = |path: &ModPath| -> Option<String> {
            (path.len() > folder.len() && path.starts_with(folder))
                .then(|| path[folder.len()].clone())
        };
        let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
        for ((from, to), file) in &edges {
            if let (Some(a), Some(b)) = (child_of(from), child_of(to)) {
                if a != b {
                    graph
                        .entry(a)
                        .or_default()
                        .entry(b)
                        .or_insert_with(|| file.clone());
                }
            }
        }
        for scc in strongly_connected(&graph) {
            let name = |c: &String| {
                let mut p = folder.clone();
                p.push(c.clone());
                format!("crate::{}", p.join("::"))
            };
            let members: Vec<String> = scc.iter().map(name).collect();
            let ties: Vec<String> = scc
                .iter()
                .flat_map(|a| {
                    graph
                        .get(a)
                        .into_iter()
                        .flatten()
                        .filter(|(b, _)| scc.contains(*b))
                        .map(move |(b, file)| {
                            format!("    {} -> {} (in {})", name(a), name(b), file.display())
                        })
                })
                .collect();
            found.push(format!(
                "cycle among {}:\n{}",
                members.join(", "),
                ties.join("\n")
            ));
        }
    }
    found
}

/// Tarjan's algorithm; only components of two or more nodes.
fn strongly_connected(
    graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeMap<String, PathBuf>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|m| m.keys()) {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = graph
        .iter()
        .flat_map(|(a, m)| std::iter::once(a.as_str()).chain(m.keys().map(String::as_str)))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn crate_roots() -> Vec<PathBuf> {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![top.join("src/lib.rs")];
    for entry in fs::read_dir(top.join("crates")).expect("crates/") {
        let lib = entry.expect("crates/ entry").path().join("src/lib.rs");
        if lib.exists() {
            roots.push(lib);
        }
    }
    roots
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut problems = Vec::new();
    for root in crate_roots() {
        let modules = read_crate(&root);
        assert!(
            modules.len() > 1 || !root.ends_with("src/lib.rs"),
            "no modules read from {}",
            root.display()
        );
        for c in cycles(&modules) {
            problems.push(format!("{}: {c}", root.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles:\n{}",
        problems.join("\n")
    );
}

/// The check itself finds a cycle: two sibling modules that import each other,
/// through a re-export and a path written in place.
#[test]
fn the_cycle_check_finds_a_cycle_between_siblings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod b;\n#[cfg(test)]\nmod tests;\n",
    )
    .unwrap();
    fs::write(src.join("a/mod.rs"), "mod inner;\npub use inner::Thing;\n").unwrap();
    fs::write(
        src.join("a/inner.rs"),
        "pub struct Thing;\npub fn f() { crate::b::g(); }\n",
    )
    .unwrap();
    fs::write(src.join("b.rs"), "use crate::a::Thing;\npub fn g() {}\n").unwrap();
    let modules = read_crate(&src.join("lib.rs"));
    let found = cycles(&modules);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::a, crate::b"), "{}", found[0]);

    // Without the call back from `a`, there is none; test-only code does not count.
    fs::write(
        src.join("a/inner.rs"),
        "pub struct Thing;\n#[cfg(test)]\nfn f() { crate::b::g(); }\n",
    )
    .unwrap();
    assert!(cycles(&read_crate(&src.join("lib.rs"))).is_empty());
}

/// Files stay small enough to read: at most 800 lines, except files of tests
/// (`tests.rs`, `*_tests.rs`), which may grow with what they cover.
#[test]
fn no_source_file_is_over_800_lines() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    let mut todo = vec![top.join("src"), top.join("crates")];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                todo.push(path);
            } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
                let lines = fs::read_to_string(&path).expect("read").lines().count();
                if lines > 800 {
                    long.push(format!("{} has {lines} lines", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}
