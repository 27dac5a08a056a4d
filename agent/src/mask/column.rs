//! Column rules: case-insensitive globs over `table.column` or `column`.

use crate::config::mask::ColumnRule;

#[derive(Debug)]
struct Glob {
    /// The whole pattern, lowercased.
    full: Vec<u8>,
    /// For a pattern with a dot, the part after the last dot: what is
    /// matched when the table is unknown.
    column_part: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct Columns {
    globs: Vec<Glob>,
}

impl Columns {
    pub fn new(rules: &[ColumnRule]) -> Columns {
        let globs = rules
            .iter()
            .map(|r| {
                let full = r.pattern.trim().to_ascii_lowercase().into_bytes();
                let column_part = full
                    .iter()
                    .rposition(|&b| b == b'.')
                    .map(|d| full[d + 1..].to_vec());
                Glob { full, column_part }
            })
            .collect();
        Columns { globs }
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// Whether a rule names a table: a pattern with a dot.
    pub fn has_table_rules(&self) -> bool {
        self.globs.iter().any(|g| g.column_part.is_some())
    }

    /// The column part of every rule (after the last dot), lowercased, as
    /// written: what a column's own name must match for a rule to apply.
    pub fn column_globs(&self) -> impl Iterator<Item = &str> {
        self.globs
            .iter()
            .filter_map(|g| std::str::from_utf8(g.column_part.as_deref().unwrap_or(&g.full)).ok())
    }

    /// Index of the first rule matching the column.
    pub fn find(&self, table: Option<&str>, column: &str) -> Option<usize> {
        let col = column.as_bytes();
        self.globs
            .iter()
            .position(|g| match (&g.column_part, table) {
                (None, _) => glob(&g.full, col),
                (Some(part), None) => glob(part, col),
                (Some(_), Some(t)) => {
                    let t = t.as_bytes();
                    // `schema.table.column`, and `table.column` without the schema.
                    let bare = t.iter().rposition(|&b| b == b'.').map(|d| &t[d + 1..]);
                    joined(t, col, |s| glob(&g.full, s))
                        || bare.is_some_and(|b| joined(b, col, |s| glob(&g.full, s)))
                }
            })
    }
}

fn joined(table: &[u8], col: &[u8], f: impl Fn(&[u8]) -> bool) -> bool {
    let n = table.len() + 1 + col.len();
    let mut stack = [0u8; 128];
    let mut heap;
    let buf: &mut [u8] = if n <= stack.len() {
        &mut stack[..n]
    } else {
        heap = vec![0u8; n];
        &mut heap
    };
    buf[..table.len()].copy_from_slice(table);
    buf[table.len()] = b'.';
    buf[table.len() + 1..].copy_from_slice(col);
    f(buf)
}

/// `*` matches any run (dots included), `?` one byte; ASCII case is
/// ignored (`p` is lowercase).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si].to_ascii_lowercase()) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(p: &[&str]) -> Columns {
        Columns::new(
            &p.iter()
                .map(|p| ColumnRule {
                    pattern: p.to_string(),
                    strategy: None,
                    keep: None,
                    name: None,
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globs() {
        assert!(glob(b"*password*", b"User_PASSWORD_hash"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"abbc"));
        assert!(glob(b"*.ssn", b"users.ssn"));
        assert!(!glob(b"*.ssn", b"users.ssn2"));
    }

    #[test]
    fn table_and_column() {
        let c = rules(&["users.email", "*.ssn", "*password*"]);
        assert_eq!(c.find(Some("users"), "email"), Some(0));
        assert_eq!(c.find(Some("public.users"), "EMAIL"), Some(0));
        assert_eq!(c.find(Some("orders"), "email"), None);
        // Unknown table: fail closed on the column part.
        assert_eq!(c.find(None, "email"), Some(0));
        assert_eq!(c.find(None, "ssn"), Some(1));
        assert_eq!(c.find(Some("people"), "ssn"), Some(1));
        // Without a dot, the table name is not looked at.
        assert_eq!(c.find(Some("password_resets"), "id"), None);
        assert_eq!(c.find(Some("t"), "db_password"), Some(2));
    }
}
