//! Planning a log query: what PostgreSQL filters and what chute evaluates on the
//! rows it gets back.
//!
//! PostgreSQL gets the time range, the tenant, every stream matcher and every line
//! filter that comes before the first `line_format` (parsers, label filters and
//! `drop`/`keep` never change the line, so a line filter may move ahead of them).
//! What is left (parsers, label filters, `line_format`, `drop`/`keep`, and line
//! filters after a `line_format`) runs in chute, as a
//! [`Pipeline`](super::pipeline::Pipeline), on the rows PostgreSQL returns.
//!
//! User text only ever reaches PostgreSQL as a bound parameter; the SQL text is
//! made of fixed fragments and the column names of [`Label`].
//!
//! Matchers follow Loki: a label a record lacks has the value `""`, so `{host=""}`
//! selects the records without a host; a regular expression must match the whole
//! value (it is anchored); a line filter's regular expression may match anywhere.

use chrono::{DateTime, Utc};
use chute_logql::{LineFilterOp, LogExpr, MatchOp, Matcher, Stage, StageKind};
use tokio_postgres::types::{ToSql, Type};

use super::labels::Label;
use super::regex;
use super::QueryError;

/// A value bound to a `$n` of the plan's SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Texts(Vec<String>),
    Codes(Vec<i16>),
    Time(DateTime<Utc>),
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Text(s) => s.to_sql(ty, out),
            Param::Texts(s) => s.to_sql(ty, out),
            Param::Codes(c) => c.to_sql(ty, out),
            Param::Time(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <String as ToSql>::accepts(ty)
            || <Vec<String> as ToSql>::accepts(ty)
            || <Vec<i16> as ToSql>::accepts(ty)
            || <DateTime<Utc> as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The time span a plan covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `[start, end)`: the lines of a log query (Loki: start inclusive, end
    /// exclusive).
    Lines {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// `(after, upto]`: the samples of range vectors (a range `[5m]` at step time
    /// `t` covers `(t - 5m, t]`).
    Samples {
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
    },
}

/// The part of a log query PostgreSQL answers: conditions on `chute.logs`, all of
/// which must hold, with their parameters; and the stages chute runs after.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPlan {
    /// SQL conditions; `$n` is `params[n - 1]`.
    pub conditions: Vec<String>,
    pub params: Vec<Param>,
    /// Stages evaluated on each row PostgreSQL returns, in order.
    pub residual: Vec<Stage>,
    /// The time span the plan covers.
    pub window: Window,
    /// Strings every row must contain (the `|=` filters PostgreSQL runs): what
    /// the blooms can rule blocks out by (see `query::blooms`).
    pub needles: Vec<String>,
}

impl LogPlan {
    /// Plans `expr` for `tenant`'s records in `window`.
    ///
    /// # Errors
    /// A regular expression PostgreSQL cannot run as RE2 would, with its position
    /// in `query`.
    pub fn new(
        expr: &LogExpr,
        tenant: &str,
        window: Window,
        query: &str,
    ) -> Result<LogPlan, QueryError> {
        let mut plan = LogPlan {
            conditions: Vec::new(),
            params: Vec::new(),
            residual: Vec::new(),
            window,
            needles: Vec::new(),
        };
        let time = match window {
            Window::Lines { start, end } => {
                let (s, e) = (plan.bind(Param::Time(start)), plan.bind(Param::Time(end)));
                format!("ts >= {s} AND ts < {e}")
            }
            Window::Samples { after, upto } => {
                let (a, u) = (plan.bind(Param::Time(after)), plan.bind(Param::Time(upto)));
                format!("ts > {a} AND ts <= {u}")
            }
        };
        plan.conditions.push(time);
        // `a|b`: several tenants at once (Loki's multi-tenant queries).
        let tenants = tenants_of(tenant);
        if let [one] = &tenants[..] {
            let t = plan.bind(Param::Text(one.clone()));
            plan.conditions.push(format!("tenant = {t}"));
        } else {
            let t = plan.bind(Param::Texts(tenants));
            plan.conditions.push(format!("tenant = ANY({t})"));
        }
        for m in &expr.selector.matchers {
            plan.matcher(m, query)?;
        }
        let (mut formatted, mut parsed) = (false, false);
        for stage in &expr.pipeline {
            match &stage.kind {
                StageKind::LineFilter(f) if !formatted => plan.line_filter(f, stage, query)?,
                // Before a parser no entry has an error label: dropping it (as
                // Grafana's volume query does) changes nothing.
                StageKind::Drop(names)
                    if !parsed && names.iter().all(|n| n.starts_with("__error")) => {}
                kind => {
                    formatted |= matches!(kind, StageKind::LineFormat(_));
                    parsed |= matches!(kind, StageKind::Json | StageKind::Logfmt);
                    plan.residual.push(stage.clone());
                }
            }
        }
        Ok(plan)
    }

    /// The SQL `WHERE` clause of the plan.
    pub fn where_clause(&self) -> String {
        self.conditions.join(" AND ")
    }

    /// This plan over `chute.minute_counts` instead of the rows, for a window
    /// `(after, upto]` of whole minutes; `None` unless the plan is a `Samples`
    /// window whose every other condition is on a column the counts keep (tenant,
    /// app, severity) and nothing is left for chute to evaluate.
    pub fn on_minute_counts(&self, after: DateTime<Utc>, upto: DateTime<Utc>) -> Option<LogPlan> {
        if !self.residual.is_empty() || !self.conditions[0].starts_with("ts > $1 AND ts <= $2") {
            return None;
        }
        let kept = |c: &str| {
            let c = c.trim_start_matches('(');
            ["tenant ", "app ", "severity "]
                .iter()
                .any(|col| c.starts_with(col))
                || c == "false"
        };
        if !self.conditions[1..].iter().all(|c| kept(c)) {
            return None;
        }
        let mut plan = self.clone();
        plan.conditions[0] = "minute > $1 AND minute <= $2".into();
        plan.params[0] = Param::Time(after);
        plan.params[1] = Param::Time(upto);
        Some(plan)
    }

    /// The parameters, as tokio-postgres takes them.
    pub fn sql_params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .collect()
    }

    /// Binds `p`; its placeholder.
    pub fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn matcher(&mut self, m: &Matcher, query: &str) -> Result<(), QueryError> {
        let value = &m.value.value;
        let Some(label) = Label::parse(&m.name) else {
            // No record has this label: its value is "" everywhere.
            let holds = match m.op {
                MatchOp::Eq => value.is_empty(),
                MatchOp::Ne => !value.is_empty(),
                MatchOp::Re | MatchOp::NotRe => {
                    let re = regex::compile(value, true)
                        .map_err(|e| QueryError::at(query, m.value.span, e.to_string()))?;
                    re.is_match("") == (m.op == MatchOp::Re)
                }
            };
            if !holds {
                self.conditions.push("false".into());
            }
            return Ok(());
        };
        let col = label.column();
        if let Some(codes) = label.codes() {
            // A coded label: the codes whose names match, found here.
            let test = name_test(m, query)?;
            let wanted: Vec<i16> = codes
                .into_iter()
                .filter(|(name, _)| test(name))
                .flat_map(|(_, c)| c)
                .collect();
            let absent = if label == Label::Level { "unknown" } else { "" };
            let null = if test(absent) {
                format!(" OR {col} IS NULL")
            } else {
                String::new()
            };
            let p = self.bind(Param::Codes(wanted));
            self.conditions.push(format!("({col} = ANY({p}){null})"));
            return Ok(());
        }
        let condition = match m.op {
            MatchOp::Eq if value.is_empty() => format!("({col} IS NULL OR {col} = '')"),
            MatchOp::Ne if value.is_empty() => format!("{col} <> ''"),
            MatchOp::Eq => {
                let p = self.bind(Param::Text(value.clone()));
                format!("{col} = {p}")
            }
            MatchOp::Ne => {
                let p = self.bind(Param::Text(value.clone()));
                format!("{col} IS DISTINCT FROM {p}")
            }
            MatchOp::Re | MatchOp::NotRe => {
                let at = |e: regex::RegexError| QueryError::at(query, m.value.span, e.to_string());
                let empty_matches = regex::compile(value, true).map_err(at)?.is_match("");
                let p = self.bind(Param::Text(regex::to_postgres(value, true).map_err(at)?));
                match (m.op == MatchOp::Re, empty_matches) {
                    (true, true) => format!("({col} IS NULL OR {col} ~ {p})"),
                    (true, false) => format!("{col} ~ {p}"),
                    (false, true) => format!("({col} IS NOT NULL AND {col} !~ {p})"),
                    (false, false) => format!("({col} IS NULL OR {col} !~ {p})"),
                }
            }
        };
        self.conditions.push(condition);
        Ok(())
    }

    fn line_filter(
        &mut self,
        f: &chute_logql::LineFilter,
        stage: &Stage,
        query: &str,
    ) -> Result<(), QueryError> {
        let mut any = Vec::new();
        for v in &f.values {
            let one = match f.op {
                LineFilterOp::Contains | LineFilterOp::NotContains => {
                    if v.value.is_empty() {
                        "true".to_owned()
                    } else {
                        // strpos, not `LIKE '%...%'`: the same test, searched with
                        // a skip table (a scan over the rows is a third faster).
                        let p = self.bind(Param::Text(v.value.clone()));
                        format!("strpos(message, {p}) > 0")
                    }
                }
                LineFilterOp::Matches | LineFilterOp::NotMatches => {
                    let pg = regex::to_postgres(&v.value, false)
                        .map_err(|e| QueryError::at(query, v.span, e.to_string()))?;
                    let p = self.bind(Param::Text(pg));
                    format!("message ~ {p}")
                }
            };
            any.push(one);
        }
        let any = match any.len() {
            0 => {
                return Err(QueryError::at(
                    query,
                    stage.span,
                    "a line filter needs a value",
                ))
            }
            1 => any.remove(0),
            _ => format!("({})", any.join(" OR ")),
        };
        if let (LineFilterOp::Contains, [v]) = (f.op, &f.values[..]) {
            self.needles.push(v.value.clone());
        }
        self.conditions.push(match f.op {
            LineFilterOp::Contains | LineFilterOp::Matches => any,
            LineFilterOp::NotContains | LineFilterOp::NotMatches => format!("NOT {any}"),
        });
        Ok(())
    }
}

/// The tenants of a request's tenant: one name, or several joined by `|`.
pub fn tenants_of(tenant: &str) -> Vec<String> {
    tenant.split('|').map(str::to_owned).collect()
}

/// Whether a name satisfies a matcher.
type NameTest = Box<dyn Fn(&str) -> bool>;

/// A test of a coded label's names against matcher `m`.
fn name_test(m: &Matcher, query: &str) -> Result<NameTest, QueryError> {
    let value = m.value.value.clone();
    Ok(match m.op {
        MatchOp::Eq => Box::new(move |n: &str| n == value),
        MatchOp::Ne => Box::new(move |n: &str| n != value),
        MatchOp::Re | MatchOp::NotRe => {
            let re = regex::compile(&value, true)
                .map_err(|e| QueryError::at(query, m.value.span, e.to_string()))?;
            let want = m.op == MatchOp::Re;
            Box::new(move |n: &str| re.is_match(n) == want)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(q: &str) -> LogPlan {
        let chute_logql::Expr::Log(e) = chute_logql::parse(q).unwrap() else {
            panic!("not a log query")
        };
        let window = Window::Lines {
            start: Utc::now(),
            end: Utc::now(),
        };
        LogPlan::new(&e, "acme", window, q).unwrap()
    }

    #[test]
    fn only_plans_on_tenant_app_and_level_go_to_the_minute_counts() {
        let samples = |q: &str| {
            let chute_logql::Expr::Log(e) = chute_logql::parse(q).unwrap() else {
                panic!("not a log query")
            };
            let window = Window::Samples {
                after: Utc::now(),
                upto: Utc::now(),
            };
            LogPlan::new(&e, "acme", window, q).unwrap()
        };
        let (a, u) = (Utc::now(), Utc::now());
        let on = samples(r#"{app=~"api|web", level!="debug", nope=""} | drop __error__"#)
            .on_minute_counts(a, u)
            .expect("the counts answer");
        assert!(on.conditions[0].starts_with("minute > $1"));
        assert_eq!(on.params[0], Param::Time(a));
        for q in [
            r#"{host="web-1"}"#,
            r#"{app="api"} |= "x""#,
            r#"{app="api"} != "x" or "y""#,
            r#"{app="api"} | json"#,
            r#"{procid="1"}"#,
        ] {
            assert!(samples(q).on_minute_counts(a, u).is_none(), "{q}");
        }
        assert!(
            plan(r#"{app="api"}"#).on_minute_counts(a, u).is_none(),
            "lines"
        );
    }

    #[test]
    fn matchers_and_line_filters_become_bound_conditions() {
        let p = plan(
            r#"{host="web-1", app!="", level=~"err.*|warn.*"} |= "50%_off" != "x" | json | status >= 500 |= "after""#,
        );
        assert_eq!(
            p.conditions,
            [
                "ts >= $1 AND ts < $2",
                "tenant = $3",
                "host = $4",
                "app <> ''",
                "(severity = ANY($5))",
                "strpos(message, $6) > 0",
                "NOT strpos(message, $7) > 0",
                "strpos(message, $8) > 0",
            ]
        );
        assert_eq!(p.params[3], Param::Text("web-1".into()));
        assert_eq!(p.params[4], Param::Codes(vec![3, 4]));
        assert_eq!(p.params[5], Param::Text("50%_off".into()));
        assert_eq!(p.residual.len(), 2, "json and the label filter stay");
        assert_eq!(p.needles, ["50%_off", "after"]);
        let or = plan(r#"{app="a"} |= "x" or "y" |~ "z""#);
        assert!(
            or.needles.is_empty(),
            "only a single `|=` value must be in every row"
        );
    }

    #[test]
    fn absent_labels_are_empty_and_line_filters_after_line_format_stay_behind() {
        let p = plan(r#"{user="", host=""} | line_format "{{.host}}" |= "web""#);
        assert_eq!(p.conditions[2], "(host IS NULL OR host = '')");
        assert_eq!(p.conditions.len(), 3, "{:?}", p.conditions);
        assert_eq!(p.residual.len(), 2);
        assert!(p.needles.is_empty(), "after line_format: not in SQL");
        let none = plan(r#"{user="root"}"#);
        assert_eq!(none.conditions.last().unwrap(), "false");
        let chute_logql::Expr::Log(e) = chute_logql::parse("{app=\"a\"}").unwrap() else {
            panic!("not a log query")
        };
        let window = Window::Lines {
            start: Utc::now(),
            end: Utc::now(),
        };
        let both = LogPlan::new(&e, "acme|beta", window, "").unwrap();
        assert_eq!(both.conditions[1], "tenant = ANY($3)");
        assert_eq!(
            both.params[2],
            Param::Texts(vec!["acme".into(), "beta".into()])
        );
        let unknown = plan(r#"{level="unknown"}"#);
        assert_eq!(
            unknown.conditions[2],
            "(severity = ANY($4) OR severity IS NULL)"
        );
        assert_eq!(unknown.params[3], Param::Codes(vec![]));
    }
}
