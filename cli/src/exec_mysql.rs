//! `hoop exec` on a MySQL connection: a minimal client of the protocol
//! (text results only) over the tunnel stream. The agent ends the login
//! itself, so no password is sent.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::auth::MYSQL_NATIVE_PASSWORD;
use hoop_proto::mysql::command::{COM_QUIT, encode_query};
use hoop_proto::mysql::flags::*;
use hoop_proto::mysql::result::ResultSetHeader;
use hoop_proto::mysql::{
    self, ColumnDefinition, EofPacket, ErrPacket, HandshakeResponse, InitialHandshake, OkPacket,
    Packet, RowPacketKind, TextRow, classify_row_packet,
};
use quinn::RecvStream;

use crate::args::ExecOutput;
use crate::client::AgentClient;
use crate::exec::Printer;

/// utf8mb4_general_ci: results come back in UTF-8.
const UTF8MB4: u8 = 45;

async fn next(recv: &mut RecvStream, buf: &mut BytesMut) -> anyhow::Result<Packet> {
    loop {
        if let Some(p) = mysql::split_packet(buf, mysql::MAX_PACKET_LEN)
            .context("malformed answer from the database")?
        {
            return Ok(p);
        }
        match recv.read_chunk(256 * 1024, true).await {
            Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
            Ok(None) => bail!("the connection closed before the statements finished"),
            Err(e) => bail!("the tunnel broke: {e}"),
        }
    }
}

fn describe(err: &ErrPacket) -> String {
    format!(
        "ERROR {} ({}): {}",
        err.code,
        err.sql_state_str(),
        err.message_lossy()
    )
}

/// Runs `sql` (one or more statements) on the mysql connection `name`.
pub async fn run(
    client: Arc<AgentClient>,
    name: &str,
    database: Option<&str>,
    sql: &str,
    format: ExecOutput,
) -> anyhow::Result<()> {
    let (mut send, mut recv, _) = client.open(name, None).await?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let greeting = next(&mut recv, &mut buf).await?;
    if greeting.first() == Some(0xFF) {
        bail!("{}", describe(&ErrPacket::decode(&greeting.payload)?));
    }
    let hs = InitialHandshake::decode(&greeting.payload)?;
    let mut caps = CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_TRANSACTIONS
        | CLIENT_MULTI_STATEMENTS
        | CLIENT_MULTI_RESULTS
        | CLIENT_DEPRECATE_EOF
        | CLIENT_LONG_FLAG;
    if database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    caps &= hs.capabilities;
    let hello = HandshakeResponse {
        capabilities: caps,
        max_packet_size: 1 << 24,
        charset: UTF8MB4,
        username: Bytes::from_static(b"hoop"),
        auth_response: Bytes::new(),
        database: database.map(|d| Bytes::from(d.to_string())),
        auth_plugin: Some(MYSQL_NATIVE_PASSWORD.to_string()),
        connect_attrs: None,
        zstd_level: None,
    };
    let mut out = BytesMut::new();
    mysql::write_packet(&mut out, greeting.next_seq(), |o| hello.encode(o))?;
    send.write_all(&out).await.context("the tunnel broke")?;
    let answer = next(&mut recv, &mut buf).await?;
    match answer.first() {
        Some(0x00) => {}
        Some(0xFF) => bail!("{}", describe(&ErrPacket::decode(&answer.payload)?)),
        _ => bail!("unexpected answer to the login"),
    }

    let mut out = BytesMut::new();
    mysql::write_packet(&mut out, 0, |o| {
        encode_query(sql.as_bytes(), caps, o);
        Ok(())
    })?;
    send.write_all(&out).await.context("the tunnel broke")?;

    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let result = results(&mut recv, &mut buf, caps, format, &mut w).await;
    w.flush()?;
    let mut quit = BytesMut::new();
    mysql::encode_packet(0, &[COM_QUIT], &mut quit)?;
    let _ = send.write_all(&quit).await;
    let _ = send.finish();
    result
}

async fn results(
    recv: &mut RecvStream,
    buf: &mut BytesMut,
    caps: u64,
    format: ExecOutput,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    loop {
        let p = next(recv, buf).await?;
        let status = match p.first() {
            Some(0x00) => {
                let ok = OkPacket::decode(&p.payload, caps)?;
                w.flush()?;
                eprintln!(
                    "OK, {} row{} affected",
                    ok.affected_rows,
                    if ok.affected_rows == 1 { "" } else { "s" }
                );
                ok.status
            }
            Some(0xFF) => bail!("{}", describe(&ErrPacket::decode(&p.payload)?)),
            Some(0xFB) => {
                bail!(
                    "hoop exec cannot send files for LOAD DATA LOCAL INFILE; use the mysql client through hoop connect"
                )
            }
            _ => {
                let header = ResultSetHeader::decode(&p.payload)?;
                let mut names = Vec::with_capacity(header.column_count.min(4096));
                for _ in 0..header.column_count {
                    let d = next(recv, buf).await?;
                    names.push(
                        ColumnDefinition::decode(&d.payload, caps)?
                            .name_lossy()
                            .into_owned(),
                    );
                }
                if caps & CLIENT_DEPRECATE_EOF == 0 {
                    next(recv, buf).await?;
                }
                let n = names.len();
                let mut printer = Printer::new(format, names);
                let mut rows = 0u64;
                let status = loop {
                    let r = next(recv, buf).await?;
                    match classify_row_packet(&r.payload) {
                        RowPacketKind::Row => {
                            let row = TextRow::decode(&r.payload, n)?;
                            let values = row
                                .iter()
                                .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                                .collect();
                            printer.row(w, values)?;
                            rows += 1;
                        }
                        RowPacketKind::End => {
                            break EofPacket::decode_terminator(&r.payload, caps)?.status;
                        }
                        RowPacketKind::Err => {
                            bail!("{}", describe(&ErrPacket::decode(&r.payload)?))
                        }
                    }
                };
                printer.flush_sample(w)?;
                if format == ExecOutput::Table {
                    writeln!(w, "({rows} row{})\n", if rows == 1 { "" } else { "s" })?;
                }
                status
            }
        };
        if status & SERVER_MORE_RESULTS_EXISTS == 0 {
            return Ok(());
        }
    }
}
