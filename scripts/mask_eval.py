#!/usr/bin/env python3
"""Generate the labelled evaluation set for hoop's masking engine.

    python3 -m venv .venv && .venv/bin/pip install -r tests/py/requirements-mask.txt
    .venv/bin/python scripts/mask_eval.py   # writes tests/data/mask/eval.jsonl and bench.jsonl

The output is committed so the Rust test (`cargo test -p hoop-agent
mask::tests::eval -- --nocapture`) needs no Python. Generation is
deterministic: a fixed seed and a pinned Faker.

`bench.jsonl` holds `[column, text]` cells of typical tables (users,
orders, events, support tickets) for the engine's throughput benchmark.

Each line of `eval.jsonl` is one cell:
    {"column": "notes", "text": "...", "kind": "positive" | "lookalike" | "filler",
     "entities": [{"label": "card", "start": 10, "end": 29, "bare": false}]}
Offsets are UTF-8 byte offsets. `label` is the detector that should fire;
for secrets the span is the secret itself (the value of `password=...`,
the token after `Bearer`). `bare` marks a number written as digits only
(no separators) *and* with no context in its column name or sentence:
the engine documents that it does not mask those, so the Rust test
reports them apart from the gated figures.

Lookalikes are text that is not personal data but looks like it: order
numbers, timestamps, UUIDs, version strings, prices, ISBNs, EAN/UPC
barcodes, tracking numbers, routing numbers, hashes, MAC addresses, and
near misses (a card number with a wrong Luhn digit, a CPF with wrong
check digits ...); identifier-shaped numbers in columns named for them
(`tracking_number`, `sku`); and "hard" lookalikes: random digits printed
in an identifier's shape with no context at all, of which about one in
ten passes a one-digit checksum by chance and is indistinguishable from
the real thing. Filler is ordinary cell text: names, addresses,
sentences, JSON.

Faker's own output is used where it is right; where it is not, the value
is made here and the reason given:
- Aadhaar: Faker computes the check digit with Luhn; UIDAI uses Verhoeff.
- NHS numbers: Faker has none.
- IBAN: Faker's generic provider can make lengths that no country uses;
  only IBANs whose length matches the SWIFT registry are kept.
- Maestro: Faker's prefix list includes 0604, which no card network
  issues; such numbers are drawn again.
"""

import argparse
import base64
import json
import random
import string
import sys
from datetime import datetime
from pathlib import Path

from faker import Faker

SEED = 5_2024
LOCALES = ["en_US", "pt_BR", "en_IN", "en_GB", "es_ES", "de_DE"]
IBAN_LOCALES = ["en_GB", "de_DE", "es_ES", "pt_BR", "fr_FR", "it_IT", "nl_NL", "de_AT", "de_CH", "pl_PL"]
IBAN_LENGTHS = {
    "GB": 22, "DE": 22, "ES": 24, "BR": 29, "FR": 27, "IT": 27, "NL": 18, "AT": 20, "CH": 21,
    "PL": 28, "BE": 16, "IE": 22, "PT": 25,
}

rng = random.Random(SEED)
fakers = {}


def fk(locale=None):
    locale = locale or rng.choice(LOCALES)
    if locale not in fakers:
        f = Faker(locale)
        f.seed_instance(SEED + len(fakers))
        fakers[locale] = f
    return fakers[locale]


def dt(f=None):
    """A timestamp that does not depend on today's date (Faker's defaults do)."""
    return (f or fk()).date_time_between(start_date=datetime(2015, 1, 1), end_date=datetime(2026, 1, 1))


# ---------------------------------------------------------------- checksums

def luhn_ok(d):
    total = 0
    for i, c in enumerate(reversed(d)):
        v = int(c)
        if i % 2:
            v *= 2
            v -= 9 if v > 9 else 0
        total += v
    return total % 10 == 0


VD = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
VP = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
      [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 8, 7, 6, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]
VINV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_digit(body):
    c = 0
    for i, ch in enumerate(reversed(body)):
        c = VD[c][VP[(i + 1) % 8][int(ch)]]
    return str(VINV[c])


def cpf_ok(d):
    if len(set(d)) == 1:
        return False
    for n in (9, 10):
        s = sum(int(d[i]) * (n + 1 - i) for i in range(n))
        r = (s * 10) % 11 % 10
        if r != int(d[n]):
            return False
    return True


def digits(n):
    return "".join(rng.choice(string.digits) for _ in range(n))


def bad_digit(s, positions):
    """Change one digit at one of `positions` (indexes into the digits)."""
    idx = [i for i, c in enumerate(s) if c.isdigit()]
    i = idx[rng.choice(positions)]
    c = str((int(s[i]) + rng.randint(1, 9)) % 10)
    return s[:i] + c + s[i + 1:]


def group(d, sizes, sep):
    out, k = [], 0
    for n in sizes:
        out.append(d[k:k + n])
        k += n
    return sep.join(out)


# ------------------------------------------------------------- generators
# Each returns (value, bare): bare = digits only, no separators.

def card():
    kind = rng.choice(["visa16", "visa16", "mastercard", "mastercard", "amex", "discover",
                       "visa13", "visa19", "jcb16", "jcb15", "diners", "maestro"])
    while True:
        d = fk("en_US").credit_card_number(kind)
        if not d.startswith("0604"):
            break
    style = rng.random()
    if style < 0.45 or len(d) in (12, 13):
        return d, False  # bare cards are detected without context
    sep = " " if style < 0.8 else "-"
    sizes = {15: [4, 6, 5], 14: [4, 6, 4], 16: [4, 4, 4, 4], 19: [4, 4, 4, 4, 3]}[len(d)]
    return group(d, sizes, sep), False


def ssn():
    v = fk("en_US").ssn()
    r = rng.random()
    if r < 0.15:
        return v.replace("-", " "), False
    if r < 0.3:
        return v.replace("-", ""), True
    return v, False


def cpf():
    v = fk("pt_BR").cpf()
    if rng.random() < 0.25:
        return v.replace(".", "").replace("-", ""), True
    return v, False


def aadhaar():
    body = rng.choice("23456789") + digits(10)
    d = body + verhoeff_digit(body)
    r = rng.random()
    if r < 0.4:
        return d, True
    return group(d, [4, 4, 4], " " if r < 0.85 else "-"), False


def nhs_digits():
    while True:
        head = rng.choice([rng.randint(400, 499), rng.randint(600, 708), rng.randint(320, 399)])
        body = str(head) + digits(6)
        s = sum(int(body[i]) * (10 - i) for i in range(9))
        c = 11 - s % 11
        if c == 10:
            continue
        return body + ("0" if c == 11 else str(c))


def nhs():
    d = nhs_digits()
    r = rng.random()
    if r < 0.3:
        return d, True
    return group(d, [3, 3, 4], " " if r < 0.85 else "-"), False


def dni():
    f = fk("es_ES")
    v = f.nif() if rng.random() < 0.6 else f.nie()
    r = rng.random()
    if r < 0.15:
        v = v[:-1] + "-" + v[-1]
    return v, False


def iban():
    while True:
        v = fk(rng.choice(IBAN_LOCALES)).iban()
        if IBAN_LENGTHS.get(v[:2]) == len(v):
            break
    if rng.random() < 0.5:
        v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
    return v, False


def phone():
    loc = rng.choice(LOCALES)
    v = fk(loc).phone_number()
    bare = not any(c in v for c in "+ -.()")
    return v, bare


def email():
    f = fk()
    v = rng.choice([f.email, f.free_email, f.company_email, f.ascii_email])()
    return (v.upper() if rng.random() < 0.05 else v), False


def ip():
    f = fk()
    r = rng.random()
    if r < 0.4:
        return f.ipv4_public(), False
    if r < 0.7:
        return f.ipv4_private(), False
    return f.ipv6(), False


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt():
    f = fk()
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    payload = {"sub": f.uuid4(), "name": f.name(), "iat": rng.randint(1_600_000_000, 1_800_000_000)}
    sig = bytes(rng.getrandbits(8) for _ in range(32))
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(sig)])


def pem():
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(90, 300)))).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


def aws_key():
    return rng.choice(["AKIA", "ASIA"]) + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def secret_value():
    f = fk()
    return rng.choice([
        lambda: f.password(length=rng.randint(10, 20), special_chars=rng.random() < 0.5),
        lambda: "sk_live_" + f.sha1()[:24],
        lambda: f.sha256()[:40],
        lambda: f.uuid4(),
    ])()


# ------------------------------------------------------------- templates
# `{v}` is the value; `{ctx}` marks templates whose wording is context
# for a bare number (the engine's keyword list).

TEMPLATES = {
    "card": [
        ("Paid with card {v} on {date}.", True), ("{name} updated payment method to {v}", True),
        ("Cartão {v} aprovado", True), ("cc={v}", True), ("{v}", True),
        ("Refund issued to {v} ({amount})", True), ("Karte: {v}, gültig bis {exp}", True),
    ],
    "ssn": [
        ("SSN: {v}", True), ("Employee {name}, SSN {v}, hired {date}", True),
        ("social security number {v}", True), ("{name} {v}", False), ("ref {v} verified", False),
    ],
    "cpf": [
        ("CPF: {v}", True), ("Cliente {name}, CPF {v}", True), ("cpf {v} cadastrado", True),
        ("{name} - {v}", False), ("documento {v}", False),
    ],
    "aadhaar": [
        ("Aadhaar: {v}", True), ("{name}'s aadhaar no. {v}", True), ("UIDAI {v} linked", True),
        ("{name} {v}", False), ("KYC doc {v}", False),
    ],
    "nhs": [
        ("NHS number {v}", True), ("Patient {name} (NHS {v})", True), ("nhs no: {v}", True),
        ("{name}, {v}", False), ("patient id {v}", False),
    ],
    "dni": [
        ("DNI {v}", True), ("{name}, NIE {v}", True), ("documento: {v}", True), ("{v}", True),
    ],
    "iban": [
        ("IBAN: {v}", True), ("Transfer {amount} to {v} ref {order}", True), ("{v}", True),
        ("Bankverbindung {v}", True),
    ],
    "phone": [
        ("Call me at {v}", True), ("Tel: {v}", True), ("phone {v}", True), ("mobile: {v}", True),
        ("{name} - {v}", False), ("Contact {name} on {v} after {time}", True), ("{v}", False),
        ("Ligar para {v}", False), ("Rückruf unter {v}", False),
    ],
    "email": [
        ("Contact: {v}", True), ("GET /unsubscribe?email={v}&list=weekly 200", True), ("{name} <{v}>", True), ("sent to {v} at {time}", True), ("{v}", True),
        ("mailto:{v}", True), ("E-Mail an {v} geschickt", True),
    ],
    "ip": [
        ("login from {v} at {time}", True), ("client={v}", True), ("{v}", True),
        ("GET /api/v1/users 200 {v}", True), ("blocked {v} after 5 attempts", True),
    ],
}

SECRET_TEMPLATES = [
    ("password={v}", "kv"), ("db_password: {v}", "kv"), ('{{"api_key": "{v}", "user": "{user}"}}', "kv"),
    ("export AWS_ACCESS_KEY_ID={aws}", "aws"), ("aws key {aws} rotated", "aws"),
    ("Authorization: Bearer {jwt}", "jwt"), ("token {jwt}", "jwt"), ("Authorization: Bearer {v}", "bearer"),
    ("{pem}", "pem"), ("key follows\n{pem}\n", "pem"), ("postgres://{user}:{v}@db.internal:5432/app", "url"),
    ("client_secret = '{v}'", "kv"), ("PGPASSWORD={v} psql", "kv"),
]

COLUMNS = {
    "card": ["card_number", "cc", "pan", "payment_card"],
    "ssn": ["ssn", "customer_ssn", "social_security"],
    "cpf": ["cpf", "cliente_cpf"],
    "aadhaar": ["aadhaar", "aadhaar_no"],
    "nhs": ["nhs_number", "nhs_no"],
    "dni": ["dni", "nie", "documento"],
    "iban": ["iban", "account_iban"],
    "phone": ["phone", "phone_number", "mobile", "telefone", "tel"],
    "email": ["email", "contact_email", "login"],
    "ip": ["ip", "client_ip", "remote_addr"],
}

FREE_COLUMNS = ["notes", "comment", "description", "message", "body", "details"]


def fill(tpl, **kw):
    f = fk()
    base = {
        "name": f.name(), "date": dt(f).date().isoformat(), "time": dt(f).strftime("%H:%M:%S"), "amount": f"{rng.uniform(5, 5000):.2f}",
        "order": f"ORD-{rng.randint(2019, 2026)}-{digits(6)}", "exp": f"{rng.randint(1, 12):02d}/{rng.randint(25, 32)}",
        "user": f.user_name(),
    }
    base.update(kw)
    return tpl.format(**base)


def place(tpl, value, label, bare, **kw):
    """Fills a template and returns (text, entity) with byte offsets."""
    if "?email={v}" in tpl:
        value = value.replace("@", "%40")
    marker = "\x00"
    text = fill(tpl, v=marker, **kw)
    pre, post = text.split(marker)
    start = len(pre.encode())
    end = start + len(value.encode())
    return pre + value + post, {"label": label, "start": start, "end": end, "bare": bare}


def positive(label):
    gen = {"card": card, "ssn": ssn, "cpf": cpf, "aadhaar": aadhaar, "nhs": nhs, "dni": dni,
           "iban": iban, "phone": phone, "email": email, "ip": ip}[label]
    value, bare = gen()
    if rng.random() < 0.35:
        col = rng.choice(COLUMNS[label])
        return {"column": col, "text": value, "kind": "positive",
                "entities": [{"label": label, "start": 0, "end": len(value.encode()), "bare": False}]}
    tpl, has_ctx = rng.choice(TEMPLATES[label])
    text, ent = place(tpl, value, label, bare and not has_ctx)
    return {"column": rng.choice(FREE_COLUMNS), "text": text, "kind": "positive", "entities": [ent]}


def secret():
    tpl, kind = rng.choice(SECRET_TEMPLATES)
    v = secret_value()
    if kind in ("kv", "bearer", "url"):
        if kind == "url" or "{v}" in tpl and tpl.startswith(("password=", "PGPASSWORD=")):
            # Unquoted values end at URL delimiters; keep them to the
            # characters such values really use.
            v = "".join(c for c in v if c.isalnum() or c in "_-.") or "s3cret"
        if kind == "bearer":
            v = fk().sha1()
        text, ent = place(tpl, v, "secret", False)
    elif kind == "aws":
        k = aws_key()
        text, ent = place(tpl.replace("{aws}", "{v}"), k, "secret", False)
    elif kind == "jwt":
        text, ent = place(tpl.replace("{jwt}", "{v}"), jwt(), "secret", False)
    else:
        text, ent = place(tpl.replace("{pem}", "{v}"), pem(), "secret", False)
    return {"column": rng.choice(FREE_COLUMNS + ["config", "headers", "env"]), "text": text,
            "kind": "positive", "entities": [ent]}


def structured():
    """A JSON document or a CSV line with two labelled values."""
    a, b = rng.sample(["card", "ssn", "cpf", "aadhaar", "nhs", "dni", "iban", "phone", "email", "ip"], 2)
    gens = {"card": card, "ssn": ssn, "cpf": cpf, "aadhaar": aadhaar, "nhs": nhs, "dni": dni,
            "iban": iban, "phone": phone, "email": email, "ip": ip}
    (va, bare_a), (vb, bare_b) = gens[a](), gens[b]()
    f = fk()
    as_json = rng.random() < 0.5
    # In JSON the key names the value; a CSV line has no header here, so a
    # bare number in it has no context.
    bare = {a: bare_a and not as_json, b: bare_b and not as_json}
    if as_json:
        head = json.dumps({"id": rng.randint(1, 10**6), "name": f.name()}, ensure_ascii=False)[:-1]
        parts = [head, f', "{rng.choice(COLUMNS[a])}": "', va, f'", "{rng.choice(COLUMNS[b])}": "', vb, '"}']
    else:
        parts = [f"{rng.randint(1, 10**6)},{f.name()},", va, ",", vb, f",{dt(f).date().isoformat()}"]
    text, ents, offset = "", [], 0
    for i, p in enumerate(parts):
        if p is va or p is vb:
            label = a if p is va else b
            ents.append({"label": label, "start": offset, "end": offset + len(p.encode()), "bare": bare[label]})
        text += p
        offset += len(p.encode())
    return {"column": rng.choice(["payload", "row", "export", "data"]), "text": text, "kind": "positive",
            "entities": ents}


def multi():
    """A longer note with two or three entities."""
    labels = rng.sample(["card", "ssn", "cpf", "aadhaar", "nhs", "dni", "iban", "phone", "email", "ip"], rng.randint(2, 3))
    parts, ents, offset = [], [], 0
    for i, label in enumerate(labels):
        rec = positive(label)
        while rec["column"] not in FREE_COLUMNS:
            rec = positive(label)
        sentence = rec["text"] + ". " + (fk().sentence() + " " if rng.random() < 0.5 else "")
        for e in rec["entities"]:
            ents.append(dict(e, start=e["start"] + offset, end=e["end"] + offset))
        parts.append(sentence)
        offset += len(sentence.encode())
    return {"column": "notes", "text": "".join(parts).strip(), "kind": "positive", "entities": ents}


# ------------------------------------------------------------- lookalikes

def near_miss():
    """Same shape as an identifier, wrong check digits."""
    r = rng.randrange(7)
    if r == 0:
        v, _ = card()
        return bad_digit(v, [-1])
    if r == 1:
        return bad_digit(fk("pt_BR").cpf(), [9, 10])
    if r == 2:
        d = aadhaar()[0]
        return bad_digit(d, [11])
    if r == 3:
        return bad_digit(group(nhs_digits(), [3, 3, 4], " "), [9])
    if r == 4:
        v = fk("es_ES").nif()
        letters = "TRWAGMYFPDXBNJZSQVHLCKE".replace(v[-1], "")
        return v[:-1] + rng.choice(letters)
    if r == 5:
        v = iban()[0]
        return bad_digit(v, [-1])
    a = rng.choice(["000", "666", str(rng.randint(900, 999))])
    return f"{a}-{digits(2)}-{digits(4)}"


def lookalike():
    f = fk()
    y = rng.randint(2015, 2026)
    choices = [
        lambda: f"Order #{rng.randint(10**7, 10**9)} shipped",
        lambda: f"ORD-{y}-{digits(6)}",
        lambda: f"INV/{y}/{digits(5)}",
        lambda: f"PO {rng.choice('45')}{digits(9)}",
        lambda: f"order {digits(9)} confirmed",
        lambda: dt(f).isoformat(),
        lambda: str(dt(f)),
        lambda: f"{dt(f)}.{digits(6)}+00",
        lambda: str(rng.randint(1_500_000_000, 1_800_000_000)),
        lambda: str(rng.randint(1_500_000_000_000, 1_800_000_000_000)),
        lambda: dt(f).strftime("%Y%m%d%H%M%S"),
        lambda: dt(f).strftime("%d/%m/%Y %H:%M"),
        lambda: f.uuid4(),
        lambda: f"v{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}",
        lambda: f"{rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-beta.{rng.randint(1, 9)}",
        lambda: f"build {rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(1000, 40000)}.{rng.randint(0, 9999)}",
        lambda: f"${rng.randint(1, 99)},{digits(3)}.{digits(2)}",
        lambda: f"R$ {rng.randint(1, 999)}.{digits(3)},{digits(2)}",
        lambda: f"€{rng.uniform(1, 999):.2f}",
        lambda: f"Total: {rng.uniform(1, 99999):.2f} USD",
        lambda: f"₹ {rng.randint(1, 99)},{digits(3)}",
        lambda: f"ISBN {f.isbn13()}",
        lambda: f"ISBN {f.isbn10()}",
        lambda: f.isbn13().replace("-", ""),
        lambda: f"EAN {f.ean13()}",
        lambda: f"UPC {fk('en_US').upc_a()}",
        lambda: f"1Z{''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))}",
        lambda: group("94" + digits(20), [4, 4, 4, 4, 4, 2], " "),
        lambda: "94" + digits(20),
        lambda: f"FedEx {digits(12)}",
        lambda: f"tracking {group(digits(12), [4, 4, 4], ' ')}",
        lambda: f"DHL {digits(10)}",
        lambda: f"routing {fk('en_US').aba()}",
        lambda: f"EIN {fk('en_US').ein()}",
        lambda: f"ITIN {fk('en_US').itin()}",
        lambda: f.sha1(),
        lambda: f.md5(),
        lambda: f.mac_address(),
        lambda: f.license_plate(),
        lambda: f"lat {f.latitude()}, long {f.longitude()}",
        lambda: f"qty {rng.randint(1, 500)}, price {rng.uniform(1, 500):.2f}",
        lambda: f"{rng.randint(1, 100)}%",
        lambda: f"Room {rng.randint(100, 999)}, floor {rng.randint(1, 30)}",
        lambda: f"{rng.randint(1, 12):02d}/{rng.randint(25, 32)}",
        lambda: f"CEP {digits(5)}-{digits(3)}",
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        lambda: f"SWIFT {f.swift()}" if hasattr(f, "swift") else "SWIFT DEUTDEFF",
        lambda: near_miss(),
        lambda: near_miss(),
        lambda: near_miss(),
    ]
    return {"column": rng.choice(FREE_COLUMNS + ["reference", "external_id", "created_at", "version"]),
            "text": rng.choice(choices)(), "kind": "lookalike", "entities": []}


def lookalike_in_column():
    """Identifier-shaped numbers in columns named for what they are."""
    col, value = rng.choice([
        ("tracking_number", lambda: group(digits(12), [4, 4, 4], " ")),
        ("tracking_number", lambda: digits(12)),
        ("tracking_number", lambda: group("94" + digits(20), [4, 4, 4, 4, 4, 2], " ")),
        ("order_number", lambda: digits(rng.choice([9, 10, 12, 16]))),
        ("sku", lambda: digits(12)),
        ("ean", lambda: fk().ean13()),
        ("upc", lambda: fk("en_US").upc_a()),
        ("isbn", lambda: fk().isbn13()),
        ("invoice_no", lambda: group(digits(10), [3, 3, 4], "-")),
        ("serial", lambda: group(digits(16), [4, 4, 4, 4], "-")),
        ("version", lambda: f"{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"),
    ])
    return {"column": col, "text": value(), "kind": "lookalike", "entities": []}


def hard_lookalike():
    """Random digits in an identifier's printed shape, with no context to
    tell them apart. Checksums reject most; roughly one in ten (the odds
    of a random check digit) cannot be told from the real thing."""
    f = fk()
    return {"column": rng.choice(FREE_COLUMNS), "kind": "lookalike", "entities": [], "text": rng.choice([
        lambda: f"Voucher {group(digits(16), [4, 4, 4, 4], ' ')}",
        lambda: f"Code: {group(digits(12), [4, 4, 4], ' ')}",
        lambda: f"Member no. {group(digits(10), [3, 3, 4], ' ')}",
        lambda: f"Ref. {digits(3)}.{digits(3)}.{digits(3)}-{digits(2)}",
        lambda: f"Lote {digits(8)}{rng.choice(string.ascii_uppercase)}",
    ])()}


def filler():
    f = fk()
    choices = [
        lambda: f.name(), lambda: f.address().replace("\n", ", "), lambda: f.company(),
        lambda: f.sentence(), lambda: f.paragraph(), lambda: f.job(), lambda: f.catch_phrase(),
        lambda: f.street_address(), lambda: f.city() + " " + f.postcode(),
        lambda: json.dumps({"sku": f"SKU-{digits(6)}", "name": f.word(), "price": round(rng.uniform(1, 500), 2),
                            "tags": f.words(3), "updated": dt(f).isoformat()}),
        lambda: f.user_agent(), lambda: f.url(), lambda: f.file_path(), lambda: f.color_name(),
    ]
    return {"column": rng.choice(FREE_COLUMNS + ["name", "address", "title", "payload"]),
            "text": rng.choice(choices)(), "kind": "filler", "entities": []}


def bench_rows(n):
    """Cells of typical tables, for the throughput benchmark: most hold
    nothing sensitive, as in a real `select *` (the users table's email
    and phone columns, and an occasional card or address in a ticket,
    are the exceptions)."""
    cells = []
    statuses = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded"]
    for i in range(n):
        f = fk()
        table = rng.choice(["users", "orders", "orders", "events", "events", "tickets"])
        if table == "users":
            cells += [("name", f.name()), ("email", f.email()), ("phone", f.phone_number()),
                      ("address", f.address().replace("\n", ", ")), ("created_at", str(dt(f)))]
        elif table == "orders":
            cells += [("order_no", f"ORD-{rng.randint(2019, 2026)}-{digits(6)}"),
                      ("product", f.catch_phrase()), ("description", f.sentence(nb_words=12)),
                      ("price", f"{rng.uniform(1, 999):.2f}"), ("status", rng.choice(statuses)),
                      ("updated_at", dt(f).isoformat())]
        elif table == "events":
            payload = json.dumps({"path": f.uri_path(), "status": rng.choice([200, 201, 204, 301, 404, 500]),
                                  "ms": rng.randint(1, 900), "session": f.uuid4(), "ua": f.user_agent()})
            msg = rng.choice([
                f"GET /{f.uri_path()} {rng.choice([200, 404])} {rng.randint(1, 999)}ms",
                f"user {f.user_name()} logged in from {f.ipv4()}",
                f"job {f.uuid4()} finished in {rng.uniform(0, 60):.3f}s",
                f"cache miss for key {f.word()}:{digits(6)}",
            ])
            cells += [("id", f.uuid4()), ("kind", rng.choice(["http", "auth", "job", "cache"])),
                      ("message", msg), ("payload", payload), ("at", dt(f).isoformat())]
        else:
            body = f.paragraph(nb_sentences=rng.randint(2, 6))
            if rng.random() < 0.15:
                body += " " + rng.choice([
                    f"My card {card()[0]} was charged twice.",
                    f"Call me back on {f.phone_number()}.",
                    f"Reply to {f.email()} please.",
                ])
            cells += [("subject", f.sentence()), ("body", body), ("priority", rng.choice(["low", "normal", "high"])),
                      ("opened_at", str(dt(f)))]
    return cells


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/data/mask/eval.jsonl"))
    ap.add_argument("--per-label", type=int, default=300)
    ap.add_argument("--bench-rows", type=int, default=2500)
    args = ap.parse_args()

    records = []
    for label in ["card", "ssn", "cpf", "aadhaar", "nhs", "dni", "iban", "phone", "email", "ip"]:
        records += [positive(label) for _ in range(args.per_label)]
    records += [secret() for _ in range(args.per_label)]
    records += [multi() for _ in range(args.per_label)]
    records += [structured() for _ in range(args.per_label)]
    records += [lookalike() for _ in range(args.per_label * 8)]
    records += [lookalike_in_column() for _ in range(args.per_label)]
    records += [hard_lookalike() for _ in range(args.per_label // 2)]
    records += [filler() for _ in range(args.per_label * 4)]
    rng.shuffle(records)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records, {out.stat().st_size} bytes to {out}", file=sys.stderr)

    bench = out.with_name("bench.jsonl")
    with bench.open("w", encoding="utf-8") as fh:
        for column, text in bench_rows(args.bench_rows):
            fh.write(json.dumps([column, text], ensure_ascii=False) + "\n")
    print(f"wrote {bench.stat().st_size} bytes of benchmark cells to {bench}", file=sys.stderr)


if __name__ == "__main__":
    main()
