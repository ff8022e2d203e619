//! `WWW-Authenticate` challenges (RFC 7235 §2.1, RFC 6750 §3), e.g.
//! `Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"`.
//!
//! Owns parsing the header robustly: several challenges in one header,
//! quoted values holding commas, `=` or escaped quotes, stray spaces and
//! empty list items. Pure; runs in the `hutch` process.

/// One challenge: a lower-cased scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer`, `basic`, ... (lower case).
    pub scheme: String,
    /// Parameter names are lower-cased; values are unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lower case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every challenge in one header value; text that does not parse ends it.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut c = Cursor { s: header, pos: 0 };
    let mut out = Vec::new();
    loop {
        c.skip(|ch| ch == ',' || ch.is_ascii_whitespace());
        let scheme = c.token();
        if scheme.is_empty() {
            return out;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        while let Some(param) = c.param() {
            challenge.params.push(param);
        }
        out.push(challenge);
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos = self.pos.saturating_add(ch.len_utf8());
        Some(ch)
    }

    fn skip(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }

    /// An RFC 7230 token.
    fn token(&mut self) -> &str {
        let start = self.pos;
        self.skip(|ch| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch));
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// `name = value` followed by `,` or the end; `None` (with the
    /// cursor where it was) when what follows is the next challenge.
    fn param(&mut self) -> Option<(String, String)> {
        let start = self.pos;
        self.skip(|ch| ch == ',' || ch.is_ascii_whitespace());
        let name = self.token().to_ascii_lowercase();
        self.skip(|ch| ch == ' ' || ch == '\t');
        if name.is_empty() || self.peek() != Some('=') {
            self.pos = start;
            return None;
        }
        self.bump();
        self.skip(|ch| ch == ' ' || ch == '\t');
        let value = if self.peek() == Some('"') {
            self.quoted()
        } else {
            self.token().to_owned()
        };
        self.skip(|ch| ch == ' ' || ch == '\t');
        Some((name, value))
    }

    /// A quoted-string with `\` escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.bump();
        let mut out = String::new();
        while let Some(ch) = self.bump() {
            match ch {
                '"' => break,
                '\\' => out.extend(self.bump()),
                other => out.push(other),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Challenge {
        let mut all = parse(h);
        assert_eq!(all.len(), 1, "{h}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn parses_docker_hub_bearer() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn quoted_values_keep_commas_equals_and_escapes() {
        let c = one(
            r#"bearer  Realm = "https://a/t?x=1,y=2" , scope="repository:a:pull,push", error="in\"va\\lid""#,
        );
        assert_eq!(c.param("realm"), Some("https://a/t?x=1,y=2"));
        assert_eq!(c.param("scope"), Some("repository:a:pull,push"));
        assert_eq!(c.param("error"), Some(r#"in"va\lid"#));
    }

    #[test]
    fn several_challenges_and_junk() {
        let all = parse(r#"Basic realm="Registry Realm", Bearer realm="https://x/t",service=x"#);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "basic");
        assert_eq!(all[0].param("realm"), Some("Registry Realm"));
        assert_eq!(all[1].param("realm"), Some("https://x/t"));
        assert_eq!(all[1].param("service"), Some("x"));
        assert_eq!(one("Basic").params, []);
        assert_eq!(one(r#",, Basic ,, realm="r",,"#).param("realm"), Some("r"));
        assert_eq!(
            one(r#"Bearer realm="unterminated"#).param("realm"),
            Some("unterminated")
        );
        assert_eq!(one("Bearer realm=").param("realm"), Some(""));
        assert!(parse("").is_empty());
        assert!(parse("   ,  ").is_empty());
        assert!(parse("\"quoted\"").is_empty());
        let long = format!("Bearer realm=\"{}\"", "é,".repeat(5000));
        assert_eq!(one(&long).param("realm").map(str::len), Some(15000));
    }
}
