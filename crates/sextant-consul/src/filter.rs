//! Consul's `?filter=` expressions, evaluated on the JSON an endpoint
//! returns (so every field a client sees can be filtered on):
//!
//! ```text
//! expr     := term ("or" term)*
//! term     := factor ("and" factor)*
//! factor   := "not" factor | "(" expr ")" | match
//! match    := selector ("==" | "!=") value
//!           | selector ["not"] ("contains" | "matches") value
//!           | selector "is" ["not"] "empty"
//!           | value ["not"] "in" selector
//! selector := name ("." name)*          e.g. Service.Meta.version, Checks.Status
//! value    := "text" | `text` | bare-word
//! ```
//!
//! A selector that passes through a list (`Checks.Status`) matches when any
//! element matches; names match whatever their case.
//!
//! An expression may hold at most `MAX_OPERATORS` of `and`, `or`, `not` and
//! `(`: parsing, evaluating and dropping a filter recurse as deep as it
//! nests, and one query string of nested parentheses would otherwise
//! overflow a worker's stack and abort the whole server.

use regex::Regex;
use serde_json::Value;

/// The most `and`, `or`, `not` and `(` one filter may use; see the module doc.
pub const MAX_OPERATORS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Match(Match),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Equal(Vec<String>, String),
    Contains(Vec<String>, String),
    Matches(Vec<String>, RegexText),
    Empty(Vec<String>),
}

/// A compiled regular expression that compares by its source text.
#[derive(Debug, Clone)]
pub struct RegexText(Regex);

impl PartialEq for RegexText {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Eq,
    Ne,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '=' | '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err(format!("expected {c}= in filter"));
                }
                tokens.push(if c == '=' { Token::Eq } else { Token::Ne });
            }
            '"' | '`' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string in filter".into()),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("unterminated string in filter".into()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '=' | '!' | '"' | '`') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// `and`, `or`, `not` and `(` seen so far; bounds the filter's depth.
    operators: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.at + offset) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        if self.peek_word(0) == Some(word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Counts one more operator, refusing the filter past `MAX_OPERATORS`.
    fn operator(&mut self) -> Result<(), String> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(format!(
                "filter is too complex: more than {MAX_OPERATORS} and/or/not/( operators"
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Filter, String> {
        let mut left = self.term()?;
        while self.keyword("or") {
            self.operator()?;
            left = Filter::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, String> {
        let mut left = self.factor()?;
        while self.keyword("and") {
            self.operator()?;
            left = Filter::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Filter, String> {
        if self.keyword("not") {
            self.operator()?;
            return Ok(Filter::Not(Box::new(self.factor()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.operator()?;
            self.at += 1;
            let inner = self.expr()?;
            if self.next() != Some(Token::Close) {
                return Err("missing ) in filter".into());
            }
            return Ok(inner);
        }
        self.matcher()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => Ok(w),
            other => Err(format!("expected a value in filter, found {other:?}")),
        }
    }

    fn matcher(&mut self) -> Result<Filter, String> {
        // `value [not] in selector`: the second or third token is `in`.
        let negated_in = self.peek_word(1) == Some("not") && self.peek_word(2) == Some("in");
        if self.peek_word(1) == Some("in") || negated_in {
            let value = self.value()?;
            self.at += if negated_in { 2 } else { 1 };
            let m = Filter::Match(Match::Contains(self.selector()?, value));
            return Ok(if negated_in {
                Filter::Not(Box::new(m))
            } else {
                m
            });
        }
        let selector = self.selector()?;
        match self.next() {
            Some(Token::Eq) => Ok(Filter::Match(Match::Equal(selector, self.value()?))),
            Some(Token::Ne) => Ok(Filter::Not(Box::new(Filter::Match(Match::Equal(
                selector,
                self.value()?,
            ))))),
            Some(Token::Word(w)) => {
                let negated = w == "not";
                let op = if negated {
                    match self.next() {
                        Some(Token::Word(w)) => w,
                        other => return Err(format!("unexpected {other:?} after not")),
                    }
                } else {
                    w
                };
                let m = match op.as_str() {
                    "contains" => Match::Contains(selector, self.value()?),
                    "matches" => {
                        let pattern = self.value()?;
                        let regex = Regex::new(&pattern)
                            .map_err(|e| format!("invalid regular expression in filter: {e}"))?;
                        Match::Matches(selector, RegexText(regex))
                    }
                    "is" => {
                        let is_not = self.keyword("not");
                        if !self.keyword("empty") {
                            return Err("expected empty after is in filter".into());
                        }
                        let m = Filter::Match(Match::Empty(selector));
                        let m = if is_not { Filter::Not(Box::new(m)) } else { m };
                        return Ok(if negated { Filter::Not(Box::new(m)) } else { m });
                    }
                    other => return Err(format!("unknown operator {other:?} in filter")),
                };
                let m = Filter::Match(m);
                Ok(if negated { Filter::Not(Box::new(m)) } else { m })
            }
            other => Err(format!("expected an operator in filter, found {other:?}")),
        }
    }

    fn selector(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Word(w)) if !w.is_empty() => {
                let parts: Vec<String> = w.split('.').map(str::to_owned).collect();
                if parts.iter().any(String::is_empty) {
                    return Err(format!("invalid selector {w:?} in filter"));
                }
                Ok(parts)
            }
            other => Err(format!("expected a selector in filter, found {other:?}")),
        }
    }
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
            operators: 0,
        };
        let filter = parser.expr()?;
        if parser.at != parser.tokens.len() {
            return Err(format!(
                "unexpected {:?} in filter",
                parser.tokens[parser.at]
            ));
        }
        Ok(filter)
    }

    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(value) && b.matches(value),
            Filter::Or(a, b) => a.matches(value) || b.matches(value),
            Filter::Not(f) => !f.matches(value),
            Filter::Match(m) => m.matches(value),
        }
    }
}

impl Match {
    fn matches(&self, value: &Value) -> bool {
        match self {
            Match::Equal(selector, want) => select(value, selector).iter().any(|v| equals(v, want)),
            Match::Contains(selector, want) => select(value, selector).iter().any(|v| match v {
                Value::Array(items) => items.iter().any(|i| equals(i, want)),
                Value::String(s) => s.contains(want.as_str()),
                Value::Object(map) => map.contains_key(want),
                _ => false,
            }),
            Match::Matches(selector, RegexText(regex)) => select(value, selector)
                .iter()
                .any(|v| v.as_str().is_some_and(|s| regex.is_match(s))),
            Match::Empty(selector) => select(value, selector).iter().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }),
        }
    }
}

/// Every value the selector reaches; lists along the way fan out.
fn select<'a>(value: &'a Value, path: &[String]) -> Vec<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return vec![value];
    };
    match value {
        Value::Object(map) => {
            let field = map.get(first).or_else(|| {
                map.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(first))
                    .map(|(_, v)| v)
            });
            field.map(|v| select(v, rest)).unwrap_or_default()
        }
        Value::Array(items) => items.iter().flat_map(|i| select(i, path)).collect(),
        _ => Vec::new(),
    }
}

fn equals(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s == want,
        Value::Number(n) => want.parse::<f64>().is_ok_and(|w| n.as_f64() == Some(w)),
        Value::Bool(b) => want.parse::<bool>().is_ok_and(|w| w == *b),
        Value::Array(items) => items.iter().any(|i| equals(i, want)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "Node": {"Node": "n1", "Meta": {}},
            "Service": {"Service": "web", "Tags": ["primary", "v2"], "Meta": {"version": "2", "env": "prod"}, "Port": 8080},
            "Checks": [{"Status": "passing", "CheckID": "serfHealth"}, {"Status": "warning", "CheckID": "service:web"}],
        })
    }

    fn eval(text: &str) -> bool {
        Filter::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .matches(&entry())
    }

    #[test]
    fn the_required_forms() {
        assert!(eval(r#"Service.Tags contains "primary""#));
        assert!(!eval(r#"Service.Tags contains "secondary""#));
        assert!(eval(r#"Service.Meta.version == "2""#));
        assert!(eval("Service.Meta.version == 2"));
        assert!(!eval(r#"Service.Meta.version == "3""#));
        assert!(eval(r#"Checks.Status == warning"#));
        assert!(!eval(r#"Checks.Status == critical"#));
    }

    #[test]
    fn boolean_combinations_and_precedence() {
        assert!(eval(
            r#"Service.Meta.env == prod and Service.Tags contains v2"#
        ));
        assert!(!eval(
            r#"Service.Meta.env == dev and Service.Tags contains v2"#
        ));
        assert!(eval(
            r#"Service.Meta.env == dev or Service.Tags contains v2"#
        ));
        assert!(eval(r#"not Checks.Status == critical"#));
        // and binds tighter than or.
        assert!(eval(
            r#"Service.Port == 1 and Node.Node == x or Service.Service == web"#
        ));
        assert!(!eval(
            r#"Service.Port == 1 and (Node.Node == x or Service.Service == web)"#
        ));
    }

    #[test]
    fn the_other_operators() {
        assert!(eval(r#"Service.Service != db"#));
        assert!(eval(r#""primary" in Service.Tags"#));
        assert!(eval(r#""canary" not in Service.Tags"#));
        assert!(eval(r#"Service.Tags not contains canary"#));
        assert!(eval(r#"Node.Meta is empty"#));
        assert!(eval(r#"Service.Meta is not empty"#));
        assert!(eval(r#"Service.Service matches "^w.b$""#));
        assert!(eval(r#"service.meta.ENV == prod"#));
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in [
            "Service.Tags contains",
            "(Service.Port == 1",
            "Service.Port === 1",
            "Service.Port ~ 1",
            "\"open",
            ".a == 1",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad} parsed");
        }
    }

    /// Regression: 5000 nested parentheses in one `?filter=` overflowed a
    /// worker's stack and aborted the server. Deep nesting, long `not`
    /// chains and long `or` chains (a left-deep tree) are refused instead,
    /// on a thread with a worker's 2 MiB stack.
    #[test]
    fn deeply_nested_filters_are_refused_not_overflowed() {
        let deep = [
            format!(
                "{}Node.Node == n1{}",
                "(".repeat(50_000),
                ")".repeat(50_000)
            ),
            format!("{}Node.Node == n1", "not ".repeat(50_000)),
            vec!["Node.Node == n1"; 50_000].join(" or "),
        ];
        let outcome = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                deep.iter()
                    .map(|f| Filter::parse(f).is_err())
                    .collect::<Vec<_>>()
            })
            .expect("spawn")
            .join()
            .expect("parsing a deep filter panicked");
        assert_eq!(outcome, [true, true, true]);
        let at_limit = vec!["Service.Service == web"; MAX_OPERATORS + 1].join(" or ");
        assert!(Filter::parse(&at_limit).expect("parses").matches(&entry()));
    }
}
