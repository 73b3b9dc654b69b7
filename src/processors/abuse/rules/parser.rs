//! Typed recursive-descent parser of the `when` expression language.
//!
//! Owns: precedence (`or` < `and` < `not` < comparison < `+ -` < `* /` <
//! unary `-`), type checking (conditions against numbers), feature names,
//! windows and list names, and collecting every name and type problem.
//! Never: evaluates an expression or reads a list's contents (it only knows
//! the list names).

use super::ast::{ArithOp, CompareOp, Expr, Feature, FeatureKind, NumExpr, DERIVED_LIST, DERIVED_LIST_NAME};
use super::diagnostics::{suggestion, ExprProblem};
use super::lexer::{describe, lex, Token, TokenKind};

/// Shortest window a windowed feature may use.
const MIN_WINDOW_MS: i64 = 1_000;
/// Longest window: the engine keeps per-subject event state this long at most.
const MAX_WINDOW_MS: i64 = 30 * DAY_MS;
const DAY_MS: i64 = 86_400_000;
/// Longest `when`, in bytes. Expressions are trees walked recursively
/// (parsed, evaluated, rendered, dropped), so their size is bounded: rules
/// are parsed on threads with small stacks (the API's blocking pool, the
/// writer replaying a `RulesLoaded` record).
pub(super) const MAX_WHEN_BYTES: usize = 4096;
/// Deepest nesting of `(`, `not` and unary `-`: each level is a recursion
/// of the parser: a thousand `(` overflowed a 2 MiB stack (debug build).
pub(super) const MAX_NESTING: usize = 32;
/// A parsed sub-expression of either type, with the column it starts at.
enum Typed {
    Bool(Expr),
    Num(NumExpr),
}

struct Node {
    typed: Typed,
    column: usize,
}

/// Stand-ins that let parsing continue after a type or name problem, so
/// later problems are found too. They never reach a [`RuleSet`](super::RuleSet).
fn placeholder_bool() -> Expr {
    Expr::Compare { op: CompareOp::Eq, left: NumExpr::Number(0.0), right: NumExpr::Number(0.0) }
}

/// One argument inside `feature[...]`.
enum WindowArg {
    Name(String),
    Duration { seconds: f64, text: String },
    Other(String),
}

struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    list_names: &'a [String],
    /// Problems that do not stop parsing: names, windows, types.
    problems: Vec<ExprProblem>,
    /// Current nesting of `(`, `not` and unary `-` (at most [`MAX_NESTING`]).
    depth: usize,
}

/// Parses and type-checks one `when` expression. Returns every problem
/// found (a syntax error stops parsing; name and type problems do not).
pub(super) fn parse_expression(text: &str, list_names: &[String]) -> Result<Expr, Vec<ExprProblem>> {
    if text.trim().is_empty() {
        return Err(vec![(1, "the condition is empty".to_string())]);
    }
    if text.len() > MAX_WHEN_BYTES {
        return Err(vec![(1, format!("the condition is longer than {MAX_WHEN_BYTES} bytes"))]);
    }
    let tokens = lex(text).map_err(|problem| vec![problem])?;
    let mut parser = Parser { tokens, position: 0, list_names, problems: Vec::new(), depth: 0 };
    let outcome = parser.parse_or().and_then(|node| {
        let next = parser.peek().clone();
        if next.kind == TokenKind::End {
            Ok(node)
        } else {
            Err((
                next.column,
                format!("expected `and`, `or` or the end of the condition, found {}", describe(&next.kind)),
            ))
        }
    });
    match outcome {
        Ok(node) => {
            let expr = match node.typed {
                Typed::Bool(expr) => Some(expr),
                Typed::Num(_) => {
                    parser.problems.push((
                        node.column,
                        "the condition is a number, not true/false (compare it, e.g. `messages_sent[1m] > 10`)"
                            .to_string(),
                    ));
                    None
                }
            };
            match expr {
                Some(expr) if parser.problems.is_empty() => Ok(expr),
                _ => Err(parser.problems),
            }
        }
        Err(syntax_problem) => {
            parser.problems.push(syntax_problem);
            Err(parser.problems)
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `lex` always ends the tokens with `End`, and `advance` never moves past it.
        &self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    fn expect_bool(&mut self, node: Node, what: &str) -> Expr {
        match node.typed {
            Typed::Bool(expr) => expr,
            Typed::Num(_) => {
                self.problems.push((
                    node.column,
                    format!("{what} must be a condition (true/false), found a number (did you forget a comparison?)"),
                ));
                placeholder_bool()
            }
        }
    }

    fn expect_num(&mut self, node: Node, what: &str) -> NumExpr {
        match node.typed {
            Typed::Num(expr) => expr,
            Typed::Bool(_) => {
                self.problems.push((node.column, format!("{what} must be a number, found a condition (true/false)")));
                NumExpr::Number(0.0)
            }
        }
    }

    /// Runs `parse` one nesting level deeper, refusing past [`MAX_NESTING`].
    fn nested(
        &mut self,
        column: usize,
        parse: fn(&mut Self) -> Result<Node, ExprProblem>,
    ) -> Result<Node, ExprProblem> {
        if self.depth >= MAX_NESTING {
            return Err((column, format!("`(`, `not` and unary `-` nest at most {MAX_NESTING} deep")));
        }
        self.depth += 1;
        let node = parse(self);
        self.depth -= 1;
        node
    }

    fn parse_or(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_and()?;
        while self.peek().kind == TokenKind::Or {
            self.advance();
            let right = self.parse_and()?;
            let column = left.column;
            let left_expr = self.expect_bool(left, "the left side of `or`");
            let right_expr = self.expect_bool(right, "the right side of `or`");
            left = Node { typed: Typed::Bool(Expr::Or(Box::new(left_expr), Box::new(right_expr))), column };
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_not()?;
        while self.peek().kind == TokenKind::And {
            self.advance();
            let right = self.parse_not()?;
            let column = left.column;
            let left_expr = self.expect_bool(left, "the left side of `and`");
            let right_expr = self.expect_bool(right, "the right side of `and`");
            left = Node { typed: Typed::Bool(Expr::And(Box::new(left_expr), Box::new(right_expr))), column };
        }
        Ok(left)
    }

    fn parse_not(&mut self) -> Result<Node, ExprProblem> {
        if self.peek().kind == TokenKind::Not {
            let column = self.advance().column;
            let operand = self.nested(column, Self::parse_not)?;
            let inner = self.expect_bool(operand, "the operand of `not`");
            return Ok(Node { typed: Typed::Bool(Expr::Not(Box::new(inner))), column });
        }
        self.parse_comparison()
    }

    fn parse_comparison(&mut self) -> Result<Node, ExprProblem> {
        let left = self.parse_additive()?;
        let TokenKind::Compare(op) = self.peek().kind else {
            return Ok(left);
        };
        self.advance();
        let right = self.parse_additive()?;
        if let TokenKind::Compare(second) = self.peek().kind {
            return Err((
                self.peek().column,
                format!(
                    "comparisons cannot be chained (`{}` after `{}`); join them with `and`",
                    second.as_str(),
                    op.as_str()
                ),
            ));
        }
        let column = left.column;
        let what_left = format!("the left side of `{}`", op.as_str());
        let what_right = format!("the right side of `{}`", op.as_str());
        let left_expr = self.expect_num(left, &what_left);
        let right_expr = self.expect_num(right, &what_right);
        Ok(Node { typed: Typed::Bool(Expr::Compare { op, left: left_expr, right: right_expr }), column })
    }

    fn parse_additive(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_multiplicative()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => ArithOp::Add,
                TokenKind::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.parse_multiplicative()?;
            left = self.arith(op, left, right);
        }
    }

    fn parse_multiplicative(&mut self) -> Result<Node, ExprProblem> {
        let mut left = self.parse_unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => ArithOp::Mul,
                TokenKind::Slash => ArithOp::Div,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.parse_unary()?;
            left = self.arith(op, left, right);
        }
    }

    fn arith(&mut self, op: ArithOp, left: Node, right: Node) -> Node {
        let column = left.column;
        let left_expr = self.expect_num(left, &format!("the left side of `{}`", op.as_str()));
        let right_expr = self.expect_num(right, &format!("the right side of `{}`", op.as_str()));
        Node {
            typed: Typed::Num(NumExpr::Arith { op, left: Box::new(left_expr), right: Box::new(right_expr) }),
            column,
        }
    }

    fn parse_unary(&mut self) -> Result<Node, ExprProblem> {
        if self.peek().kind == TokenKind::Minus {
            let column = self.advance().column;
            let operand = self.nested(column, Self::parse_unary)?;
            let inner = self.expect_num(operand, "the operand of unary `-`");
            return Ok(Node { typed: Typed::Num(NumExpr::Neg(Box::new(inner))), column });
        }
        self.parse_atom()
    }

    fn parse_atom(&mut self) -> Result<Node, ExprProblem> {
        let token = self.advance();
        let column = token.column;
        match token.kind {
            TokenKind::Number(value) => Ok(Node { typed: Typed::Num(NumExpr::Number(value)), column }),
            TokenKind::Duration(seconds, _) => Ok(Node { typed: Typed::Num(NumExpr::Number(seconds)), column }),
            TokenKind::LParen => {
                let inner = self.nested(column, Self::parse_or)?;
                let closing = self.advance();
                if closing.kind != TokenKind::RParen {
                    return Err((
                        closing.column,
                        format!("expected `)` to close the `(` at column {column}, found {}", describe(&closing.kind)),
                    ));
                }
                Ok(Node { typed: inner.typed, column })
            }
            TokenKind::Ident(name) => self.parse_feature(name, column),
            other => {
                Err((column, format!("expected a number, a duration, a feature or `(`, found {}", describe(&other))))
            }
        }
    }

    /// `name`, `name[WINDOW]` or `list_links[LIST, WINDOW]`.
    fn parse_feature(&mut self, name: String, column: usize) -> Result<Node, ExprProblem> {
        let args = if self.peek().kind == TokenKind::LBracket {
            let open = self.advance().column;
            Some((open, self.parse_window_args(open)?))
        } else {
            None
        };
        let unknown = Node { typed: Typed::Num(NumExpr::Number(0.0)), column };
        let Some(kind) = FeatureKind::parse(&name) else {
            let hint = if self.list_names.contains(&name) {
                format!(" (`{name}` is a list: use `list_links[{name}, 1h]`)")
            } else {
                match suggestion(&name, FeatureKind::ALL.iter().map(|kind| kind.as_str())) {
                    Some(close) => format!(" (did you mean `{close}`?)"),
                    None => String::new(),
                }
            };
            self.problems.push((column, format!("unknown feature `{name}`{hint}")));
            return Ok(unknown);
        };
        let feature = match (kind, args) {
            (FeatureKind::AccountAge, None) => Some(Feature { kind, window_ms: 0, list: 0 }),
            (FeatureKind::AccountAge, Some((open, _))) => {
                self.problems
                    .push((open, "`account_age` takes no window (it is the account's age in seconds)".to_string()));
                None
            }
            (FeatureKind::ListLinks, None) => {
                self.problems.push((
                    column,
                    "`list_links` needs a list and a window, e.g. `list_links[phishing, 1h]`".to_string(),
                ));
                None
            }
            (FeatureKind::ListLinks, Some((open, args))) => match args.as_slice() {
                [(WindowArg::Name(list_name), list_column), (window, window_column)] => {
                    let list = self.resolve_list(list_name, *list_column);
                    let window_ms = self.window_ms(window, *window_column, kind);
                    match (list, window_ms) {
                        (Some(list), Some(window_ms)) => Some(Feature { kind, window_ms, list }),
                        _ => None,
                    }
                }
                _ => {
                    self.problems.push((
                        open,
                        "`list_links` takes a list name and a window, e.g. `list_links[phishing, 1h]`".to_string(),
                    ));
                    None
                }
            },
            (_, None) => {
                self.problems.push((column, format!("`{name}` needs a window, e.g. `{name}[15s]`")));
                None
            }
            (_, Some((open, args))) => match args.as_slice() {
                [(window, window_column)] => {
                    self.window_ms(window, *window_column, kind).map(|window_ms| Feature { kind, window_ms, list: 0 })
                }
                _ => {
                    self.problems.push((open, format!("`{name}` takes exactly one window, e.g. `{name}[15s]`")));
                    None
                }
            },
        };
        Ok(match feature {
            Some(feature) => Node { typed: Typed::Num(NumExpr::Feature(feature)), column },
            None => unknown,
        })
    }

    /// The comma-separated arguments after `[`, through the closing `]`.
    fn parse_window_args(&mut self, open: usize) -> Result<Vec<(WindowArg, usize)>, ExprProblem> {
        let mut args = Vec::new();
        loop {
            let token = self.advance();
            let arg = match token.kind {
                TokenKind::Ident(name) => WindowArg::Name(name),
                TokenKind::Duration(seconds, text) => WindowArg::Duration { seconds, text },
                TokenKind::RBracket if args.is_empty() => return Ok(args),
                TokenKind::End => {
                    return Err((token.column, format!("expected `]` to close the `[` at column {open}")));
                }
                other => WindowArg::Other(describe(&other)),
            };
            args.push((arg, token.column));
            let separator = self.advance();
            match separator.kind {
                TokenKind::Comma => continue,
                TokenKind::RBracket => return Ok(args),
                other => {
                    return Err((
                        separator.column,
                        format!("expected `,` or `]` to close the `[` at column {open}, found {}", describe(&other)),
                    ));
                }
            }
        }
    }

    fn resolve_list(&mut self, name: &str, column: usize) -> Option<u16> {
        if name == DERIVED_LIST_NAME {
            return Some(DERIVED_LIST);
        }
        if let Some(index) = self.list_names.iter().position(|list| list == name) {
            return u16::try_from(index).ok();
        }
        let hint = if self.list_names.is_empty() {
            " (no lists are defined; add one under [lists])".to_string()
        } else {
            match suggestion(name, self.list_names.iter().map(String::as_str)) {
                Some(close) => format!(" (did you mean `{close}`?)"),
                None => format!(
                    " (lists: {})",
                    self.list_names.iter().map(|list| format!("`{list}`")).collect::<Vec<_>>().join(", ")
                ),
            }
        };
        self.problems.push((column, format!("unknown list `{name}`{hint}")));
        None
    }

    fn bad_window(&mut self, column: usize, kind: FeatureKind, found: String) -> Option<i64> {
        self.problems.push((
            column,
            format!("the window of `{kind}` must be a duration such as `15s`, `10m`, `1h` or `7d`, found {found}"),
        ));
        None
    }

    fn window_ms(&mut self, arg: &WindowArg, column: usize, kind: FeatureKind) -> Option<i64> {
        let (seconds, text) = match arg {
            WindowArg::Duration { seconds, text } => (*seconds, text),
            WindowArg::Name(name) => return self.bad_window(column, kind, format!("`{name}`")),
            WindowArg::Other(description) => return self.bad_window(column, kind, description.clone()),
        };
        if seconds.fract() != 0.0 {
            self.problems.push((column, format!("window `{text}` must be a whole number of seconds")));
            return None;
        }
        let window_ms = seconds * 1000.0;
        if window_ms < MIN_WINDOW_MS as f64 {
            self.problems.push((column, format!("window `{text}` is shorter than the minimum of 1s")));
            return None;
        }
        if window_ms > MAX_WINDOW_MS as f64 {
            self.problems.push((column, format!("window `{text}` is longer than the maximum of 30d")));
            return None;
        }
        Some(window_ms as i64)
    }
}
