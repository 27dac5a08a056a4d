//! A small SQL lexer: splits a message into statements and collects each
//! statement's bare words (upper-cased), skipping string literals, quoted
//! identifiers, dollar quotes and comments, so that a keyword inside a
//! string never counts and a semicolon inside one never splits.

/// One statement's words, upper-cased, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Statement {
    pub words: Vec<String>,
}

/// Splits `sql` into statements. Unterminated literals or comments end the
/// text (the backend will reject them anyway).
pub fn split_statements(sql: &str) -> Vec<Statement> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut cur = Statement::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b';' => {
                if !cur.words.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_line_comment(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'\'' => i = skip_quoted(b, i, b'\'', false),
            b'"' | b'`' => {
                // A quoted identifier still names something: keep it as a
                // word, so `set "default_transaction_read_only"` is seen.
                let end = skip_quoted(b, i, c, false);
                let inner = &b[i + 1..end.saturating_sub(1).max(i + 1)];
                let word = String::from_utf8_lossy(inner)
                    .replace("\"\"", "\"")
                    .to_ascii_uppercase();
                if !word.is_empty() {
                    cur.words.push(word);
                }
                i = end;
            }
            b'E' | b'e' if b.get(i + 1) == Some(&b'\'') && !prev_is_word(b, i) => {
                i = skip_quoted(b, i + 1, b'\'', true);
            }
            b'$' => {
                // $tag$ ... $tag$ (tag may be empty); $1 is a parameter.
                match dollar_tag(b, i) {
                    Some(tag_end) => {
                        let tag = &b[i..tag_end];
                        let mut j = tag_end;
                        i = b.len();
                        while j + tag.len() <= b.len() {
                            if &b[j..j + tag.len()] == tag {
                                i = j + tag.len();
                                break;
                            }
                            j += 1;
                        }
                    }
                    None => i += 1,
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                cur.words
                    .push(String::from_utf8_lossy(&b[start..i]).to_ascii_uppercase());
            }
            _ => i += 1,
        }
    }
    if !cur.words.is_empty() {
        out.push(cur);
    }
    out
}

/// Index after a `--` comment (at its newline).
fn skip_line_comment(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Index after a `/* */` comment; they nest, as in PostgreSQL.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    i
}

fn prev_is_word(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Index after the closing quote. With `backslash`, `\\x` escapes.
fn skip_quoted(b: &[u8], start: usize, q: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// For `$tag$`, the index after the opening tag.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

/// The text with comments replaced by a space and runs of white space
/// folded to one, literals kept: what deny rules are matched against as
/// well as the raw text, so `drop/**/table` cannot dodge `drop\s+table`.
pub fn normalize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut space = false;
    let mut i = 0;
    let push_space = |out: &mut Vec<u8>, space: &mut bool| {
        if !*space && !out.is_empty() {
            out.push(b' ');
        }
        *space = true;
    };
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            i = skip_line_comment(b, i);
            push_space(&mut out, &mut space);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
            push_space(&mut out, &mut space);
        } else if c == b'\'' || c == b'"' {
            let end = skip_quoted(b, i, c, false);
            out.extend_from_slice(&b[i..end]);
            space = false;
            i = end;
        } else if c.is_ascii_whitespace() {
            push_space(&mut out, &mut space);
            i += 1;
        } else {
            out.push(c);
            space = false;
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}
