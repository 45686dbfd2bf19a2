//! SQL92 message selectors as RocketMQ evaluates them (`MessageSelector.bySql`; spec:
//! messaging-5x.md §6): an ActiveMQ-derived grammar over message properties.
//!
//! Grammar, loosest first: `OR`; `AND`; `=`, `<>`, `IS [NOT] NULL`; `>`, `>=`, `<`, `<=`,
//! `[NOT] BETWEEN a AND b`, `[NOT] IN ('a', ...)`, `[NOT] CONTAINS|STARTSWITH|ENDSWITH 's'`; unary
//! `+`, `-`, `NOT`; parentheses. Literals: `'text'` (`''` is a quote), integers (optional `L`),
//! decimals with optional exponent, `TRUE`, `FALSE`, `NULL`. Identifiers name properties. Keywords
//! are case-insensitive; `--` and `/* */` are comments.
//!
//! Evaluation is three-valued: a missing property is null, a comparison with a null side is null,
//! `AND`/`OR` follow SQL, and a message matches only when the whole expression is exactly true; an
//! evaluation error (a property that is not a number where one is compared) means no match.
//!
//! Written by hand: the grammar is small and RocketMQ-specific (no SQL parser crate speaks it), and a
//! recursive-descent parser gives the same errors for the same inputs as the Java parser's tokens.

use std::fmt;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL null (a missing property).
    Null,
    /// TRUE / FALSE.
    Bool(bool),
    /// An integer literal.
    Long(i64),
    /// A decimal literal.
    Double(f64),
    /// A string literal or a property value.
    Str(String),
}

/// A compiled selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Value),
    /// A property by name.
    Prop(String),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `NOT a`.
    Not(Box<Expr>),
    /// `-a`.
    Neg(Box<Expr>),
    /// `a = b` (`<>` is `Not(Eq)`).
    Eq(Box<Expr>, Box<Expr>),
    /// `a > b`, `a >= b`, `a < b`, `a <= b`.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `a IS NULL` (`IS NOT NULL` is `Not(IsNull)`).
    IsNull(Box<Expr>),
    /// `a [NOT] IN ('x', ...)`.
    In(Box<Expr>, Vec<String>, bool),
    /// `a [NOT] CONTAINS|STARTSWITH|ENDSWITH 's'`.
    Text(TextOp, Box<Expr>, String, bool),
}

/// An ordering comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

/// A string test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    /// `CONTAINS`.
    Contains,
    /// `STARTSWITH`.
    StartsWith,
    /// `ENDSWITH`.
    EndsWith,
}

/// Why an expression does not compile: what was found where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the expression.
    pub at: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQL92 expression: {} at position {}", self.reason, self.at)
    }
}

impl std::error::Error for ParseError {}

/// Longest expression compiled (Apache's are a line or two).
pub const MAX_EXPRESSION_BYTES: usize = 16 * 1024;
/// Deepest nesting accepted (parentheses and unary operators), so a hostile expression cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Long(i64),
    Double(f64),
    Sym(&'static str),
    End,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, reason: &str| ParseError { at, reason: reason.to_string() };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = src[i + 2..].find("*/").ok_or_else(|| err(i, "unterminated comment"))?;
            i += 2 + end + 2;
        } else if c == b'\'' {
            let start = i;
            let mut s = String::new();
            i += 1;
            loop {
                match src[i..].find('\'') {
                    None => return Err(err(start, "unterminated string literal")),
                    Some(k) => {
                        s.push_str(&src[i..i + k]);
                        i += k + 1;
                        if b.get(i) == Some(&b'\'') {
                            s.push('\'');
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            out.push((Tok::Str(s), start));
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let mut float = false;
            if i < b.len() && b[i] == b'.' {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let save = i;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                if i < b.len() && b[i].is_ascii_digit() {
                    float = true;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            let text = &src[start..i];
            if float {
                let v = text.parse::<f64>().map_err(|_| err(start, "bad decimal literal"))?;
                out.push((Tok::Double(v), start));
            } else {
                if text.len() > 1 && text.starts_with('0') {
                    return Err(err(start, "integer literals do not start with 0"));
                }
                if i < b.len() && (b[i] == b'L' || b[i] == b'l') {
                    i += 1;
                }
                let v = text.parse::<i64>().map_err(|_| err(start, "integer literal out of range"))?;
                out.push((Tok::Long(v), start));
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            out.push((Tok::Ident(src[start..i].to_string()), start));
        } else {
            let two = src.get(i..i + 2).unwrap_or("");
            let sym = match two {
                ">=" => Some(">="),
                "<=" => Some("<="),
                "<>" => Some("<>"),
                _ => None,
            };
            if let Some(s) = sym {
                out.push((Tok::Sym(s), i));
                i += 2;
                continue;
            }
            let one = match c {
                b'=' => "=",
                b'>' => ">",
                b'<' => "<",
                b'(' => "(",
                b')' => ")",
                b',' => ",",
                b'+' => "+",
                b'-' => "-",
                _ => return Err(err(i, &format!("unexpected character '{}'", src[i..].chars().next().unwrap_or('?')))),
            };
            out.push((Tok::Sym(one), i));
            i += 1;
        }
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn at(&self) -> usize {
        self.toks[self.pos].1
    }
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { at: self.at(), reason: reason.into() })
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(x) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), ParseError> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            self.err(format!("expected '{s}'"))
        }
    }
    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("expression nested too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.and()?;
        while self.eat_keyword("OR") {
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.equality()?;
        while self.eat_keyword("AND") {
            l = Expr::And(Box::new(l), Box::new(self.equality()?));
        }
        Ok(l)
    }
    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.comparison()?;
        loop {
            if self.eat_sym("=") {
                l = Expr::Eq(Box::new(l), Box::new(self.comparison()?));
            } else if self.eat_sym("<>") {
                l = Expr::Not(Box::new(Expr::Eq(Box::new(l), Box::new(self.comparison()?))));
            } else if self.eat_keyword("IS") {
                let not = self.eat_keyword("NOT");
                if !self.eat_keyword("NULL") {
                    return self.err("expected NULL after IS");
                }
                let e = Expr::IsNull(Box::new(l));
                l = if not { Expr::Not(Box::new(e)) } else { e };
            } else {
                return Ok(l);
            }
        }
    }
    fn string_literal(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.pos += 1;
                Ok(s)
            }
            _ => self.err("expected a string literal"),
        }
    }
    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Sym(">") => Some(CmpOp::Gt),
                Tok::Sym(">=") => Some(CmpOp::Ge),
                Tok::Sym("<") => Some(CmpOp::Lt),
                Tok::Sym("<=") => Some(CmpOp::Le),
                _ => None,
            };
            if let Some(op) = op {
                self.pos += 1;
                l = Expr::Cmp(op, Box::new(l), Box::new(self.unary()?));
                continue;
            }
            let save = self.pos;
            let not = self.eat_keyword("NOT");
            if self.eat_keyword("BETWEEN") {
                let lo_at = self.at();
                let lo = self.unary()?;
                if !self.eat_keyword("AND") {
                    return self.err("expected AND in BETWEEN");
                }
                let hi = self.unary()?;
                if let (Expr::Lit(a), Expr::Lit(b)) = (&lo, &hi) {
                    if *a == Value::Null || *b == Value::Null {
                        return Err(ParseError { at: lo_at, reason: "BETWEEN bounds must not be NULL".into() });
                    }
                    if compare(a, b).is_ok_and(|o| o == Some(std::cmp::Ordering::Greater)) {
                        return Err(ParseError {
                            at: lo_at,
                            reason: "BETWEEN's lower bound is above its upper bound".into(),
                        });
                    }
                }
                let ge = Expr::Cmp(CmpOp::Ge, Box::new(l.clone()), Box::new(lo));
                let le = Expr::Cmp(CmpOp::Le, Box::new(l), Box::new(hi));
                let both = Expr::And(Box::new(ge), Box::new(le));
                l = if not { Expr::Not(Box::new(both)) } else { both };
                continue;
            }
            if self.eat_keyword("IN") {
                self.expect_sym("(")?;
                let mut items = vec![self.string_literal()?];
                while self.eat_sym(",") {
                    items.push(self.string_literal()?);
                }
                self.expect_sym(")")?;
                l = Expr::In(Box::new(l), items, not);
                continue;
            }
            let text = if self.eat_keyword("CONTAINS") {
                Some(TextOp::Contains)
            } else if self.eat_keyword("STARTSWITH") {
                Some(TextOp::StartsWith)
            } else if self.eat_keyword("ENDSWITH") {
                Some(TextOp::EndsWith)
            } else {
                None
            };
            if let Some(op) = text {
                let s = self.string_literal()?;
                l = Expr::Text(op, Box::new(l), s, not);
                continue;
            }
            if not {
                // `NOT` here belongs to no comparison: let the caller see it.
                self.pos = save;
                return self.err("expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT");
            }
            return Ok(l);
        }
    }
    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.deeper()?;
        let e = if self.eat_sym("+") {
            self.unary()?
        } else if self.eat_sym("-") {
            match self.unary()? {
                Expr::Lit(Value::Long(v)) => Expr::Lit(Value::Long(v.wrapping_neg())),
                Expr::Lit(Value::Double(v)) => Expr::Lit(Value::Double(-v)),
                e => Expr::Neg(Box::new(e)),
            }
        } else if self.eat_keyword("NOT") {
            Expr::Not(Box::new(self.unary()?))
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(e)
    }
    fn primary(&mut self) -> Result<Expr, ParseError> {
        let tok = self.peek().clone();
        match tok {
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::Lit(Value::Str(s)))
            }
            Tok::Long(v) => {
                self.pos += 1;
                Ok(Expr::Lit(Value::Long(v)))
            }
            Tok::Double(v) => {
                self.pos += 1;
                Ok(Expr::Lit(Value::Double(v)))
            }
            Tok::Sym("(") => {
                self.pos += 1;
                self.deeper()?;
                let e = self.or()?;
                self.depth -= 1;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Ident(id) => {
                const RESERVED: &[&str] =
                    &["AND", "OR", "NOT", "IS", "IN", "BETWEEN", "CONTAINS", "STARTSWITH", "ENDSWITH"];
                self.pos += 1;
                if id.eq_ignore_ascii_case("TRUE") {
                    Ok(Expr::Lit(Value::Bool(true)))
                } else if id.eq_ignore_ascii_case("FALSE") {
                    Ok(Expr::Lit(Value::Bool(false)))
                } else if id.eq_ignore_ascii_case("NULL") {
                    Ok(Expr::Lit(Value::Null))
                } else if RESERVED.iter().any(|r| id.eq_ignore_ascii_case(r)) {
                    self.pos -= 1;
                    self.err(format!("unexpected keyword {id}"))
                } else {
                    Ok(Expr::Prop(id))
                }
            }
            Tok::End => self.err("unexpected end of expression"),
            Tok::Sym(s) => self.err(format!("unexpected '{s}'")),
        }
    }
}

/// Compiles a selector; the error says what is wrong and where.
pub fn compile(src: &str) -> Result<Expr, ParseError> {
    if src.len() > MAX_EXPRESSION_BYTES {
        return Err(ParseError { at: 0, reason: format!("longer than {MAX_EXPRESSION_BYTES} bytes") });
    }
    if src.trim().is_empty() {
        return Err(ParseError { at: 0, reason: "empty expression".into() });
    }
    let mut p = Parser { toks: lex(src)?, pos: 0, depth: 0 };
    let e = p.or()?;
    if *p.peek() != Tok::End {
        return p.err("unexpected input after the expression");
    }
    Ok(e)
}

/// An evaluation error (Apache: an exception, so the message does not match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

fn number(v: &Value) -> Result<Option<f64>, EvalError> {
    Ok(match v {
        Value::Long(x) => Some(*x as f64),
        Value::Double(x) => Some(*x),
        Value::Str(s) => Some(s.trim().parse::<f64>().map_err(|_| EvalError(format!("'{s}' is not a number")))?),
        Value::Null => None,
        Value::Bool(_) => return Err(EvalError("a boolean is not a number".into())),
    })
}

/// Orders two values as Apache's `ComparisonExpression.compare` does (None: a side is null).
fn compare(a: &Value, b: &Value) -> Result<Option<std::cmp::Ordering>, EvalError> {
    use Value::*;
    Ok(match (a, b) {
        (Null, _) | (_, Null) => None,
        (Long(x), Long(y)) => Some(x.cmp(y)),
        (Str(x), Str(y)) => {
            // Two strings compare as numbers (Apache parses both as Double).
            let (x, y) = (number(&Str(x.clone()))?, number(&Str(y.clone()))?);
            x.zip(y).and_then(|(x, y)| x.partial_cmp(&y))
        }
        (Bool(_), _) | (_, Bool(_)) => return Err(EvalError("booleans cannot be ordered".into())),
        _ => {
            let (x, y) = (number(a)?, number(b)?);
            x.zip(y).and_then(|(x, y)| x.partial_cmp(&y))
        }
    })
}

fn equal(a: &Value, b: &Value) -> Result<Option<bool>, EvalError> {
    use Value::*;
    Ok(match (a, b) {
        (Null, _) | (_, Null) => None,
        (Str(x), Str(y)) => Some(x == y),
        (Bool(x), Bool(y)) => Some(x == y),
        (Bool(x), Str(s)) | (Str(s), Bool(x)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(*x),
            "false" => Some(!*x),
            _ => return Err(EvalError(format!("'{s}' is not a boolean"))),
        },
        (Bool(_), _) | (_, Bool(_)) => Some(false),
        (Long(x), Long(y)) => Some(x == y),
        (Str(s), Long(y)) | (Long(y), Str(s)) => {
            Some(s.trim().parse::<i64>().map_err(|_| EvalError(format!("'{s}' is not an integer")))? == *y)
        }
        _ => compare(a, b)?.map(|o| o == std::cmp::Ordering::Equal),
    })
}

fn truth(v: Value) -> Result<Option<bool>, EvalError> {
    match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(EvalError(format!("{other:?} is not a boolean"))),
    }
}

fn from_truth(t: Option<bool>) -> Value {
    t.map(Value::Bool).unwrap_or(Value::Null)
}

impl Expr {
    /// Evaluates against a message's properties (`get` returns a property's value).
    pub fn eval<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> Result<Value, EvalError> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Prop(name) => get(name).map(|s| Value::Str(s.to_string())).unwrap_or(Value::Null),
            Expr::Or(a, b) => {
                let x = truth(a.eval(get)?)?;
                if x == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let y = truth(b.eval(get)?)?;
                from_truth(match (x, y) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                })
            }
            Expr::And(a, b) => {
                let x = truth(a.eval(get)?)?;
                if x == Some(false) {
                    return Ok(Value::Bool(false));
                }
                let y = truth(b.eval(get)?)?;
                from_truth(match (x, y) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                })
            }
            Expr::Not(a) => from_truth(truth(a.eval(get)?)?.map(|b| !b)),
            Expr::Neg(a) => match a.eval(get)? {
                Value::Long(v) => Value::Long(v.wrapping_neg()),
                Value::Double(v) => Value::Double(-v),
                Value::Null => Value::Null,
                Value::Str(s) => Value::Double(-number(&Value::Str(s))?.unwrap_or(0.0)),
                Value::Bool(_) => return Err(EvalError("cannot negate a boolean".into())),
            },
            Expr::Eq(a, b) => from_truth(equal(&a.eval(get)?, &b.eval(get)?)?),
            Expr::Cmp(op, a, b) => from_truth(compare(&a.eval(get)?, &b.eval(get)?)?.map(|o| match op {
                CmpOp::Gt => o.is_gt(),
                CmpOp::Ge => o.is_ge(),
                CmpOp::Lt => o.is_lt(),
                CmpOp::Le => o.is_le(),
            })),
            Expr::IsNull(a) => Value::Bool(a.eval(get)? == Value::Null),
            Expr::In(a, items, not) => match a.eval(get)? {
                Value::Str(s) => Value::Bool(items.contains(&s) != *not),
                _ => Value::Null,
            },
            Expr::Text(op, a, pat, not) => match a.eval(get)? {
                Value::Str(s) if !pat.is_empty() => {
                    let hit = match op {
                        TextOp::Contains => s.contains(pat.as_str()),
                        TextOp::StartsWith => s.starts_with(pat.as_str()),
                        TextOp::EndsWith => s.ends_with(pat.as_str()),
                    };
                    Value::Bool(hit != *not)
                }
                _ => Value::Bool(false),
            },
        })
    }

    /// True only when the expression evaluates to exactly TRUE (null and errors do not match).
    pub fn matches<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> bool {
        matches!(self.eval(get), Ok(Value::Bool(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(expr: &str, props: &[(&str, &str)]) -> bool {
        let e = compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        e.matches(&|k: &str| props.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
    }

    #[test]
    fn comparisons_and_logic() {
        let p = [("a", "3"), ("b", "hello"), ("TAGS", "TagA"), ("f", "2.5")];
        assert!(m("a > 2", &p));
        assert!(m("a >= 3 AND a <= 3", &p));
        assert!(!m("a < 3", &p));
        assert!(m("a = 3", &p));
        assert!(m("a <> 4", &p));
        assert!(m("b = 'hello'", &p));
        assert!(m("TAGS IN ('TagA', 'TagB')", &p));
        assert!(m("TAGS NOT IN ('TagC')", &p));
        assert!(m("a BETWEEN 1 AND 5", &p));
        assert!(m("a NOT BETWEEN 4 AND 5", &p));
        assert!(m("f > 2.4 and f < 2.6", &p));
        assert!(m("b CONTAINS 'ell' AND b STARTSWITH 'he' AND b ENDSWITH 'lo'", &p));
        assert!(m("b NOT CONTAINS 'xyz'", &p));
        assert!(m("(a = 1 OR a = 3) AND NOT (b = 'x')", &p));
        assert!(m("missing IS NULL AND a IS NOT NULL", &p));
        assert!(m("a > -1 and -a < 0", &p));
        assert!(m("1E1 > a", &p));
        assert!(m("b = 'it''s' OR TRUE", &p));
        assert!(m("a = 3 -- trailing comment", &p));
        assert!(m("/* leading */ a = 3", &p));
    }

    #[test]
    fn nulls_and_errors_do_not_match() {
        let p = [("a", "3"), ("s", "abc")];
        // Comparisons with a missing property are null; NOT null is null.
        assert!(!m("missing > 1", &p));
        assert!(!m("NOT (missing > 1)", &p));
        assert!(!m("missing = 'x'", &p));
        assert!(!m("missing IN ('x')", &p));
        assert!(!m("missing CONTAINS 'x'", &p));
        // Three-valued AND / OR.
        assert!(m("missing > 1 OR a = 3", &p));
        assert!(!m("missing > 1 AND a = 3", &p));
        // A string that is not a number, compared with a number: no match (an error in Apache).
        assert!(!m("s > 1", &p));
        assert!(!m("s = 1", &p));
        // Empty patterns never match.
        assert!(!m("s CONTAINS ''", &p));
    }

    #[test]
    fn malformed_expressions_are_refused_with_a_position() {
        for (bad, what) in [
            ("a >", "unexpected end"),
            ("a = 'x", "unterminated string"),
            ("a LIKE 'x%'", "unexpected input"),
            ("a IN (1, 2)", "string literal"),
            ("(a = 1", "expected ')'"),
            ("a BETWEEN 5 AND 1", "lower bound"),
            ("a BETWEEN NULL AND 1", "must not be NULL"),
            ("a # 1", "unexpected character"),
            ("", "empty"),
            ("AND a = 1", "unexpected keyword"),
            ("a NOT 1", "after NOT"),
            ("a = 01", "start with 0"),
        ] {
            let e = compile(bad).expect_err(bad);
            assert!(e.to_string().contains(what), "{bad}: {e}");
        }
        let deep = format!("{}a = 1{}", "(".repeat(1000), ")".repeat(1000));
        assert!(compile(&deep).unwrap_err().to_string().contains("too deeply"));
    }
}
