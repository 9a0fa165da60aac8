//! LogQL regexes in a real PostgreSQL: for every pattern and subject, the ARE of
//! `to_postgres` in PostgreSQL and the regex of `compile` in chute agree, anchored and
//! not.

use chute::query::regex::{compile, to_postgres};
use tokio_postgres::Client;

use crate::helpers::*;

const PATTERNS: &[&str] = &[
    "",
    "a",
    "abc",
    "a|b",
    "|a",
    "a|",
    "(?P<x>a)|b",
    "x(a|bc)",
    "^$",
    "^a",
    "a$",
    r"\Aa",
    r"a\z",
    ".",
    "(?s).",
    "a.c",
    "(?s)a.c",
    "(?-s:.)b",
    r"\d",
    r"\D+",
    r"\w",
    r"\W",
    r"\s",
    r"\S",
    r"[\d\s]",
    r"[^\w-]",
    r"\b",
    r"\B",
    r"\bfoo\b",
    r"\Bo\B",
    r"\ba",
    "(?i)abc",
    "a(?i)b",
    "(?i)k",
    "(?i)s",
    r"(?i)\w",
    "(?i:a)b",
    "(?m)^b$",
    "(?m)^a",
    "(?m)a$",
    "(?s:.)+x",
    "[^a-c]",
    r"\.",
    r"[\]\\^-]",
    "[a-]",
    "[]a]",
    "[^]a]",
    "[[]",
    "[a&&b]",
    "[--/]",
    "[[:alpha:]]",
    "[[:^digit:]]+",
    "[[:space:]]",
    "a{2,5}?",
    "a{2}",
    "a{2,}",
    "(ab){1,3}$",
    "a*?b",
    "(a|b)*c",
    "a+?",
    "(?U)a+",
    "(a*)*",
    "(|a)+",
    "^*a",
    "é",
    "日本",
    r"\x{1F600}",
    r"\p{Greek}+",
    r"\P{Greek}",
    r"\p{Han}",
    r"\pN",
    "(?i)é",
    r#"{"level"#,
    "a{,2}",
    r"\Qa.b\E",
    r"\101",
    r"\t|\n",
    "a\nb",
    r"[\n]",
    r"[^\n]",
    r"\x00|a",
    r"[^\x00-\x{10FFFF}]",
    r"\<a\>",
    "a{0}b",
];

const SUBJECTS: &[&str] = &[
    "",
    "a",
    "b",
    "c",
    "abc",
    "ABC",
    "aBc",
    "ab",
    "ba",
    "aa",
    "aaa",
    "aaaaaa",
    "abab",
    "x",
    "\n",
    "a\n",
    "a\nb",
    "b\na",
    "\nb\n",
    "foo",
    "foo bar",
    "xfoox",
    "a.c",
    "axc",
    "a\nc",
    "1",
    "42",
    "\u{663}",
    "_",
    " ",
    "\t",
    "\u{0B}",
    "\u{A0}",
    "é",
    "É",
    "日本",
    "日本語",
    "😀",
    "α",
    "Ωμέγα",
    "k",
    "K",
    "\u{212A}",
    "ſ",
    "s",
    "]",
    "\\",
    "^",
    "-",
    "[",
    "&",
    "{\"level\":\"info\"}",
    "a{,2}",
    "<a>",
];

/// Whether each subject matches `are` in PostgreSQL, in order.
async fn pg_matches(db: &Client, are: &str, subjects: &[String]) -> Result<Vec<bool>, String> {
    let rows = db
        .query(
            "SELECT s ~ $2 FROM unnest($1::text[]) WITH ORDINALITY AS t(s, i) ORDER BY i",
            &[&subjects, &are],
        )
        .await
        .map_err(|e| format!("PostgreSQL refused {are:?}: {e:?}"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Where PostgreSQL and chute disagree on `pattern`, anchored and not; a pattern
/// either side refuses counts as a disagreement.
async fn disagreements(db: &Client, pattern: &str, subjects: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for anchored in [false, true] {
        let (are, re) = match (to_postgres(pattern, anchored), compile(pattern, anchored)) {
            (Ok(are), Ok(re)) => (are, re),
            (are, re) => {
                out.push(format!(
                    "{pattern:?} (anchored: {anchored}): to_postgres {are:?}, compile {:?}",
                    re.map(|_| ())
                ));
                continue;
            }
        };
        let pg = match pg_matches(db, &are, subjects).await {
            Ok(pg) => pg,
            Err(e) => {
                out.push(e);
                continue;
            }
        };
        for (subject, pg) in subjects.iter().zip(pg) {
            let rust = re.is_match(subject);
            if pg != rust {
                out.push(format!(
                    "{pattern:?} (anchored: {anchored}, ARE {are:?}) on {subject:?}: \
                     PostgreSQL {pg}, chute {rust}"
                ));
            }
        }
    }
    out
}

#[actix_web::test]
async fn postgres_and_chute_agree_on_every_pattern_and_subject() {
    let db = connect(&fresh_database().await).await;
    let subjects: Vec<String> = SUBJECTS.iter().map(|s| s.to_string()).collect();
    let mut failures = Vec::new();
    for pattern in PATTERNS {
        failures.extend(disagreements(&db, pattern, &subjects).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[actix_web::test]
async fn postgres_and_chute_agree_on_random_patterns() {
    const TOKENS: &[&str] = &[
        "a", "b", ".", "*", "+", "?", "|", "(", ")", "[", "]", "^", "$", r"\d", r"\w", r"\s",
        "{2}", "(?i)", r"\b",
    ];
    const SUBJECT_CHARS: &[&str] = &["a", "b", "A", "B", "1", " ", "\n", "é", "_", "-", "ſ"];
    let db = connect(&fresh_database().await).await;
    let mut rng = fastrand::Rng::with_seed(20_261_202);
    let (mut compared, mut failures) = (0, Vec::new());
    for _ in 0..300 {
        let len = rng.usize(1..=8);
        let pattern: String = (0..len)
            .map(|_| TOKENS[rng.usize(..TOKENS.len())])
            .collect();
        if compile(&pattern, false).is_err() {
            // Not RE2 (say, an unclosed group): PostgreSQL must not get it either.
            assert!(to_postgres(&pattern, false).is_err(), "{pattern:?}");
            continue;
        }
        let subjects: Vec<String> = (0..20)
            .map(|_| {
                let len = rng.usize(0..6);
                (0..len)
                    .map(|_| SUBJECT_CHARS[rng.usize(..SUBJECT_CHARS.len())])
                    .collect()
            })
            .collect();
        failures.extend(disagreements(&db, &pattern, &subjects).await);
        compared += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 50, "only {compared} random patterns compiled");
}
