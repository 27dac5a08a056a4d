//! Who may use which connection. Deny by default: a caller gets a
//! connection only when its user is in `allow_users` or one of its groups
//! is in `allow_groups`. Matching is exact (claims are compared as the
//! identity provider issued them).

use hoop_proto::tunnel::Identity;

use crate::config::ConnectionConfig;

/// True when `id` may open `conn`.
pub fn allowed(conn: &ConnectionConfig, id: &Identity) -> bool {
    conn.allow_users.contains(&id.user)
        || conn
            .allow_groups
            .iter()
            .any(|g| id.groups.iter().any(|have| have == g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(users: &[&str], groups: &[&str]) -> ConnectionConfig {
        let toml = format!(
            "data_dir = '/x'\n[[connection]]\nname = 'c'\ntype = 'tcp'\naddress = '127.0.0.1:1'\nallow_users = {users:?}\nallow_groups = {groups:?}\n"
        );
        crate::config::AgentConfig::parse(&toml)
            .unwrap()
            .connections
            .remove(0)
    }

    fn id(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            issuer: "https://idp".into(),
            expires_at: 0,
        }
    }

    #[test]
    fn deny_by_default() {
        assert!(!allowed(&conn(&[], &[]), &id("alice", &["eng"])));
    }

    #[test]
    fn user_or_group() {
        let c = conn(&["alice"], &["eng"]);
        assert!(allowed(&c, &id("alice", &[])));
        assert!(allowed(&c, &id("bob", &["ops", "eng"])));
        assert!(!allowed(&c, &id("bob", &["ops"])));
        assert!(!allowed(&c, &id("Alice", &["Eng"])));
        assert!(!allowed(&c, &id("", &[""])));
    }
}
