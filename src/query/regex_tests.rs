use super::*;

fn pg(pattern: &str) -> String {
    to_postgres(pattern, false).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
}

fn pg_err(pattern: &str) -> String {
    match to_postgres(pattern, false) {
        Ok(are) => panic!("{pattern:?} was translated into {are:?}"),
        Err(e) => e.message,
    }
}

fn matches(pattern: &str, subject: &str) -> bool {
    compile(pattern, false)
        .unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
        .is_match(subject)
}

const WORD_BOUNDARY: &str =
    "(?:(?<=[0-9A-Za-z_])(?![0-9A-Za-z_])|(?<![0-9A-Za-z_])(?=[0-9A-Za-z_]))";

#[test]
fn word_boundaries_are_ascii_lookarounds_not_backspaces() {
    assert_eq!(pg(r"\b"), WORD_BOUNDARY);
    assert_eq!(
        pg(r"\B"),
        "(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_]))"
    );
    assert!(matches(r"\bx", "éx"), "é is no ASCII word character");
    assert!(!matches(r"\bx", "ax"));
}

#[test]
fn perl_classes_are_ascii() {
    assert_eq!(pg(r"\d"), "[0-9]");
    assert_eq!(pg(r"\w"), "[0-9A-Z_a-z]");
    assert_eq!(pg(r"\s"), "[\\t\\n\\u000C\\r ]");
    assert_eq!(pg(r"\D"), "[^0-9]");
    assert!(!matches(r"\d", "٣"));
    assert!(!matches(r"\w", "é"));
    assert!(!matches(r"\s", "\u{0B}"), "RE2's \\s has no vertical tab");
    assert!(!matches(r"\s", "\u{A0}"));
    // RE2 folds \w under (?i): ſ folds to s, the Kelvin sign to k.
    assert!(matches(r"(?i)\w", "ſ"));
    assert!(matches(r"(?i)\W", "é"));
    assert!(!matches(r"(?i)\W", "K"));
}

#[test]
fn dot_and_flags_are_worked_into_the_translation() {
    assert_eq!(pg("."), r"[^\n]");
    assert_eq!(pg("(?s)."), ".");
    assert_eq!(pg("(?i)abc"), "[Aa][Bb][Cc]");
    assert_eq!(pg("a(?i)b"), "a[Bb]");
    assert_eq!(pg("(?i)k"), "[Kk\u{212A}]");
    assert_eq!(pg("(?m)^a$"), r"(?:^|(?<=\n))a(?:$|(?=\n))");
    assert_eq!(pg("(?i:a)b"), "[Aa]b");
}

#[test]
fn classes_and_escapes() {
    assert_eq!(pg("[^a-c]"), "[^a-c]");
    assert_eq!(pg(r"\."), r"\.");
    assert_eq!(pg(r"[\]\\^-]"), r"[\-\\-\^]");
    assert_eq!(pg("[ab]"), "[ab]");
    assert_eq!(pg("[a-z]"), "[a-z]");
    assert_eq!(pg(r"\t\n"), r"\t\n");
    assert_eq!(pg("\u{7}"), r"\u0007");
    assert_eq!(pg("a b"), "a b");
    assert_eq!(pg(r"\x00"), ARE_NOTHING);
    assert_eq!(pg(r"[^\x00-\x{10FFFF}]"), ARE_NOTHING);
    assert_eq!(pg("[[:digit:]]"), "[0-9]");
}

#[test]
fn repetitions() {
    assert_eq!(pg("a{2,5}?"), "a{2,5}");
    assert_eq!(pg("a{2}"), "a{2}");
    assert_eq!(pg("a{2,}"), "a{2,}");
    assert_eq!(pg("a*?b+c??"), "a*b+c?");
    assert_eq!(pg("(ab)*"), "(?:ab)*");
    assert_eq!(pg("(?:ab)+"), "(?:ab)+");
    assert_eq!(pg("a{0}b"), "b");
    assert_eq!(pg("^*a"), "a");
    assert_eq!(pg(r"\b+a"), format!("{WORD_BOUNDARY}a"));
    assert_eq!(
        pg_err("a{300}"),
        "repetition count 300 is over PostgreSQL's limit of 255"
    );
    assert!(compile("a{300}", false).is_ok(), "RE2 allows up to 1000");
    assert_eq!(
        pg_err("a{1001}"),
        "repetition count 1001 is over RE2's limit of 1000"
    );
    assert_eq!(
        pg_err("(?:a{200}){200}"),
        "nested repetitions make over 1000 copies (RE2's limit)"
    );
    assert!(compile("(?:a{20}){50}", false).is_ok());
    // Each within RE2's limits, together too many positions for PostgreSQL.
    let unit = "(?:abcdefghij){250}";
    assert!(to_postgres(&unit.repeat(8), false).is_ok());
    assert!(pg_err(&unit.repeat(9)).contains("too complex to run in PostgreSQL"));
}

#[test]
fn groups_alternations_and_anchors() {
    assert_eq!(pg("(?P<x>a)|b"), "(?:a)|b");
    assert_eq!(pg("(?<x>a)c"), "(?:a)c");
    assert_eq!(pg("x(a|bc)"), "x(?:a|bc)");
    assert_eq!(pg("^$"), "^$");
    assert_eq!(pg(r"\A"), "^");
    assert_eq!(pg(r"\z"), "$");
    assert_eq!(pg(""), "");
    assert_eq!(to_postgres("", true).unwrap(), "^(?:)$");
    assert_eq!(to_postgres("a|b", true).unwrap(), "^(?:[ab])$");
    assert_eq!(pg("|a"), "|a");
    assert_eq!(pg("a|"), "a|");
}

#[test]
fn unicode_literals_and_classes() {
    assert_eq!(pg("é"), "é");
    assert_eq!(pg("日本"), "日本");
    assert_eq!(pg(r"\x{1F600}"), "\u{1F600}");
    assert_eq!(pg(r"\x{e9}"), "é");
    let greek = pg(r"\p{Greek}");
    assert!(greek.starts_with('[') && greek.contains("Ͱ-ͳ"), "{greek}");
    assert!(pg(r"\P{Greek}").starts_with("[^"));
    assert_eq!(pg(r"\p{^Greek}"), pg(r"\P{Greek}"));
    assert!(pg_err(r"\pL").contains(r"Unicode class \p{L} is too large"));
    assert!(pg_err(r"\p{Lu}").contains("too large"));
    // Each small enough, together too large.
    assert!(pg_err(r"[\pM\pN\pP\pS]").starts_with("a character class of "));
    assert!(compile(r"\pL", false).unwrap().is_match("日"));
}

#[test]
fn re2_syntax_the_regex_crate_reads_otherwise() {
    // A `{` that starts no repetition is a literal in RE2.
    assert_eq!(pg(r#"{"level""#), r#"\{\"level\""#);
    assert!(matches(
        r#"{"level":"(error|warn)"}"#,
        r#"{"level":"warn"}"#
    ));
    assert_eq!(pg("a{,2}"), r"a\{\,2\}");
    assert_eq!(pg("a{01}"), r"a\{01\}");
    assert_eq!(pg("a{1,2"), r"a\{1\,2");
    // In an RE2 class, `[` and set operators are literals.
    assert_eq!(pg("[[]"), r"\[");
    assert_eq!(pg("[a&&b]"), r"[\&ab]");
    assert_eq!(pg("[--/]"), r"[\--\/]");
    assert_eq!(pg("[a[b]c]"), r"[\[ab]c\]");
    assert!(matches("[a~~b]", "~"));
    // Escapes RE2 has and the regex crate lacks or reads otherwise.
    assert_eq!(pg(r"\Qa.b\E+"), r"a\.b+");
    assert_eq!(pg(r"\Q*"), r"\*");
    assert_eq!(pg(r"\101\0"), format!("A{ARE_NOTHING}"));
    assert_eq!(pg(r"\<a\>"), r"\<a\>");
    assert!(matches(r"\<a\>", "<a>"));
    assert_eq!(pg(r"\b{start}"), format!(r"{WORD_BOUNDARY}\{{start\}}"));
}

#[test]
fn what_is_not_re2_is_refused() {
    for (pattern, message) in [
        ("(?x)a b", "flag x is not RE2 syntax"),
        ("(?u)a", "flag u is not RE2 syntax"),
        ("(?R)a", "flag R is not RE2 syntax"),
        ("(?-u:a)", "flag u is not RE2 syntax"),
        (r"\u0041", r"invalid escape sequence \u"),
        (r"\e", r"invalid escape sequence \e"),
        (r"\1", r"invalid escape sequence \1"),
        (r"\p{sc=Greek}", "invalid Unicode class"),
        (r"\p{Nope}", "Unicode property not found"),
        ("[[:nope:]]", "invalid character class [:nope:]"),
        ("[b-a]", "invalid character class range b-a"),
        ("[a", "missing closing ]"),
        ("a\\", "trailing backslash"),
        ("(a", "unclosed group"),
        ("a)", "unopened group"),
        ("*a", "repetition operator missing expression"),
        (r"\x{110000}", r"invalid \x escape"),
        (r"\x4", r"invalid \x escape"),
        ("(?=a)", "look-around"),
    ] {
        let error = to_postgres(pattern, false).expect_err(pattern);
        assert!(
            error.message.contains(message),
            "{pattern:?}: {:?} lacks {message:?}",
            error.message
        );
        assert_eq!(compile(pattern, true).expect_err(pattern), error);
    }
}

#[test]
fn size_limits() {
    let long = "a".repeat(MAX_PATTERN_LEN + 1);
    assert!(pg_err(&long).contains("bytes long"));
    assert!(compile(&long, false).is_err());
    // Short and within RE2's limits, but far over the compiled-size limit.
    let e = compile(r"\pL{1000}", false).unwrap_err();
    assert!(e.message.contains("too large"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("invalid regular expression: {}", e.message)
    );
}

#[test]
fn anchored_matches_the_whole_text() {
    let re = compile("a|b", true).unwrap();
    assert!(re.is_match("a") && re.is_match("b"));
    assert!(!re.is_match("ab") && !re.is_match("a\n"));
    let re = compile("(?m)a$", true).unwrap();
    assert!(re.is_match("a") && !re.is_match("a\nb"));
    assert!(compile("b", false).unwrap().is_match("abc"));
    assert_eq!(to_postgres("(?i)x", true).unwrap(), "^(?:[Xx])$");
}
