use super::*;

const GOOD: &str = r#"
listen = "127.0.0.1:8443"
data_dir = "/var/lib/hoop-agent"

[[issuer]]
url = "https://idp.example.com"
audience = "hoop"
client_id = "hoop-cli"
groups_claim = "groups"
user_claim = "email"

[[connection]]
name = "echo"
type = "tcp"
address = "127.0.0.1:7000"
allow_users = ["alice@example.com"]
allow_groups = ["eng"]
"#;

#[test]
fn issue_example_parses() {
    let cfg = AgentConfig::parse(GOOD).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.listen.port(), 8443);
    assert_eq!(cfg.issuers[0].leeway_secs, 30);
    assert_eq!(cfg.connections[0].kind, ConnectionKind::Tcp);
    assert!(cfg.warnings().is_empty());
}

#[test]
fn shipped_examples_parse_and_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            AgentConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen > 0, "no example configs found in {}", dir.display());
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = GOOD.replace("address = ", "adress = \"x\"\naddress = ");
    let err = AgentConfig::parse(&text).unwrap_err();
    assert!(err.contains("adress"), "{err}");
    assert!(err.contains("line 15"), "{err}");
}

#[test]
fn unsupported_type_is_named() {
    let text = GOOD.replace("type = \"tcp\"", "type = \"postgress\"");
    let err = AgentConfig::parse(&text).unwrap_err();
    assert!(err.contains("postgress"), "{err}");
}

#[test]
fn validation_names_keys() {
    let text = GOOD
        .replace("https://idp.example.com", "http://idp.example.com")
        .replace("127.0.0.1:7000", "nowhere")
        .replace("audience = \"hoop\"", "audience = \"\"\nleeway_secs = 300")
        .replace("name = \"echo\"", "name = \"Echo Server\"");
    let problems = AgentConfig::parse(&text).unwrap().validate().unwrap_err();
    let all = problems.join("\n");
    for key in [
        "issuer[0].url",
        "issuer[0].audience",
        "issuer[0].leeway_secs",
        "connection[0].name",
        "connection[0].address",
    ] {
        assert!(all.contains(key), "missing {key} in {all}");
    }
}

#[test]
fn no_issuer_is_an_error() {
    let text = "data_dir = \"/tmp/x\"\n";
    let problems = AgentConfig::parse(text).unwrap().validate().unwrap_err();
    assert!(problems[0].starts_with("issuer:"), "{problems:?}");
}

#[test]
fn duplicate_connection_names() {
    let text = format!(
        "{GOOD}\n[[connection]]\nname = \"echo\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n"
    );
    let problems = AgentConfig::parse(&text).unwrap().validate().unwrap_err();
    assert!(
        problems.iter().any(|p| p.starts_with("connection[1].name")),
        "{problems:?}"
    );
}

#[test]
fn nobody_allowed_is_a_warning() {
    let text = GOOD
        .replace("allow_users = [\"alice@example.com\"]", "")
        .replace("allow_groups = [\"eng\"]", "");
    let cfg = AgentConfig::parse(&text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.warnings().len(), 1);
}

#[test]
fn issuer_urls() {
    assert!(check_issuer_url("https://idp.example.com").is_ok());
    assert!(check_issuer_url("http://127.0.0.1:9000").is_ok());
    assert!(check_issuer_url("http://[::1]:9000").is_ok());
    assert!(check_issuer_url("http://localhost:9000").is_ok());
    assert!(check_issuer_url("http://10.0.0.1").is_err());
    assert!(check_issuer_url("ftp://idp").is_err());
    assert!(check_issuer_url("not a url").is_err());
}

#[test]
fn host_ports() {
    assert_eq!(split_host_port("db:5432").unwrap(), ("db", 5432));
    assert_eq!(split_host_port("[::1]:5432").unwrap(), ("::1", 5432));
    for bad in ["db", ":5432", "db:", "db:0", "db:99999", "::1:5432"] {
        assert!(split_host_port(bad).is_err(), "{bad}");
    }
}

#[test]
fn connection_mask_is_validated_with_its_key() {
    let pg = |mask: &str| {
        format!(
            "{GOOD}\n[[connection]]\nname = \"db\"\ntype = \"postgres\"\naddress = \"127.0.0.1:5432\"\nuser = \"app\"\ndatabase = \"app\"\npassword = {{ env = \"PW\" }}\nallow_groups = [\"eng\"]\n{mask}"
        )
    };
    let ok = AgentConfig::parse(&pg(
        "[connection.mask]\ndetectors = [\"email\"]\n[[connection.mask.column]]\npattern = \"*.ssn\"",
    ))
    .unwrap();
    ok.validate().unwrap();
    assert!(ok.connections[1].mask.is_enabled());
    assert!(!ok.connections[0].mask.is_enabled());

    let bad = AgentConfig::parse(&pg("[connection.mask]\nkeep = 99")).unwrap();
    let problems = bad.validate().unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("connection[1].mask.keep:")),
        "{problems:?}"
    );
    let e = AgentConfig::parse(&pg("[connection.mask]\ndetector = [\"email\"]")).unwrap_err();
    assert!(e.contains("detector"), "{e}");

    let tcp = AgentConfig::parse(&format!("{GOOD}[connection.mask]\ndetectors = \"all\"")).unwrap();
    let problems = tcp.validate().unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("connection[0].mask: only database and http connections")),
        "{problems:?}"
    );
}

fn with_http(body: &str) -> String {
    format!(
        "{GOOD}\n[[connection]]\nname = \"api\"\ntype = \"http\"\nallow_groups = [\"eng\"]\n{body}"
    )
}

#[test]
fn http_connection_parses_and_takes_its_address_from_the_url() {
    let cfg = AgentConfig::parse(&with_http(
        r#"url = "https://api.internal:8443/v1/"
tls_ca = "/etc/hoop/api-ca.pem"
read_only = true

[[connection.header]]
name = "Authorization"
value = { env = "API_TOKEN" }
prefix = "Bearer "

[[connection.header]]
name = "X-Api-Key"
value = { file = "/run/secrets/key" }

[[connection.deny]]
pattern = "^DELETE "
message = "no deletes"

[connection.mask]
detectors = ["email"]
"#,
    ))
    .unwrap();
    cfg.validate().unwrap();
    let c = &cfg.connections[1];
    assert_eq!(c.kind, ConnectionKind::Http);
    assert_eq!(c.kind.default_port(), 8081);
    assert_eq!(c.address, "api.internal:8443");
    assert_eq!(c.headers.len(), 2);
    assert_eq!(c.headers[0].prefix, "Bearer ");
    assert_eq!(c.headers[1].prefix, "");
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());

    let c = AgentConfig::parse(&with_http("url = \"http://[::1]/\"")).unwrap();
    assert_eq!(c.connections[1].address, "[::1]:80");
    // The secret's value never shows in Debug.
    let inline = AgentConfig::parse(&with_http(
        "url = \"http://127.0.0.1:1\"\n[[connection.header]]\nname = \"X-Key\"\nvalue = { value = \"s3cr3t\" }",
    ))
    .unwrap();
    inline.validate().unwrap();
    assert!(!format!("{inline:?}").contains("s3cr3t"));
    assert!(
        inline.warnings().iter().any(|w| w.contains("X-Key")),
        "{:?}",
        inline.warnings()
    );
}

#[test]
fn http_validation_names_keys() {
    let problems = |body: &str| {
        let cfg = AgentConfig::parse(&with_http(body)).unwrap();
        cfg.validate().unwrap_err().join("\n")
    };
    let all = problems("");
    assert!(
        all.contains("connection[1].url: an http connection needs"),
        "{all}"
    );
    for (body, key) in [
        ("url = \"ftp://x\"", "connection[1].url:"),
        ("url = \"https://u:p@x\"", "connection[1].url:"),
        ("url = \"https://x/?a=1\"", "connection[1].url:"),
        (
            "url = \"http://x\"\ntls_ca = \"/ca.pem\"",
            "connection[1].tls_ca:",
        ),
        (
            "url = \"http://x\"\ntls = \"require\"",
            "connection[1].tls:",
        ),
        (
            "url = \"http://x\"\naddress = \"y:1\"",
            "connection[1].address:",
        ),
        (
            "url = \"http://x\"\nuser = \"u\"",
            "connection[1].user: only database",
        ),
        (
            "url = \"http://x\"\npassword = { env = \"P\" }",
            "connection[1].password:",
        ),
        (
            "url = \"http://x\"\n[[connection.header]]\nname = \"Host\"\nvalue = { env = \"H\" }",
            "connection[1].header[0].name:",
        ),
        (
            "url = \"http://x\"\n[[connection.header]]\nname = \"bad name\"\nvalue = { env = \"H\" }",
            "connection[1].header[0].name:",
        ),
        (
            "url = \"http://x\"\n[[connection.header]]\nname = \"A\"\nvalue = { env = \"\" }\n[[connection.header]]\nname = \"a\"\nvalue = { env = \"B\" }",
            "connection[1].header[1].name: a is injected twice",
        ),
        (
            "url = \"http://x\"\n[[connection.header]]\nname = \"A\"\nvalue = { env = \"\" }",
            "connection[1].header[0].value.env:",
        ),
        (
            "url = \"http://x\"\n[[connection.deny]]\npattern = \"(\"\nmessage = \"m\"",
            "connection[1].deny[0].pattern:",
        ),
        (
            "url = \"http://x\"\n[connection.mask]\nkeep = 99",
            "connection[1].mask.keep:",
        ),
    ] {
        let all = problems(body);
        assert!(all.contains(key), "{body}: missing {key} in {all}");
    }
    let e = AgentConfig::parse(&with_http(
        "url = \"http://x\"\n[[connection.header]]\nname = \"A\"\nvalue = { env = \"B\" }\nsuffix = \"x\"",
    ))
    .unwrap_err();
    assert!(e.contains("suffix"), "{e}");

    // And http keys on other types.
    let text = format!(
        "{GOOD}url = \"http://x\"\n[[connection.header]]\nname = \"A\"\nvalue = {{ env = \"B\" }}"
    );
    let all = AgentConfig::parse(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .join("\n");
    assert!(
        all.contains("connection[0].url: only http connections"),
        "{all}"
    );
    assert!(
        all.contains("connection[0].header: only http connections"),
        "{all}"
    );
    let text = GOOD.replace("address = \"127.0.0.1:7000\"\n", "");
    let all = AgentConfig::parse(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .join("\n");
    assert!(
        all.contains("connection[0].address: a tcp connection needs"),
        "{all}"
    );
}
