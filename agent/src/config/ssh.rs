//! Settings of `ssh` connections: the agent's credential for the host,
//! how the host's key is checked, and their validation.

use super::{ConnectionConfig, SecretRef, TlsMode, mask};

/// Checks an `ssh` connection. Each problem names its key.
pub(super) fn validate(c: &ConnectionConfig, key: &str, problems: &mut Vec<String>) {
    if c.user.as_deref().is_none_or(|u| u.trim().is_empty()) {
        problems.push(format!(
            "{key}.user: an ssh connection needs the login name on the host"
        ));
    }
    match (&c.private_key, &c.password) {
        (None, None) => problems.push(format!(
            "{key}.private_key: an ssh connection needs private_key = {{ file = \"/path\" }} (or a password)"
        )),
        (Some(_), Some(_)) => problems.push(format!(
            "{key}.password: give either private_key or password, not both"
        )),
        _ => {}
    }
    for (name, s) in [("private_key", &c.private_key), ("password", &c.password)] {
        if let Some(SecretRef::Env { env }) = s
            && env.trim().is_empty()
        {
            problems.push(format!("{key}.{name}.env: must name a variable"));
        }
    }
    match (&c.host_key, &c.known_hosts) {
        (Some(_), Some(_)) => problems.push(format!(
            "{key}.known_hosts: give either host_key or known_hosts, not both"
        )),
        (None, None) if !c.trust_first_use => problems.push(format!(
            "{key}.host_key: an ssh connection needs the host's key (host_key = \"ssh-ed25519 AAAA...\" \
             or known_hosts = \"/path\"); trust_first_use = true accepts the first key the host shows"
        )),
        _ => {}
    }
    if let Some(k) = &c.host_key
        && let Err(e) = parse_host_key(k)
    {
        problems.push(format!("{key}.host_key: {e}"));
    }
    for (j, rule) in c.deny.iter().enumerate() {
        if let Err(e) = regex::Regex::new(&rule.pattern) {
            problems.push(format!("{key}.deny[{j}].pattern: {e}"));
        }
        if rule.message.trim().is_empty() {
            problems.push(format!(
                "{key}.deny[{j}].message: must say why the command is refused"
            ));
        }
    }
    let others = [
        ("database", c.database.is_some()),
        ("databases", !c.databases.is_empty()),
        ("tls", c.tls != TlsMode::default()),
        ("tls_ca", c.tls_ca.is_some()),
        ("allow_cleartext_password", c.allow_cleartext_password),
        ("read_only", c.read_only),
        ("audit_parameters", c.audit_parameters),
        ("allow_local_infile", c.allow_local_infile),
        ("mask", c.mask != mask::MaskConfig::default()),
    ];
    for (name, set) in others {
        if set {
            problems.push(format!(
                "{key}.{name}: an ssh connection does not take this"
            ));
        }
    }
}

/// Keys only `ssh` connections take, refused on the others.
pub(super) fn reject_ssh_keys(c: &ConnectionConfig, key: &str, problems: &mut Vec<String>) {
    let kind = c.kind.as_str();
    let set = [
        ("private_key", c.private_key.is_some()),
        ("host_key", c.host_key.is_some()),
        ("known_hosts", c.known_hosts.is_some()),
        ("trust_first_use", c.trust_first_use),
        ("allow_port_forwarding", c.allow_port_forwarding),
        ("record_input", !c.record_input),
    ];
    for (name, on) in set {
        if on {
            problems.push(format!(
                "{key}.{name}: only ssh connections take this; this one is type {kind}"
            ));
        }
    }
}

/// Parses `"ssh-ed25519 AAAA... [comment]"` (a known_hosts line without
/// its host names, or a `.pub` file's line).
pub fn parse_host_key(text: &str) -> Result<russh::keys::PublicKey, String> {
    let mut parts = text.split_whitespace();
    let (Some(alg), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "{text:?} is not a public key; expected \"ssh-ed25519 AAAA...\" as in a .pub file"
        ));
    };
    russh::keys::PublicKey::from_openssh(&format!("{alg} {b64}"))
        .map_err(|e| format!("{text:?} is not a public key: {e}"))
}

#[cfg(test)]
mod tests {
    use crate::config::AgentConfig;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host";

    fn problems(conn: &str) -> Vec<String> {
        let text = format!(
            "data_dir = '/x'\n[[issuer]]\nurl = 'https://id.example'\naudience = 'hoop'\n\
             [[connection]]\nname = 'web'\nallow_groups = ['ops']\n{conn}"
        );
        let cfg = AgentConfig::parse(&text).unwrap();
        cfg.validate().err().unwrap_or_default()
    }

    #[test]
    fn a_complete_ssh_connection_is_valid() {
        let p = problems(&format!(
            "type = 'ssh'\naddress = 'h:22'\nuser = 'deploy'\nprivate_key = {{ file = '/k' }}\nhost_key = '{KEY}'\n"
        ));
        assert!(p.is_empty(), "{p:?}");
        let cfg = AgentConfig::parse(&format!(
            "data_dir = '/x'\n[[connection]]\nname = 'web'\ntype = 'ssh'\naddress = 'h:22'\nuser = 'u'\nprivate_key = {{ file = '/k' }}\nhost_key = '{KEY}'\n"
        ))
        .unwrap();
        let c = &cfg.connections[0];
        assert!(c.record_input && !c.allow_port_forwarding && !c.trust_first_use);
    }

    #[test]
    fn missing_pieces_name_their_keys() {
        let p = problems("type = 'ssh'\naddress = 'h:22'\n").join("\n");
        assert!(p.contains("connection[0].user:"), "{p}");
        assert!(p.contains("connection[0].private_key:"), "{p}");
        assert!(p.contains("connection[0].host_key:"), "{p}");
        let p = problems(
            "type = 'ssh'\naddress = 'h:22'\nuser = 'u'\nprivate_key = { file = '/k' }\nhost_key = 'ssh-ed25519 nope'\n",
        )
        .join("\n");
        assert!(
            p.contains("connection[0].host_key: \"ssh-ed25519 nope\" is not a public key"),
            "{p}"
        );
        let p = problems(
            "type = 'ssh'\naddress = 'h:22'\nuser = 'u'\nprivate_key = { file = '/k' }\ntrust_first_use = true\ndatabase = 'd'\n",
        )
        .join("\n");
        assert!(
            p.contains("connection[0].database: an ssh connection does not take this"),
            "{p}"
        );
        assert!(!p.contains("host_key"), "{p}");
    }

    #[test]
    fn ssh_keys_are_refused_on_other_types() {
        let p = problems("type = 'tcp'\naddress = 'h:1'\nhost_key = 'x'\nrecord_input = false\n")
            .join("\n");
        assert!(
            p.contains("connection[0].host_key: only ssh connections take this"),
            "{p}"
        );
        assert!(
            p.contains("connection[0].record_input: only ssh connections take this"),
            "{p}"
        );
    }
}
