//! A recursive-descent parser from the text form to [`Rule`]. The grammar is in README.md.

use crate::condition::{Comparison, EventFilter, Literal, Test};
use crate::error::ParseError;
use crate::event::EventType;
use crate::lexer::{tokenize, Token, TokenKind};
use crate::rule::{CompareOp, CountCheck, EventCondition, Rule, RuleError, MAX_COUNT, MAX_DEPTH};

/// Words that begin a condition: after `and` in a `where` list they end the list.
const CONDITION_STARTS: [&str; 6] = ["event", "trait", "computed", "consent", "has", "not"];
const A_CONDITION: &str = "a condition (event, trait, computed, consent, has, not or \"(\")";

/// Parses the text form of a rule.
pub fn parse(text: &str) -> Result<Rule, ParseError> {
    let mut parser = Parser {
        src: text,
        tokens: tokenize(text)?,
        pos: 0,
        depth: 0,
    };
    let rule = parser.or()?;
    if parser.peek().kind != TokenKind::End {
        return Err(parser.expected("\"and\", \"or\" or the end of the rule"));
    }
    // Conditions are checked as they are read; what is left is depth, which parentheses and
    // `not` alone do not measure (an `or` in an `and` is one level more).
    rule.validate()
        .map_err(|e: RuleError| ParseError::at(text, 0, e.to_string()))?;
    Ok(rule)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_after(&self) -> &Token {
        &self.tokens[(self.pos + 1).min(self.tokens.len() - 1)]
    }

    /// Moves past the current token, staying on the end token once there.
    fn bump(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != TokenKind::End {
            self.pos += 1;
        }
        token
    }

    fn text(&self, token: &Token) -> &str {
        &self.src[token.start..token.end]
    }

    fn is_word(&self, token: &Token, word: &str) -> bool {
        token.kind == TokenKind::Word && self.text(token) == word
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(self.peek(), word);
        if found {
            self.pos += 1;
        }
        found
    }

    /// "expected WHAT after PREVIOUS", placed at the current token.
    fn expected(&self, what: &str) -> ParseError {
        let message = match self.pos.checked_sub(1) {
            Some(previous) => {
                let previous = &self.tokens[previous];
                let text = self.text(previous);
                match previous.kind {
                    TokenKind::String(_) => format!("expected {what} after {text}"),
                    _ => format!("expected {what} after \"{text}\""),
                }
            }
            None => format!("expected {what}"),
        };
        ParseError::at(self.src, self.peek().start, message)
    }

    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth == MAX_DEPTH {
            return Err(ParseError::at(
                self.src,
                self.peek().start,
                format!("rules nest more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Rule, ParseError> {
        let mut rules = vec![self.and()?];
        while self.eat_word("or") {
            rules.push(self.and()?);
        }
        Ok(if rules.len() == 1 {
            rules.remove(0)
        } else {
            Rule::Or(rules)
        })
    }

    fn and(&mut self) -> Result<Rule, ParseError> {
        let mut rules = vec![self.unary()?];
        while self.eat_word("and") {
            rules.push(self.unary()?);
        }
        Ok(if rules.len() == 1 {
            rules.remove(0)
        } else {
            Rule::And(rules)
        })
    }

    fn unary(&mut self) -> Result<Rule, ParseError> {
        if self.eat_word("not") {
            return self.nested(|p| Ok(Rule::Not(Box::new(p.unary()?))));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Rule, ParseError> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Open => {
                self.bump();
                let rule = self.nested(Self::or)?;
                if self.peek().kind != TokenKind::Close {
                    return Err(self.expected("\"and\", \"or\" or \")\""));
                }
                self.bump();
                Ok(rule)
            }
            TokenKind::Word => {
                let keyword = self.text(&token).to_owned();
                let rule = match keyword.as_str() {
                    "event" => {
                        self.bump();
                        Rule::Event(self.event()?)
                    }
                    "trait" => {
                        self.bump();
                        Rule::Trait(self.comparison("a trait name")?)
                    }
                    "computed" => {
                        self.bump();
                        Rule::Computed(self.comparison("a computed trait name")?)
                    }
                    "consent" => {
                        self.bump();
                        Rule::Consent(self.name("a consent purpose")?)
                    }
                    "has" => {
                        self.bump();
                        Rule::Has(self.name("an identifier type such as email")?)
                    }
                    _ => return Err(self.expected(A_CONDITION)),
                };
                Ok(rule)
            }
            _ => Err(self.expected(A_CONDITION)),
        }
    }

    /// A bare word or a quoted string. Keywords are accepted here because a name's place is
    /// never ambiguous; the printer quotes them anyway.
    fn name(&mut self, what: &str) -> Result<String, ParseError> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Word => {
                self.bump();
                Ok(self.text(&token).to_owned())
            }
            TokenKind::String(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn comparison(&mut self, what: &str) -> Result<Comparison, ParseError> {
        let name = self.name(what)?;
        let token = self.peek().clone();
        let test = match (&token.kind, self.text(&token)) {
            (TokenKind::Word, "exists") => {
                self.bump();
                Test::Exists
            }
            (TokenKind::Word, "contains") => {
                self.bump();
                Test::Contains(self.literal()?)
            }
            (&TokenKind::Operator(op), _) => {
                self.bump();
                let literal_at = self.peek().start;
                let literal = self.literal()?;
                let ordered = !matches!(op, CompareOp::Eq | CompareOp::Ne);
                if ordered && matches!(literal, Literal::Bool(_)) {
                    let message =
                        format!("expected a number or a string after \"{}\"", op.as_str());
                    return Err(ParseError::at(self.src, literal_at, message));
                }
                match op {
                    CompareOp::Eq => Test::Eq(literal),
                    CompareOp::Ne => Test::Ne(literal),
                    CompareOp::Gt => Test::Gt(literal),
                    CompareOp::Ge => Test::Ge(literal),
                    CompareOp::Lt => Test::Lt(literal),
                    CompareOp::Le => Test::Le(literal),
                }
            }
            _ => return Err(self.expected("an operator (=, !=, >, >=, <, <=, contains or exists)")),
        };
        Ok(Comparison { name, test })
    }

    fn literal(&mut self) -> Result<Literal, ParseError> {
        let token = self.peek().clone();
        let literal = match (&token.kind, self.text(&token)) {
            (TokenKind::String(s), _) => Literal::String(s.clone()),
            (TokenKind::Number(n), _) => Literal::Number(*n),
            (TokenKind::Word, "true") => Literal::Bool(true),
            (TokenKind::Word, "false") => Literal::Bool(false),
            _ => return Err(self.expected("a value (a string, a number, true or false)")),
        };
        self.bump();
        Ok(literal)
    }

    fn event(&mut self) -> Result<EventCondition, ParseError> {
        let mut filter = EventFilter::default();
        if self.peek().kind == TokenKind::Word {
            filter.event_type = EventType::parse(self.text(self.peek()));
            if filter.event_type.is_some() {
                self.bump();
            }
        }
        if let TokenKind::String(name) = &self.peek().kind {
            filter.name = Some(name.clone());
            self.bump();
        }
        if self.eat_word("where") {
            loop {
                filter.conditions.push(self.comparison("a property name")?);
                if !(self.is_word(self.peek(), "and") && self.and_continues_where()) {
                    break;
                }
                self.bump();
            }
        }
        let counted = self.eat_word("count");
        let count = if counted {
            self.count()?
        } else {
            CountCheck::default()
        };
        let within = if self.eat_word("within") {
            match self.peek().kind {
                TokenKind::Span(span) => {
                    self.bump();
                    Some(span)
                }
                _ => return Err(self.expected("a duration like 30d, 12h, 15m or 45s")),
            }
        } else {
            None
        };
        if self.misplaced_after_event() {
            // Say which clauses may still follow, in their order.
            let passed = [!filter.conditions.is_empty(), counted, within.is_some()];
            let open = passed.iter().rposition(|&p| p).map_or(0, |i| i + 1);
            let clauses = ["\"where\", ", "\"count\", ", "\"within\", "][open..].concat();
            return Err(self.expected(&format!("{clauses}\"and\" or \"or\"")));
        }
        Ok(EventCondition {
            filter,
            count,
            within,
        })
    }

    /// A token that cannot follow an event condition, such as a misspelt clause.
    fn misplaced_after_event(&self) -> bool {
        match self.peek().kind {
            TokenKind::Word => !matches!(self.text(self.peek()), "and" | "or"),
            TokenKind::String(_)
            | TokenKind::Number(_)
            | TokenKind::Span(_)
            | TokenKind::Operator(_) => true,
            TokenKind::Open | TokenKind::Close | TokenKind::End => false,
        }
    }

    /// After `and` in a `where` list: another property condition, unless a condition starts.
    fn and_continues_where(&self) -> bool {
        let next = self.peek_after();
        match next.kind {
            TokenKind::String(_) => true,
            TokenKind::Word => !CONDITION_STARTS.contains(&self.text(next)),
            _ => false,
        }
    }

    fn count(&mut self) -> Result<CountCheck, ParseError> {
        let TokenKind::Operator(op) = self.peek().kind else {
            return Err(self.expected("a comparison (=, !=, >, >=, <, <=)"));
        };
        self.bump();
        let token = self.peek().clone();
        let TokenKind::Number(n) = token.kind else {
            return Err(self.expected("a number"));
        };
        if n.fract() != 0.0 || !(0.0..=f64::from(MAX_COUNT)).contains(&n) {
            let message = format!("expected a whole number from 0 to {MAX_COUNT}");
            return Err(ParseError::at(self.src, token.start, message));
        }
        self.bump();
        Ok(CountCheck {
            op,
            value: n as u32,
        })
    }
}
