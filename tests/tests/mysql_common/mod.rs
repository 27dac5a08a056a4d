//! Shared by the `mysql*` end-to-end tests: connection entries for a
//! [`MariaDb`], the `mariadb` client through a `hoop connect` port, and a
//! raw client on hoop's own codecs for what the real clients do not send
//! (the binary protocol, hand-made or broken packets).

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::process::Output;

use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::{
    self, BinaryRow, ColumnDefinition, ErrPacket, HandshakeResponse, InitialHandshake, Packet,
    RowPacketKind, StmtPrepareOk, TextRow, classify_row_packet, flags::*,
};
use hoop_tests::harness::Conn;
use hoop_tests::mysql::{APP_DB, MariaDb, mysql_at};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, stderr, stdout};

/// A mysql connection to `db`'s app database as the app user, without TLS.
pub fn my_conn(name: &str, db: &MariaDb) -> Conn {
    my_conn_tls(name, db, "tls = \"disable\"")
}

/// Like [`my_conn`], with `tls` (TOML lines) for the TLS settings.
pub fn my_conn_tls(name: &str, db: &MariaDb, tls: &str) -> Conn {
    Conn::mysql(name, db.addr()).extra(&format!(
        "user = {:?}\ndatabase = {APP_DB:?}\npassword = {{ value = {:?} }}\n{tls}",
        db.app_user(),
        db.app_password()
    ))
}

/// `mariadb -N -B -e SQL` through hoop, with no password.
pub fn q(port: u16, sql: &str) -> Output {
    mysql_at("127.0.0.1", port, "alice", APP_DB, &["-N", "-B", "-e", sql])
}

/// [`q`], asserting success; the trimmed output.
pub fn q_ok(port: u16, sql: &str) -> String {
    let out = q(port, sql);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    stdout(&out)
}

/// Reads one packet from `stream` (at most [`WAIT`]); `None` when the
/// stream ends (or is reset) first.
pub async fn read_packet(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Packet> {
    let read = async {
        loop {
            if let Some(p) = mysql::split_packet(buf, mysql::MAX_PACKET_LEN).unwrap() {
                return Some(p);
            }
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("no packet and no end of stream within the time limit")
}

/// Whether `stream` ends (EOF or reset) within [`WAIT`] without sending
/// anything more.
pub async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await {
        Ok(_) => rest.is_empty(),
        Err(_) => false,
    }
}

/// The ERR packet `p` is, decoded; panics on anything else.
pub fn err_of(p: &Packet) -> ErrPacket {
    assert_eq!(p.first(), Some(0xFF), "not an ERR packet: {:?}", p.payload);
    ErrPacket::decode(&p.payload).unwrap()
}

/// A statement's answer as the raw client sees it.
#[derive(Debug)]
pub enum Answer {
    /// OK: affected rows.
    Ok(u64),
    /// A text result set's rows (the last one, for several).
    Rows(Vec<Vec<Option<String>>>),
    /// ERR: code and message.
    Err(u16, String),
}

/// A raw client for what the real clients do not send, on hoop's own
/// codecs.
pub struct RawMy {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub caps: u64,
}

impl RawMy {
    /// Connects to a local port and reads the greeting.
    pub async fn greeted(port: u16) -> (TcpStream, BytesMut, InitialHandshake) {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = BytesMut::new();
        let greeting = read_packet(&mut stream, &mut buf)
            .await
            .expect("closed before the greeting");
        let hs = InitialHandshake::decode(&greeting.payload).unwrap();
        (stream, buf, hs)
    }

    /// Connects and logs in (no password).
    pub async fn connect(port: u16) -> RawMy {
        let (raw, ok) = Self::login(port).await;
        let ok = ok.expect("closed during login");
        assert_eq!(ok.first(), Some(0x00), "login: {:?}", ok.payload);
        raw
    }

    /// Connects and sends a login; the answer to it (`None`: the stream
    /// ended first).
    pub async fn login(port: u16) -> (RawMy, Option<Packet>) {
        let (mut stream, mut buf, hs) = Self::greeted(port).await;
        let caps = (CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_DEPRECATE_EOF
            | CLIENT_TRANSACTIONS)
            & hs.capabilities;
        let hello = HandshakeResponse {
            capabilities: caps,
            max_packet_size: 1 << 24,
            charset: 45,
            username: Bytes::from_static(b"bob"),
            auth_response: Bytes::new(),
            auth_plugin: Some("mysql_native_password".into()),
            ..HandshakeResponse::default()
        };
        let mut out = BytesMut::new();
        mysql::write_packet(&mut out, 1, |o| hello.encode(o)).unwrap();
        stream.write_all(&out).await.unwrap();
        let answer = read_packet(&mut stream, &mut buf).await;
        (RawMy { stream, buf, caps }, answer)
    }

    /// The next packet; panics if the stream ends.
    pub async fn next(&mut self) -> Packet {
        self.next_or_closed().await.expect("closed")
    }

    /// The next packet, `None` if the stream ends.
    pub async fn next_or_closed(&mut self) -> Option<Packet> {
        read_packet(&mut self.stream, &mut self.buf).await
    }

    /// Sends `payload` as a command (sequence id 0).
    pub async fn command(&mut self, payload: &[u8]) {
        let mut out = BytesMut::new();
        mysql::encode_packet(0, payload, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// COM_QUERY `sql` and its answer (the last result, for several).
    pub async fn query(&mut self, sql: &str) -> Answer {
        let mut cmd = vec![mysql::command::COM_QUERY];
        cmd.extend_from_slice(sql.as_bytes());
        self.command(&cmd).await;
        self.answer().await
    }

    /// The answer to a COM_QUERY just sent.
    pub async fn answer(&mut self) -> Answer {
        loop {
            let head = self.next().await;
            let (answer, status) = match head.first() {
                Some(0xFF) => {
                    let e = err_of(&head);
                    return Answer::Err(e.code, e.message_lossy().into_owned());
                }
                Some(0x00) => {
                    let ok = mysql::OkPacket::decode(&head.payload, self.caps).unwrap();
                    (Answer::Ok(ok.affected_rows), ok.status)
                }
                _ => {
                    let n = mysql::ResultSetHeader::decode(&head.payload)
                        .unwrap()
                        .column_count;
                    for _ in 0..n {
                        self.next().await;
                    }
                    let mut rows = Vec::new();
                    let status = loop {
                        let p = self.next().await;
                        match classify_row_packet(&p.payload) {
                            RowPacketKind::Row => {
                                let r = TextRow::decode(&p.payload, n).unwrap();
                                rows.push(
                                    r.iter()
                                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into()))
                                        .collect(),
                                );
                            }
                            RowPacketKind::End => {
                                break mysql::EofPacket::decode_terminator(&p.payload, self.caps)
                                    .unwrap()
                                    .status;
                            }
                            RowPacketKind::Err => {
                                let e = err_of(&p);
                                return Answer::Err(e.code, e.message_lossy().into_owned());
                            }
                        }
                    };
                    (Answer::Rows(rows), status)
                }
            };
            if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                return answer;
            }
        }
    }

    /// The single value a query returns; panics on anything else.
    pub async fn value(&mut self, sql: &str) -> Option<String> {
        match self.query(sql).await {
            Answer::Rows(rows) if rows.len() == 1 && rows[0].len() == 1 => rows[0][0].clone(),
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// Prepares `sql` (no parameters) and executes it; the rows as
    /// binary values, with the column types.
    pub async fn prepared_rows(&mut self, sql: &str) -> (Vec<u8>, Vec<Vec<Option<Vec<u8>>>>) {
        let ok = self.prepare(sql).await;
        let mut exec = vec![0x17];
        exec.extend_from_slice(&ok.statement_id.to_le_bytes());
        exec.push(0);
        exec.extend_from_slice(&1u32.to_le_bytes());
        self.command(&exec).await;
        let head = self.next().await;
        let n = head.payload[0] as usize;
        let mut types = Vec::new();
        for _ in 0..n {
            let d = ColumnDefinition::decode(&self.next().await.payload, self.caps).unwrap();
            types.push(d.column_type);
        }
        let mut rows = Vec::new();
        loop {
            let p = self.next().await;
            match classify_row_packet(&p.payload) {
                RowPacketKind::Row => {
                    let r = BinaryRow::decode(&p.payload, &types).unwrap();
                    rows.push(r.iter().map(|v| v.map(<[u8]>::to_vec)).collect());
                }
                RowPacketKind::End => break,
                RowPacketKind::Err => panic!("error: {:?}", p.payload),
            }
        }
        (types, rows)
    }

    /// COM_STMT_PREPARE `sql`; its OK (definitions read and dropped).
    pub async fn prepare(&mut self, sql: &str) -> StmtPrepareOk {
        let mut cmd = vec![0x16];
        cmd.extend_from_slice(sql.as_bytes());
        self.command(&cmd).await;
        let first = self.next().await;
        let ok = StmtPrepareOk::decode(&first.payload)
            .unwrap_or_else(|e| panic!("prepare {sql}: {e}: {:?}", first.payload));
        for _ in 0..ok.num_params + ok.num_columns {
            self.next().await;
        }
        ok
    }
}
