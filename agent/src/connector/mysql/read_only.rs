//! MySQL's own ways around a read-only session, refused on `read_only`
//! connections on top of the shared guardrail.
//!
//! The backend session is made read-only (`SET SESSION TRANSACTION READ
//! ONLY`) and the guardrail refuses statements that write. But the
//! guardrail reads SQL the PostgreSQL way, and MySQL differs: MariaDB names
//! the setting `tx_read_only` (`SET tx_read_only = 0` lifts it with no
//! SESSION keyword), a string `'x\''` ends where PostgreSQL's does not, and
//! `/*! ... */` comments are executed. Dynamic SQL (`PREPARE s FROM @q`,
//! `EXECUTE IMMEDIATE`) runs text no one can read beforehand. So this
//! check works on the raw text, words only, ignoring quotes and comments,
//! and refuses anything that could make the backend session writable. It
//! may refuse a harmless statement that merely mentions these words; it
//! never needs to parse.

/// Why `sql` could lift the session's read-only mode, or `None`.
pub fn lift_reason(sql: &str) -> Option<&'static str> {
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if (has("tx_read_only") || has("transaction_read_only")) && has("set") {
        return Some("changing tx_read_only");
    }
    if has("transaction") && has("read") && has("write") {
        return Some("READ WRITE");
    }
    if has("execute") && has("immediate") {
        return Some("EXECUTE IMMEDIATE");
    }
    if has("prepare") && has("from") && lower.contains('@') {
        return Some("PREPARE ... FROM a variable");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::lift_reason;

    #[test]
    fn ways_to_lift_read_only_are_found() {
        for sql in [
            "set tx_read_only = 0",
            "SET @@tx_read_only=OFF",
            "set @@session.`tx_read_only` = 0",
            "/*!40101 set tx_read_only = 0 */",
            "select 1--1; set transaction_read_only = 0",
            "set statement tx_read_only=0 for execute s",
            "select 'x\\'', 1; set session transaction read write; select '1'",
            "start transaction read write",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE",
            "execute immediate @q",
            "EXECUTE\nIMMEDIATE concat('set ', 'x')",
            "prepare s from @q",
            "PREPARE s FROM/**/@q",
        ] {
            assert!(lift_reason(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn ordinary_reads_pass() {
        for sql in [
            "select @@tx_read_only",
            "select @@session.transaction_read_only as reset",
            "select * from t where name = 'read'",
            "set names utf8mb4",
            "set @a = 1",
            "prepare s from 'select * from t where id = ?'",
            "execute s using @a",
            "start transaction read only",
            "select offset, charset from t",
        ] {
            assert_eq!(lift_reason(sql), None, "{sql}");
        }
    }
}
