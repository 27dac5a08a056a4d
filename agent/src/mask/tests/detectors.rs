//! One test per built-in detector: what it finds, and lookalikes it must
//! leave alone.

use super::*;

#[track_caller]
fn finds(det: &str, text: &str, want: &str) {
    let m = all();
    let f = found(&m, text);
    assert_eq!(f, vec![(det.to_string(), want.to_string())], "in {text:?}");
}

#[track_caller]
fn finds_in(column: &str, det: &str, text: &str) {
    let m = all();
    let f = found_in(&m, column, text);
    assert_eq!(
        f,
        vec![(det.to_string(), text.to_string())],
        "in {column}: {text:?}"
    );
}

#[track_caller]
fn clean(text: &str) {
    let m = all();
    let f = found(&m, text);
    assert!(f.is_empty(), "{text:?} should be left alone, found {f:?}");
}

#[test]
fn email() {
    finds("email", "alice@example.com", "alice@example.com");
    finds(
        "email",
        "Mail bob.smith+tag@mail.co.uk.",
        "bob.smith+tag@mail.co.uk",
    );
    finds("email", "<o'neil@example.org>", "o'neil@example.org");
    finds("email", "josé@exämple.de", "josé@exämple.de");
    finds("email", "ALICE@EXAMPLE.COM", "ALICE@EXAMPLE.COM");
    finds(
        "email",
        "GET /unsubscribe?email=alice%40example.com&x=1",
        "alice%40example.com",
    );
    for s in [
        "@mention me",
        "root@localhost",
        "icon@2x.png",
        "npm i pkg@1.2.3",
        "a@b.c",
        "ssh git://user@host",
        "foo@@bar.com",
        "100%40 done",
        "50%",
    ] {
        clean(s);
    }
}

#[test]
fn card() {
    for c in [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4242424242424242",
        "3782 822463 10005",
        "378282246310005",
        "5555555555554444",
        "2223003122003222",
        "6011111111111117",
        "3530111333300000",
        "4222222222222",
        "4917610000000000003",
    ] {
        finds("card", &format!("paid with {c}, thanks"), c);
    }
    finds("card", "(4242 4242 4242 4242)", "4242 4242 4242 4242");
    finds(
        "card",
        "card 4242 4242 4242 4242 exp 12/27",
        "4242 4242 4242 4242",
    );
    for s in [
        "4242424242424241",
        "4242 4242 4242 4241",
        "ISBN 9780306406157",
        "ISBN 978-0-306-40615-7",
        "ts 1700000000123456",
        "ref ORD-4242424242424242",
        "id_4242424242424242",
        "9400 1000 0000 0000 0000 00",
        "4242 4242 4242 4242 4242 42",
        "4242-4242 4242 4242",
        "7000000000000000",
    ] {
        clean(s);
    }
}

#[test]
fn ssn() {
    finds("ssn", "SSN 123-45-6789.", "123-45-6789");
    finds("ssn", "123 45 6789", "123 45 6789");
    finds("ssn", "ssn: 123456789", "123456789");
    finds_in("ssn", "ssn", "123456789");
    finds_in("customer_ssn", "ssn", "123-45-6789");
    for s in [
        "666-12-3456",
        "900-12-3456",
        "000-12-3456",
        "123-00-6789",
        "123-45-0000",
        "order 123456789",
        "2024-01-15",
        "123-45-6789-01",
    ] {
        clean(s);
    }
}

#[test]
fn phone() {
    for p in [
        "+1-555-123-4567",
        "+44 20 7946 0958",
        "(555)123-4567",
        "(555) 123-4567",
        "555.123.4567",
        "555-123-4567",
        "+55 11 91234-5678",
        "+55 (11) 91234-5678",
        "+91 9876543210",
        "+919876543210",
        "0113 496 0123",
        "(0113) 496 0123",
        "07700 900123",
        "+44(0)7700 900 123",
        "+49(0)30 123456",
        "+49 (0) 1234 567890",
        "001-555-123-4567",
        "030 12345678",
        "+34 912 345 678",
        "912 345 678",
        "01 23 45 67 89",
        "11 91234-5678",
    ] {
        finds("phone", &format!("reach me at {p} today"), p);
    }
    finds("phone", "555-123-4567x1234", "555-123-4567x1234");
    finds("phone", "555-123-4567 ext. 12, ask", "555-123-4567 ext. 12");
    finds("phone", "Call 5551234567", "5551234567");
    finds("phone", "tel 555 123 4567", "555 123 4567");
    finds_in("phone_number", "phone", "5551234567");
    finds_in("mobile", "phone", "01134960123");
    for s in [
        "2024-01-15 10:30:00",
        "15.01.2024 10:30",
        "v10.0.19041.1",
        "ORD-2024-000123",
        "12345-6789",
        "7489 2034 5678",
        "5551234567",
        "3.14159265",
        "1,234,567.89",
        "2024-000123",
        "Member no. 555 123 4567",
        "20240115 103045",
    ] {
        clean(s);
    }
}

#[test]
fn iban() {
    finds(
        "iban",
        "IBAN GB82 WEST 1234 5698 7654 32.",
        "GB82 WEST 1234 5698 7654 32",
    );
    finds("iban", "DE89370400440532013000", "DE89370400440532013000");
    finds(
        "iban",
        "ES9121000418450200051332",
        "ES9121000418450200051332",
    );
    clean("GB82WEST12345698765433");
    clean("QQ82WEST12345698765432");
    clean("DE8937040044053201300");
}

#[test]
fn ip() {
    finds("ip", "from 192.168.1.10 at noon", "192.168.1.10");
    finds("ip", "db 10.0.0.1:5432", "10.0.0.1");
    finds(
        "ip",
        "v6 2001:db8::8a2e:370:7334 ok",
        "2001:db8::8a2e:370:7334",
    );
    finds("ip", "fe80::1ff:fe23:4567:890a", "fe80::1ff:fe23:4567:890a");
    finds("ip", "[2001:db8::1]:443", "2001:db8::1");
    finds("ip", "ip:2001:db8::1,", "2001:db8::1");
    finds("ip", "::ffff:192.0.2.1", "::ffff:192.0.2.1");
    for s in [
        "1.2.3.4.5",
        "256.1.1.1",
        "10:30:45",
        "::1",
        "std::vec::Vec",
        "a::b and A::B",
        "Foo::bar::baz",
        "version 1.2.3",
        "00:1a:2b:3c:4d:5e",
        "01.02.03.04",
    ] {
        clean(s);
    }
}

#[test]
fn secret() {
    finds(
        "secret",
        "key AKIAIOSFODNN7EXAMPLE here",
        "AKIAIOSFODNN7EXAMPLE",
    );
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    finds("secret", &format!("token {jwt} end"), jwt);
    finds("secret", &format!("Authorization: Bearer {jwt}"), jwt);
    finds(
        "secret",
        "Authorization: Bearer abcdef123456",
        "abcdef123456",
    );
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
    finds("secret", &format!("key:\n{pem}\nbye"), pem);
    finds(
        "secret",
        "-----BEGIN PRIVATE KEY-----\nMIIE (cut)",
        "-----BEGIN PRIVATE KEY-----\nMIIE (cut)",
    );
    finds("secret", "password=hunter2 user=bob", "hunter2");
    finds("secret", "db_password = 'p@ss w0rd'", "p@ss w0rd");
    finds("secret", r#"{"password": "hunter2", "n": 1}"#, "hunter2");
    finds("secret", "PGPASSWORD=s3cr3t", "s3cr3t");
    finds("secret", "client-secret: abc.def", "abc.def");
    finds("secret", "?api_key=sk_live_123&x=1", "sk_live_123");
    finds(
        "secret",
        "postgres://app:s3cret@db.internal:5432/x",
        "s3cret",
    );
    for s in [
        "the bearer of bad news",
        "bearer authentication",
        "password_reset_at=2024",
        "password: null",
        r#"{"password": ""}"#,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "AKIA1234",
        "https://example.com/path",
        "secretary: Jane",
        "if password == x",
    ] {
        clean(s);
    }
}

#[test]
fn cpf() {
    finds("cpf", "CPF 529.982.247-25", "529.982.247-25");
    finds("cpf", "cpf: 52998224725", "52998224725");
    finds_in("cpf", "cpf", "52998224725");
    clean("529.982.247-26");
    clean("111.111.111-11");
    clean("order 52998224725");
}

#[test]
fn aadhaar() {
    finds("aadhaar", "UID 2341 2341 2346", "2341 2341 2346");
    finds("aadhaar", "Aadhaar: 234123412346", "234123412346");
    finds_in("aadhaar_no", "aadhaar", "234123412346");
    clean("2341 2341 2347");
    clean("1341 2341 2346");
    clean("upc 234123412346");
}

#[test]
fn nhs() {
    finds("nhs", "NHS no 401 023 2137", "401 023 2137");
    finds("nhs", "nhs: 4010232137", "4010232137");
    finds_in("nhs_number", "nhs", "401-023-2137");
    assert!(!found(&all(), "401 023 2138").iter().any(|f| f.0 == "nhs"));
    clean("ref 4010232137");
}

#[test]
fn dni() {
    finds("dni", "DNI 12345678Z", "12345678Z");
    finds("dni", "12345678-Z", "12345678-Z");
    finds("dni", "12.345.678-Z", "12.345.678-Z");
    finds("dni", "NIE X1234567L,", "X1234567L");
    finds("dni", "nie: x-1234567-l", "x-1234567-l");
    clean("12345678A");
    clean("X1234567A");
    clean("12345678Zed");
}

#[test]
fn lookalikes_are_left_alone() {
    for s in [
        "Order #100234567 shipped",
        "ORD-2024-000123",
        "INV/2024/00123",
        "PO 4500012345",
        "2024-01-15T10:30:00Z",
        "2024/01/15 10:30",
        "2024-01-15 10:30:00.123456+00",
        "1700000000",
        "1700000000123",
        "550e8400-e29b-41d4-a716-446655440000",
        "v2.14.0",
        "10.0.19041.1",
        "$1,299.99",
        "€ 12.345,67",
        "Total: 1299.99 USD",
        "ISBN 978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "1Z999AA10123456784",
        "9400 1000 0000 0000 0000 00",
        "9400100000000000000000",
        "EAN 4006381333931",
        "sha 3f786850e387550fdab836ed7e6dc881de23001b",
        "lat -33.8688, long 151.2093",
        "tracking 5033 6333 2643",
        "FedEx 503363332643",
        "Mozilla/5.0 (X11; rv:1.9.7.20) Gecko/20100101",
        "build 10.0.19041.204",
        "qty 12, price 19.99",
        "Route 66, Suite 300",
        "12345",
        "tel",
        "1 2 3 4 5 6 78 9",
    ] {
        clean(s);
    }
}

#[test]
fn hostile_values_scan_in_linear_time() {
    let m = all();
    let big = 200_000;
    for unit in [
        "a:",
        "1:",
        "a.",
        "eyJ",
        "a@",
        "x=",
        "1 ",
        "1-",
        "-----BEGIN ",
        "Bearer a",
    ] {
        let v = unit.repeat(big / unit.len());
        let t = std::time::Instant::now();
        let _ = m.mask(v.as_bytes(), &ColumnContext::named("notes"));
        // Generous even unoptimised: quadratic would take minutes.
        assert!(t.elapsed().as_secs() < 5, "{unit:?} took {:?}", t.elapsed());
    }
}

#[test]
fn masker_is_shareable() {
    fn check<T: Send + Sync>() {}
    check::<Masker>();
}

#[test]
fn detectors_can_be_chosen() {
    let cfg = MaskConfig {
        detectors: DetectorSet(vec![Detector::Email]),
        ..MaskConfig::default()
    };
    let m = Masker::new(&cfg, KEY).unwrap();
    assert_eq!(
        found(&m, "a@example.com 4242 4242 4242 4242 password=x"),
        vec![("email".to_string(), "a@example.com".to_string())]
    );
}

/// "Not personal" context (a keyword before the number, or the column
/// name) overrules every number except an SSN or CPF of more than one
/// run, with the longest fitting window deciding.
#[test]
fn not_personal_context_overrules_all_but_ssn_and_cpf() {
    finds("ssn", "tracking 123-45-6789", "123-45-6789");
    finds("ssn", "order 123 45 6789", "123 45 6789");
    finds("cpf", "invoice 529.982.247-25", "529.982.247-25");
    finds("cpf", "order 529982247-25", "529982247-25");
    finds("ssn", "order #123-45-6789 and 9400 1000", "123-45-6789");
    finds_in("sku", "ssn", "123-45-6789");
    finds_in("tracking_number", "cpf", "529.982.247-25");
    for s in [
        "order 4242 4242 4242 4242",
        "order 4242-4242-4242-4242",
        "INV 4242424242424242",
        "tracking 555-123-4567",
        "order 192.168.1.20",
        "order 123456789",
        "order 52998224725",
        "tracking 9400 1000 1234 5678 9012 00",
        "INV 20240315-00315",
        "ups 123-45-6789-01",
    ] {
        clean(s);
    }
    // A window that fits a phone number is tried before the SSN inside
    // it, and the context overrules it: the group is left alone.
    clean("order 001-23-4567 1234");
    // The override is per group: a later group is judged on its own.
    finds(
        "card",
        "order 12, card 4242 4242 4242 4242",
        "4242 4242 4242 4242",
    );
    let m = all();
    for (col, text) in [
        ("sku", "4242 4242 4242 4242"),
        ("tracking_number", "555-123-4567"),
    ] {
        let f = found_in(&m, col, text);
        assert!(f.is_empty(), "{col}: {text:?} found {f:?}");
    }
}
