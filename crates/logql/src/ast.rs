//! The syntax tree of a query.
//!
//! Every node an error could be about carries the [`Span`] of its text. Spans never
//! take part in equality (see [`Span`]), so two trees are equal when they mean the
//! same query however it was written: `sum(x) by (a)` equals `sum by (a) (x)`, and
//! parentheses leave no node of their own.
//!
//! Each node prints back as canonical LogQL (`display.rs`).

use crate::span::Span;
use crate::units::{Bytes, Duration};

/// A whole query: logs or samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A query that returns log lines: `{app="x"} |= "error"`.
    Log(LogExpr),
    /// A query that returns samples: `rate({app="x"}[5m])`.
    Metric(MetricExpr),
}

impl Expr {
    /// Where the query was written (all of it, without surrounding parentheses).
    pub fn span(&self) -> Span {
        match self {
            Expr::Log(e) => e.span,
            Expr::Metric(e) => e.span(),
        }
    }
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    /// Which streams.
    pub selector: Selector,
    /// What happens to their lines, in order.
    pub pipeline: Vec<Stage>,
    /// The selector and pipeline.
    pub span: Span,
}

/// `{name="value", ...}`: at least one matcher, all of which must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// The matchers, as written.
    pub matchers: Vec<Matcher>,
    /// From `{` to `}`.
    pub span: Span,
}

/// `name op "value"` in a stream selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// How the label's value is compared.
    pub op: MatchOp,
    /// The string or regular expression (not checked here: the planner compiles it).
    pub value: StringLit,
    /// The whole matcher.
    pub span: Span,
}

/// How a stream matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`, a regular expression matching the whole value.
    Re,
    /// `!~`
    NotRe,
}

/// A string literal, unescaped, and where it was written (with its quotes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StringLit {
    /// The string's value.
    pub value: String,
    /// The literal, quotes included.
    pub span: Span,
}

/// One stage of a log pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// What the stage does.
    pub kind: StageKind,
    /// From its `|` (or line filter operator) to its end.
    pub span: Span,
}

/// The stages chute supports.
#[derive(Debug, Clone, PartialEq)]
pub enum StageKind {
    /// `|= "a"`, `!~ "re" or "re2"`.
    LineFilter(LineFilter),
    /// `| json`: every JSON field becomes a label.
    Json,
    /// `| logfmt`: every logfmt key becomes a label.
    Logfmt,
    /// `| status >= 500 and level = "error"`.
    LabelFilter(LabelFilter),
    /// `| line_format "{{.msg}}"`: the Go template, as written.
    LineFormat(StringLit),
    /// `| drop a, b`: labels removed.
    Drop(Vec<String>),
    /// `| keep a, b`: the only labels kept.
    Keep(Vec<String>),
}

/// A line filter: `op "s" [or "s2" ...]`.
///
/// With `|=` and `|~` a line passes when it matches any of the values; with `!=`
/// and `!~` when it matches none of them (as in Loki).
#[derive(Debug, Clone, PartialEq)]
pub struct LineFilter {
    /// The comparison.
    pub op: LineFilterOp,
    /// The strings or regular expressions, at least one, joined by `or`.
    pub values: Vec<StringLit>,
}

/// How a line filter tests a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    /// `|=`: contains.
    Contains,
    /// `!=`: does not contain.
    NotContains,
    /// `|~`: matches the regular expression somewhere.
    Matches,
    /// `!~`: does not match it anywhere.
    NotMatches,
}

/// A condition on labels: comparisons joined by `and` / `or`.
///
/// `And` and `Or` hold at least two operands. An operand that is itself an `And`
/// or `Or` was written in parentheses (`a and (b and c)`); `a and b and c` is one
/// `And` of three.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// `name op value`.
    Compare(LabelCompare),
    /// All must hold (`and`, `,`, or two filters side by side).
    And(Vec<LabelFilter>),
    /// At least one must hold (`or`; binds less tightly than `and`).
    Or(Vec<LabelFilter>),
}

/// `name op value` in a label filter.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelCompare {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: CompareOp,
    /// What the label's value is compared with; its kind says how to read the label.
    pub value: FilterValue,
    /// The value as written (for errors about it, such as a bad regular expression).
    pub value_span: Span,
    /// The whole comparison.
    pub span: Span,
}

/// The comparisons of a label filter. `==` is read as `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
    /// `=~` (strings only)
    Re,
    /// `!~` (strings only)
    NotRe,
    /// `>` (not strings)
    Gt,
    /// `>=` (not strings)
    Ge,
    /// `<` (not strings)
    Lt,
    /// `<=` (not strings)
    Le,
}

/// The right-hand side of a label filter; the kind of value decides how the label is
/// read (`duration > 1s` reads the label as a duration).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// `"root"`
    String(String),
    /// `500`, `-1.5`, `1e3`
    Number(f64),
    /// `1s`, `1h30m`, `-250ms`
    Duration(Duration),
    /// `20KB`, `1.5MiB`
    Bytes(Bytes),
}

/// A query that returns samples.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    /// `count_over_time({...}[5m])`
    Range(RangeAggregation),
    /// `sum by (a) (...)`, `topk(5, ...)`
    Vector(VectorAggregation),
    /// `a + b`, `a * 2`
    Binary(BinaryExpr),
    /// A number used as a scalar: `2`, `-1.5`.
    Literal(Literal),
    /// `vector(1)`: one sample with no labels at every step.
    VectorLiteral(Literal),
}

impl MetricExpr {
    /// Where the expression was written.
    pub fn span(&self) -> Span {
        match self {
            MetricExpr::Range(e) => e.span,
            MetricExpr::Vector(e) => e.span,
            MetricExpr::Binary(e) => e.span,
            MetricExpr::Literal(e) | MetricExpr::VectorLiteral(e) => e.span,
        }
    }
}

/// `op(log range)`: one sample per stream and step from the lines in the range.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAggregation {
    /// The function.
    pub op: RangeOp,
    /// The lines it reads.
    pub range: LogRange,
    /// From the function's name to its `)`.
    pub span: Span,
}

/// The range functions chute supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOp {
    /// `count_over_time`: lines in the range.
    CountOverTime,
    /// `rate`: lines per second.
    Rate,
    /// `bytes_over_time`: bytes of the lines in the range.
    BytesOverTime,
    /// `bytes_rate`: bytes per second.
    BytesRate,
}

/// A log query over a time range: `{...} | ... [5m] offset 1h`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    /// The lines.
    pub log: LogExpr,
    /// How far back from each step: the range covers `(t - range, t]`. Positive.
    pub range: Duration,
    /// `[5m]`, brackets included.
    pub range_span: Span,
    /// `offset 1h`: the range ends this long before the step (may be negative).
    pub offset: Option<Duration>,
    /// The whole log range.
    pub span: Span,
}

/// `op [grouping] ([k,] expr)`: samples of one step combined across series.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorAggregation {
    /// The aggregation (with `k` for `topk` and `bottomk`).
    pub op: AggregationOp,
    /// `by (...)` or `without (...)`, written before or after the arguments.
    pub grouping: Option<Grouping>,
    /// What is aggregated.
    pub expr: Box<MetricExpr>,
    /// From the operator's name to the end of the aggregation.
    pub span: Span,
}

/// The vector aggregations chute supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregationOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `topk(k, ...)`: the `k` largest samples (k ≥ 1).
    TopK(u64),
    /// `bottomk(k, ...)`: the `k` smallest samples (k ≥ 1).
    BottomK(u64),
}

/// `by (a, b)` or `without (a)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grouping {
    /// `without` rather than `by`.
    pub without: bool,
    /// The label names, possibly none (`by ()`).
    pub labels: Vec<String>,
    /// From `by`/`without` to `)`.
    pub span: Span,
}

/// `lhs op rhs` between metric expressions or numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    /// The operator.
    pub op: BinaryOp,
    /// The left operand.
    pub lhs: Box<MetricExpr>,
    /// The right operand.
    pub rhs: Box<MetricExpr>,
    /// Both operands and the operator.
    pub span: Span,
}

/// The arithmetic operators, loosest first: `+ -`, then `* / %`, then `^` (which
/// groups to the right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
}

impl BinaryOp {
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Add | BinaryOp::Sub => 1,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 2,
            BinaryOp::Pow => 3,
        }
    }

    /// Whether `a op b op c` means `a op (b op c)` (only `^`).
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }
}

/// A number in a metric expression (finite).
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    /// Its value, sign included.
    pub value: f64,
    /// The number as written (with `vector(...)` for a vector literal).
    pub span: Span,
}
