//! LogQL regular expressions, for PostgreSQL and for chute itself.
//!
//! LogQL patterns have RE2 syntax (Loki runs Go's `regexp`). chute runs some matchers
//! in PostgreSQL (`col ~ $1`, an "advanced regular expression", ARE) and the rest with
//! the `regex` crate. A pattern never reaches PostgreSQL as written: it is parsed as
//! RE2 and printed again as an ARE ([`to_postgres`]) or in `regex` crate syntax
//! ([`compile`]), with RE2's meaning. Where the dialects differ, and what chute does:
//!
//! - **`\d`, `\w`, `\s`** (and `\D`, `\W`, `\S`) are ASCII in RE2 (`\s` is
//!   `[\t\n\f\r ]`), locale classes in PostgreSQL and Unicode classes in the `regex`
//!   crate: they become explicit ASCII classes such as `[0-9]`.
//! - **`\b`** is a word boundary in RE2 but a backspace in PostgreSQL (whose `\y`
//!   follows the locale): `\b` and `\B` become lookaround constraints on
//!   `[0-9A-Za-z_]`, RE2's ASCII word characters.
//! - **`.`** does not match `\n` in RE2 unless `(?s)`, but matches anything in
//!   PostgreSQL: it becomes `[^\n]`.
//! - **Flags** `(?i)`, `(?m)`, `(?s)`, `(?U)` may appear anywhere in RE2, but
//!   PostgreSQL takes options only at the very start: they are worked into the
//!   translation instead. Under `(?i)`, `a` becomes `[Aa]`; under `(?m)`, `^` becomes
//!   `(?:^|(?<=\n))` and `$` becomes `(?:$|(?=\n))`.
//! - **`\A` and `\z`** become `^` and `$`, which match only at the ends of the text in
//!   both dialects (without `(?m)`).
//! - **Unicode classes** (`\pL`, `\p{Greek}`) don't exist in PostgreSQL: they are
//!   expanded into code point ranges. A class of more than 512 ranges (`\pL`,
//!   `\p{Lu}`) is refused for PostgreSQL.
//! - **Repetition counts** over 255, PostgreSQL's limit, are refused (RE2 allows up to
//!   1000), as are repetitions nested so deep that PostgreSQL would give up on them.
//! - **Non-greedy quantifiers**: PostgreSQL gives a whole regex one greediness, which
//!   changes what a match covers but never whether a string matches, all `~` asks:
//!   the translation leaves non-greediness out. Submatches (LogQL's `regexp` stage)
//!   are taken in chute, never in PostgreSQL.
//! - **Groups**, named or not, become non-capturing `(?:…)`; empty alternatives stay.
//! - **Literals** are escaped for PostgreSQL: ASCII punctuation gets a backslash,
//!   controls become `\uXXXX`. A NUL, which PostgreSQL text cannot hold, matches nothing.
//! - **RE2 syntax the `regex` crate reads otherwise** keeps its RE2 meaning: a `{` that
//!   starts no repetition is a literal (`{"level"`), `[`, `&&`, `--` and `~~` inside a
//!   class are literals, and `\Q…\E`, octal escapes and `\p{^Greek}` work. The `regex`
//!   crate's own extensions (flags `x`, `u`, `R`; `\u0041`; `\p{sc=Greek}`) are
//!   refused, and so are patterns over 4 KiB.

use std::fmt::Write as _;

use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::{self, Hir, HirKind, Look};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;
/// The most ranges a character class may have in PostgreSQL.
pub const MAX_CLASS_RANGES: usize = 512;
/// The compiled-size limit of [`compile`]'s regex, in bytes.
pub const SIZE_LIMIT: usize = 1 << 20;
/// RE2's largest repetition count, and the most copies nested repetitions may make.
const RE2_MAX_REPEAT: u32 = 1000;
/// PostgreSQL's largest repetition count (`DUPMAX`).
const PG_MAX_REPEAT: u32 = 255;
/// The most character positions an ARE may unfold into once PostgreSQL has copied out
/// its bounded repetitions (`(?:abcd){250}` is 1000). PostgreSQL 15 finds 40,000 "too
/// complex".
const PG_MAX_WEIGHT: u64 = 20_000;
/// The longest ARE [`to_postgres`] hands out, in bytes.
const PG_MAX_LEN: usize = 64 * 1024;
/// How deep groups and classes may nest.
const NEST_LIMIT: u32 = 250;

/// RE2's ASCII word characters, as an ARE bracket expression.
const ARE_WORD: &str = "[0-9A-Za-z_]";
/// An ARE atom that matches no character of any PostgreSQL text.
const ARE_NOTHING: &str = r"[^\u0001-\U0010FFFF]";
/// The code points a PostgreSQL text can hold: all but NUL and the surrogates.
const PG_CHARS: [(u32, u32); 2] = [(1, 0xD7FF), (0xE000, 0x10FFFF)];

/// A pattern that cannot run in PostgreSQL as it would in Loki, or is not valid RE2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression: {message}")]
pub struct RegexError {
    pub message: String,
}

fn fail<T>(message: impl Into<String>) -> Result<T, RegexError> {
    Err(RegexError {
        message: message.into(),
    })
}

/// `pattern` (RE2 syntax) as a PostgreSQL ARE that matches the same strings;
/// anchored (`^(?:...)$`) when `anchored` (LogQL label matchers match the whole value;
/// line filters match anywhere).
///
/// Only for yes-or-no matching (`~`): what a match covers may differ from RE2.
pub fn to_postgres(pattern: &str, anchored: bool) -> Result<String, RegexError> {
    let re2 = Re2::parse(pattern)?;
    for class in &re2.unicode_classes {
        check_unicode_class(class)?;
    }
    let weight = pg_weight(&re2.hir);
    if weight > PG_MAX_WEIGHT {
        return fail(format!(
            "pattern is too complex to run in PostgreSQL: its repetitions unfold into \
             {weight} positions (the limit is {PG_MAX_WEIGHT})"
        ));
    }
    let mut are = Are::default();
    are.hir(&re2.hir)?;
    let out = anchor(are.out, anchored);
    if out.len() > PG_MAX_LEN {
        return fail(format!(
            "pattern is too large to run in PostgreSQL: it translates into {} bytes \
             (the limit is {PG_MAX_LEN})",
            out.len()
        ));
    }
    Ok(out)
}

/// `pattern` compiled for matching in chute, anchored likewise. Size-limited
/// (`RegexBuilder::size_limit`, [`SIZE_LIMIT`]) so a hostile pattern cannot take memory.
pub fn compile(pattern: &str, anchored: bool) -> Result<regex::Regex, RegexError> {
    let re2 = Re2::parse(pattern)?;
    // The rewritten pattern parses on its own (without `x` mode), so wrapping it in a
    // group cannot change how it parses.
    let built = regex::RegexBuilder::new(&anchor(re2.pattern, anchored))
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT + 1)
        .build();
    built.or_else(|e| match e {
        regex::Error::CompiledTooBig(limit) => fail(format!(
            "pattern is too large: compiled, it would take over {limit} bytes"
        )),
        other => fail(other.to_string()),
    })
}

/// `^(?:pattern)$` when `anchored`, the same in both dialects.
fn anchor(pattern: String, anchored: bool) -> String {
    match anchored {
        true => format!("^(?:{pattern})$"),
        false => pattern,
    }
}

/// A pattern read as RE2, and written in the `regex` crate's syntax with RE2's meaning.
struct Re2 {
    pattern: String,
    /// Every `\p{…}` class, as written into `pattern`.
    unicode_classes: Vec<String>,
    hir: Hir,
}

impl Re2 {
    fn parse(pattern: &str) -> Result<Re2, RegexError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return fail(format!(
                "pattern is {} bytes long (the limit is {MAX_PATTERN_LEN})",
                pattern.len()
            ));
        }
        let mut reader = Reader {
            src: pattern.chars().collect(),
            at: 0,
            out: String::with_capacity(pattern.len() * 2),
            unicode_classes: Vec::new(),
        };
        reader.top()?;
        let pattern = reader.out;
        let ast = ast::parse::ParserBuilder::new()
            .nest_limit(NEST_LIMIT)
            .build()
            .parse(&pattern)
            .or_else(|e| fail(e.kind().to_string()))?;
        ast::visit(&ast, Re2Only::default())?;
        let hir = hir::translate::TranslatorBuilder::new()
            .unicode(true)
            .utf8(true)
            .build()
            .translate(&pattern, &ast)
            .or_else(|e| fail(e.kind().to_string()))?;
        let unicode_classes = reader.unicode_classes;
        Ok(Re2 {
            pattern,
            unicode_classes,
            hir,
        })
    }
}

/// Reads a pattern as Go's parser does, writing it out in `regex` crate syntax.
struct Reader {
    src: Vec<char>,
    at: usize,
    out: String,
    unicode_classes: Vec<String>,
}

impl Reader {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.src.get(self.at + ahead).copied()
    }

    /// The text of the `{…}` at `at`, which it passes; `None` when unclosed.
    fn braced(&mut self) -> Option<String> {
        let len = (1..).take_while(|&i| self.peek(i).is_some_and(|c| c != '}'));
        let len = len.count();
        self.peek(len + 1)?;
        let text = self.src[self.at + 1..self.at + 1 + len].iter().collect();
        self.at += len + 2;
        Some(text)
    }

    /// The pattern outside classes.
    fn top(&mut self) -> Result<(), RegexError> {
        while let Some(c) = self.peek(0) {
            let repeat = if c == '{' { self.repeat_len() } else { None };
            match (c, repeat) {
                ('\\', _) => self.escape()?,
                ('[', _) => self.class()?,
                // Go reads `{n}`, `{n,}` and `{n,m}` as repetitions, other `{` as literals.
                (_, Some(len)) => {
                    self.out.extend(&self.src[self.at..self.at + len]);
                    self.at += len;
                }
                _ => {
                    self.at += 1;
                    match c {
                        '{' | '}' | ']' => push_rust_char(&mut self.out, c),
                        _ => self.out.push(c),
                    }
                }
            }
        }
        Ok(())
    }

    /// The length of the `{n}`, `{n,}` or `{n,m}` at `at`, if Go reads one there.
    fn repeat_len(&self) -> Option<usize> {
        let mut len = 1 + self.number_len(1)?;
        if self.peek(len) == Some(',') {
            len += 1;
            if self.peek(len) != Some('}') {
                len += self.number_len(len)?;
            }
        }
        (self.peek(len) == Some('}')).then_some(len + 1)
    }

    /// The length of the decimal number `ahead`, as Go reads one (no leading zeros).
    fn number_len(&self, ahead: usize) -> Option<usize> {
        let digits = (ahead..).take_while(|&i| self.peek(i).is_some_and(|c| c.is_ascii_digit()));
        match digits.count() {
            0 => None,
            n if n > 1 && self.peek(ahead) == Some('0') => None,
            n => Some(n),
        }
    }

    /// A backslash escape outside a class.
    fn escape(&mut self) -> Result<(), RegexError> {
        match self.peek(1) {
            Some('Q') => {
                self.at += 2;
                while let Some(c) = self.peek(0) {
                    self.at += 1;
                    if c == '\\' && self.peek(0) == Some('E') {
                        self.at += 1;
                        break;
                    }
                    push_rust_char(&mut self.out, c);
                }
            }
            Some(c @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => {
                self.at += 2;
                let (caret, ranges) = perl_class(c);
                let _ = write!(self.out, "[{caret}{ranges}]");
            }
            // RE2's `\b` is ASCII; `\A` and `\z` mean the same in both.
            Some(c @ ('b' | 'B' | 'A' | 'z')) => {
                self.at += 2;
                let _ = match c {
                    'b' | 'B' => write!(self.out, r"(?-u:\{c})"),
                    _ => write!(self.out, r"\{c}"),
                };
            }
            Some('p' | 'P') => self.unicode_class()?,
            _ => {
                let c = self.escaped_char()?;
                push_rust_char(&mut self.out, c);
            }
        }
        Ok(())
    }

    /// A single-character escape (`\n`, `\x41`, `\101`, `\.`), as Go reads one.
    fn escaped_char(&mut self) -> Result<char, RegexError> {
        let Some(c) = self.peek(1) else {
            return fail("trailing backslash at end of pattern");
        };
        self.at += 2;
        let octal = |c: Option<char>| c.filter(|c| ('0'..='7').contains(c));
        match c {
            '1'..='7' if octal(self.peek(0)).is_none() => fail(format!(
                "invalid escape sequence \\{c} (backreferences are not supported)"
            )),
            '0'..='7' => {
                let mut value = c as u32 - '0' as u32;
                for _ in 0..2 {
                    let Some(d) = octal(self.peek(0)) else { break };
                    value = value * 8 + (d as u32 - '0' as u32);
                    self.at += 1;
                }
                Ok(char::from_u32(value).expect("octal escapes stay under 512"))
            }
            'x' => {
                let digits = if self.peek(0) == Some('{') {
                    self.braced()
                } else {
                    let digits: String = self.src[self.at..].iter().take(2).collect();
                    self.at += digits.chars().count();
                    Some(digits).filter(|d| d.chars().count() == 2)
                };
                let hex = |d: &String| !d.is_empty() && d.chars().all(|c| c.is_ascii_hexdigit());
                let value = digits
                    .filter(hex)
                    .and_then(|d| u32::from_str_radix(&d, 16).ok());
                let invalid = || fail("invalid \\x escape (RE2 takes \\x41 or \\x{1F600})");
                value.and_then(char::from_u32).map_or_else(invalid, Ok)
            }
            'a' => Ok('\x07'),
            'f' => Ok('\x0C'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\x0B'),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c),
            c => fail(format!("invalid escape sequence \\{c}")),
        }
    }

    /// `\pL`, `\p{Greek}`, `\P{Greek}`, `\p{^Greek}`: written as `\p{Greek}` or
    /// `\P{Greek}`, and recorded.
    fn unicode_class(&mut self) -> Result<(), RegexError> {
        let mut negated = self.peek(1) == Some('P');
        self.at += 2;
        let mut name = match self.peek(0) {
            Some('{') => match self.braced() {
                Some(name) => name,
                None => return fail("unclosed \\p{...} class"),
            },
            Some(c) => {
                self.at += 1;
                c.to_string()
            }
            None => String::new(),
        };
        if let Some(rest) = name.strip_prefix('^') {
            negated = !negated;
            name = rest.to_string();
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return fail(format!(
                "invalid Unicode class \\p{{{name}}} (RE2 takes a general category or a \
                 script, such as \\pL or \\p{{Greek}})"
            ));
        }
        let text = format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' });
        self.out.push_str(&text);
        self.unicode_classes.push(text);
        Ok(())
    }

    /// A bracketed class, as Go reads it: every character in it is a literal except
    /// `]`, the `-` of a range, `\` and `[:name:]`.
    fn class(&mut self) -> Result<(), RegexError> {
        self.at += 1;
        self.out.push('[');
        if self.peek(0) == Some('^') {
            self.at += 1;
            self.out.push('^');
        }
        let mut first = true;
        loop {
            let c = self.peek(0);
            if c == Some(']') && !first {
                self.at += 1;
                self.out.push(']');
                return Ok(());
            }
            first = false;
            if c == Some('[') && self.peek(1) == Some(':') && self.posix_class()? {
                continue;
            }
            if c == Some('\\') {
                match self.peek(1) {
                    Some('p' | 'P') => {
                        self.unicode_class()?;
                        continue;
                    }
                    Some(k @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => {
                        self.at += 2;
                        let _ = match perl_class(k) {
                            ("", ranges) => write!(self.out, "{ranges}"),
                            (_, ranges) => write!(self.out, "[^{ranges}]"),
                        };
                        continue;
                    }
                    _ => {}
                }
            }
            let lo = self.class_char()?;
            push_rust_char(&mut self.out, lo);
            if self.peek(0) == Some('-') && self.peek(1).is_some_and(|c| c != ']') {
                self.at += 1;
                let hi = self.class_char()?;
                if hi < lo {
                    let (lo, hi) = (lo.escape_debug(), hi.escape_debug());
                    return fail(format!("invalid character class range {lo}-{hi}"));
                }
                self.out.push('-');
                push_rust_char(&mut self.out, hi);
            }
        }
    }

    /// `[:alpha:]` inside a class: copied, and true; false when there is no `:]` (the
    /// `[` is then a literal).
    fn posix_class(&mut self) -> Result<bool, RegexError> {
        const NAMES: [&str; 14] = [
            "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
            "punct", "space", "upper", "word", "xdigit",
        ];
        let rest = &self.src[self.at + 2..];
        let Some(len) = rest.windows(2).position(|w| w == [':', ']']) else {
            return Ok(false);
        };
        let name: String = rest[..len].iter().collect();
        if !NAMES.contains(&name.strip_prefix('^').unwrap_or(&name)) {
            return fail(format!("invalid character class [:{name}:]"));
        }
        let _ = write!(self.out, "[:{name}:]");
        self.at += 2 + len + 2;
        Ok(true)
    }

    fn class_char(&mut self) -> Result<char, RegexError> {
        match self.peek(0) {
            None => fail("missing closing ] of a character class"),
            Some('\\') => self.escaped_char(),
            Some(c) => {
                self.at += 1;
                Ok(c)
            }
        }
    }
}

/// RE2's `\d`, `\w`, `\s` (or, in capitals, their negations) as a `^` or nothing and
/// the inside of a `regex` crate class.
fn perl_class(letter: char) -> (&'static str, &'static str) {
    let ranges = match letter.to_ascii_lowercase() {
        'd' => "0-9",
        'w' => "0-9A-Za-z_",
        _ => r"\t\n\x0C\r\x20",
    };
    (if letter.is_ascii_uppercase() { "^" } else { "" }, ranges)
}

/// `c` as a literal in `regex` crate syntax, in or out of a class.
fn push_rust_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || !c.is_ascii() && !c.is_control() {
        out.push(c);
    } else {
        let _ = write!(out, r"\x{{{:X}}}", c as u32);
    }
}

/// Refuses the `regex` crate's extensions to RE2's syntax, and repetitions over RE2's
/// limits.
#[derive(Default)]
struct Re2Only {
    /// For each counted repetition around the node visited, how many copies of what it
    /// repeats RE2 still allows (RE2 caps their product at 1000).
    budgets: Vec<u32>,
}

/// The count of a counted repetition (`{n}`, `{n,}`, `{n,m}`) as RE2 limits it.
fn counted(ast: &Ast) -> Option<u32> {
    use ast::RepetitionRange::{AtLeast, Bounded, Exactly};
    match ast {
        Ast::Repetition(rep) => match rep.op.kind {
            ast::RepetitionKind::Range(Exactly(n) | AtLeast(n) | Bounded(_, n)) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

impl ast::Visitor for Re2Only {
    type Output = ();
    type Err = RegexError;

    fn finish(self) -> Result<(), RegexError> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), RegexError> {
        if let Some(n) = counted(ast) {
            let budget = self.budgets.last().copied().unwrap_or(RE2_MAX_REPEAT);
            if n > budget && self.budgets.is_empty() {
                return fail(format!(
                    "repetition count {n} is over RE2's limit of {RE2_MAX_REPEAT}"
                ));
            } else if n > budget {
                return fail(format!(
                    "nested repetitions make over {RE2_MAX_REPEAT} copies (RE2's limit)"
                ));
            }
            self.budgets.push(budget / n.max(1));
        }
        let flags = match ast {
            Ast::Flags(set) => &set.flags,
            Ast::Group(group) => match &group.kind {
                // `\b` and `\B` as rewritten (RE2's `\b` is ASCII).
                ast::GroupKind::NonCapturing(_)
                    if matches!(&*group.ast, Ast::Assertion(a)
                        if matches!(a.kind, ast::AssertionKind::WordBoundary
                            | ast::AssertionKind::NotWordBoundary)) =>
                {
                    return Ok(())
                }
                ast::GroupKind::NonCapturing(flags) => flags,
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        for item in &flags.items {
            let letter = match item.kind {
                ast::FlagsItemKind::Flag(ast::Flag::Unicode) => 'u',
                ast::FlagsItemKind::Flag(ast::Flag::CRLF) => 'R',
                ast::FlagsItemKind::Flag(ast::Flag::IgnoreWhitespace) => 'x',
                _ => continue,
            };
            return fail(format!(
                "flag {letter} is not RE2 syntax (RE2 has the flags i, m, s and U)"
            ));
        }
        Ok(())
    }

    fn visit_post(&mut self, ast: &Ast) -> Result<(), RegexError> {
        if counted(ast).is_some() {
            self.budgets.pop();
        }
        Ok(())
    }
}

/// Refuses a Unicode class (`\p{Greek}`, as rewritten) too large for PostgreSQL.
fn check_unicode_class(class: &str) -> Result<(), RegexError> {
    // It parsed with the rest of the pattern already.
    let hir = regex_syntax::parse(class).unwrap_or_else(|_| Hir::empty());
    let HirKind::Class(class_hir) = hir.kind() else {
        return Ok(());
    };
    let positive = pg_ranges(class_hir)?;
    let n = positive.len().min(pg_complement(&positive).len());
    if n > MAX_CLASS_RANGES {
        return fail(format!(
            "Unicode class {class} is too large to run in PostgreSQL ({n} ranges; the \
             limit is {MAX_CLASS_RANGES})"
        ));
    }
    Ok(())
}

/// A class's ranges, less what PostgreSQL text cannot hold.
fn pg_ranges(class: &hir::Class) -> Result<Vec<(u32, u32)>, RegexError> {
    // A byte class is empty (`[^\x00-\x{10FFFF}]`) or ASCII, since `(?-u)` is not RE2.
    let ranges: Vec<(u32, u32)> = match class {
        hir::Class::Unicode(c) => c
            .iter()
            .map(|r| (r.start().into(), r.end().into()))
            .collect(),
        hir::Class::Bytes(c) if c.is_ascii() => c
            .iter()
            .map(|r| (r.start().into(), r.end().into()))
            .collect(),
        hir::Class::Bytes(_) => return fail("pattern matches bytes that are not UTF-8"),
    };
    let clip = |(lo, hi): (u32, u32)| PG_CHARS.map(|(plo, phi)| (lo.max(plo), hi.min(phi)));
    let clipped = ranges.into_iter().flat_map(clip);
    Ok(clipped.filter(|(lo, hi)| lo <= hi).collect())
}

/// The code points of [`PG_CHARS`] outside `ranges` (sorted, disjoint).
fn pg_complement(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (plo, phi) in PG_CHARS {
        let mut next = plo;
        for &(lo, hi) in ranges.iter().filter(|&&(lo, hi)| hi >= plo && lo <= phi) {
            if lo > next {
                out.push((next, lo - 1));
            }
            next = next.max(hi + 1);
        }
        if next <= phi {
            out.push((next, phi));
        }
    }
    out
}

/// Roughly how many character positions PostgreSQL's automaton gets once bounded
/// repetitions are copied out.
fn pg_weight(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty => 0,
        HirKind::Literal(lit) => lit.0.len() as u64,
        HirKind::Look(Look::WordAscii | Look::WordAsciiNegate) => 4,
        HirKind::Look(Look::StartLF | Look::EndLF) => 2,
        HirKind::Class(_) | HirKind::Look(_) => 1,
        HirKind::Capture(cap) => pg_weight(&cap.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().map(pg_weight).fold(0, u64::saturating_add)
        }
        HirKind::Repetition(rep) => {
            let copies = rep.max.unwrap_or(rep.min.saturating_add(1)).max(1);
            pg_weight(&rep.sub).saturating_mul(u64::from(copies))
        }
    }
}

/// The ARE printer.
#[derive(Default)]
struct Are {
    out: String,
}

impl Are {
    fn hir(&mut self, hir: &Hir) -> Result<(), RegexError> {
        match hir.kind() {
            HirKind::Empty => {}
            HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
                Ok(text) => text.chars().for_each(|c| self.char(c, false)),
                Err(_) => return fail("pattern matches bytes that are not UTF-8"),
            },
            HirKind::Class(class) => self.class(class)?,
            HirKind::Look(look) => self.look(*look)?,
            HirKind::Repetition(rep) => self.repetition(rep)?,
            HirKind::Capture(cap) => self.group(&cap.sub)?,
            HirKind::Concat(subs) => {
                for sub in subs {
                    if matches!(sub.kind(), HirKind::Alternation(_)) {
                        self.group(sub)?;
                    } else {
                        self.hir(sub)?;
                    }
                }
            }
            HirKind::Alternation(subs) => {
                for (i, sub) in subs.iter().enumerate() {
                    if i > 0 {
                        self.out.push('|');
                    }
                    self.hir(sub)?;
                }
            }
        }
        Ok(())
    }

    fn group(&mut self, hir: &Hir) -> Result<(), RegexError> {
        self.out.push_str("(?:");
        self.hir(hir)?;
        self.out.push(')');
        Ok(())
    }

    /// A literal character, in brackets or not. ARE's `\` escapes in both.
    fn char(&mut self, c: char, in_brackets: bool) {
        match c {
            '\0' if !in_brackets => self.out.push_str(ARE_NOTHING),
            '\n' => self.out.push_str(r"\n"),
            '\r' => self.out.push_str(r"\r"),
            '\t' => self.out.push_str(r"\t"),
            c if c.is_control() => {
                let _ = write!(self.out, r"\u{:04X}", c as u32);
            }
            c if c.is_ascii_punctuation() && c != '_' => {
                self.out.push('\\');
                self.out.push(c);
            }
            c => self.out.push(c),
        }
    }

    fn class(&mut self, class: &hir::Class) -> Result<(), RegexError> {
        let positive = pg_ranges(class)?;
        let negative = pg_complement(&positive);
        let (negated, ranges) = match (&positive[..], &negative[..]) {
            ([], _) => {
                self.out.push_str(ARE_NOTHING);
                return Ok(());
            }
            (&[(lo, hi)], _) if lo == hi => {
                self.char(char::from_u32(lo).expect("a class holds chars"), false);
                return Ok(());
            }
            // Every character: ARE's `.` matches `\n` too.
            (_, []) => {
                self.out.push('.');
                return Ok(());
            }
            _ if negative.len() < positive.len() => (true, negative),
            _ => (false, positive),
        };
        if ranges.len() > MAX_CLASS_RANGES {
            return fail(format!(
                "a character class of {} ranges is too large to run in PostgreSQL (the \
                 limit is {MAX_CLASS_RANGES})",
                ranges.len()
            ));
        }
        self.out.push_str(if negated { "[^" } else { "[" });
        for (lo, hi) in ranges {
            let char = |c| char::from_u32(c).expect("a class holds chars");
            self.char(char(lo), true);
            if hi > lo + 1 {
                self.out.push('-');
            }
            if hi > lo {
                self.char(char(hi), true);
            }
        }
        self.out.push(']');
        Ok(())
    }

    fn look(&mut self, look: Look) -> Result<(), RegexError> {
        let w = ARE_WORD;
        let are = match look {
            Look::Start => "^".to_string(),
            Look::End => "$".to_string(),
            Look::StartLF => r"(?:^|(?<=\n))".to_string(),
            Look::EndLF => r"(?:$|(?=\n))".to_string(),
            Look::WordAscii => format!("(?:(?<={w})(?!{w})|(?<!{w})(?={w}))"),
            Look::WordAsciiNegate => format!("(?:(?<={w})(?={w})|(?<!{w})(?!{w}))"),
            other => return fail(format!("the assertion {other:?} has no PostgreSQL form")),
        };
        self.out.push_str(&are);
        Ok(())
    }

    fn repetition(&mut self, rep: &hir::Repetition) -> Result<(), RegexError> {
        // A repeated assertion (`(?:^)*`, `\b+`) holds where it holds once; with a
        // minimum of 0, it always holds. PostgreSQL refuses to repeat a constraint.
        if rep.sub.properties().maximum_len() == Some(0) {
            return if rep.min > 0 {
                self.hir(&rep.sub)
            } else {
                Ok(())
            };
        }
        if let Some(n) = [Some(rep.min), rep.max].into_iter().flatten().max() {
            if n > PG_MAX_REPEAT {
                return fail(format!(
                    "repetition count {n} is over PostgreSQL's limit of {PG_MAX_REPEAT}"
                ));
            }
        }
        match rep.sub.kind() {
            HirKind::Class(_) | HirKind::Capture(_) => self.hir(&rep.sub)?,
            HirKind::Literal(lit)
                if std::str::from_utf8(&lit.0).is_ok_and(|s| s.chars().count() == 1) =>
            {
                self.hir(&rep.sub)?
            }
            _ => self.group(&rep.sub)?,
        }
        // Greediness is left out: it never changes whether a string matches.
        let quantifier = match (rep.min, rep.max) {
            (0, None) => "*".to_string(),
            (1, None) => "+".to_string(),
            (0, Some(1)) => "?".to_string(),
            (min, None) => format!("{{{min},}}"),
            (min, Some(max)) if min == max => format!("{{{min}}}"),
            (min, Some(max)) => format!("{{{min},{max}}}"),
        };
        self.out.push_str(&quantifier);
        Ok(())
    }
}

#[cfg(test)]
#[path = "regex_tests.rs"]
mod tests;
