//! Commands, client → server: the first packet (sequence id 0) of every
//! exchange after login. [`Command::decode`] reads the ones a gateway
//! audits or acts on and keeps the rest as [`Command::Other`] with its
//! code, so a connector can refuse what it does not know.

use bytes::{BufMut, Bytes};

use super::flags::CLIENT_QUERY_ATTRIBUTES;
use super::row::binary_value_range;
use super::stmt::StmtExecute;
use super::wire::{Reader, cstr_len, put_cstr, share};
use super::{DecodeError, EncodeError};

// Command codes (`COM_*`).

pub const COM_SLEEP: u8 = 0x00;
pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_FIELD_LIST: u8 = 0x04;
pub const COM_CREATE_DB: u8 = 0x05;
pub const COM_DROP_DB: u8 = 0x06;
pub const COM_REFRESH: u8 = 0x07;
pub const COM_SHUTDOWN: u8 = 0x08;
pub const COM_STATISTICS: u8 = 0x09;
pub const COM_PROCESS_INFO: u8 = 0x0A;
pub const COM_CONNECT: u8 = 0x0B;
pub const COM_PROCESS_KILL: u8 = 0x0C;
pub const COM_DEBUG: u8 = 0x0D;
pub const COM_PING: u8 = 0x0E;
pub const COM_TIME: u8 = 0x0F;
pub const COM_DELAYED_INSERT: u8 = 0x10;
pub const COM_CHANGE_USER: u8 = 0x11;
pub const COM_BINLOG_DUMP: u8 = 0x12;
pub const COM_TABLE_DUMP: u8 = 0x13;
pub const COM_CONNECT_OUT: u8 = 0x14;
pub const COM_REGISTER_SLAVE: u8 = 0x15;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_EXECUTE: u8 = 0x17;
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub const COM_STMT_CLOSE: u8 = 0x19;
pub const COM_STMT_RESET: u8 = 0x1A;
pub const COM_SET_OPTION: u8 = 0x1B;
pub const COM_STMT_FETCH: u8 = 0x1C;
pub const COM_DAEMON: u8 = 0x1D;
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1E;
pub const COM_RESET_CONNECTION: u8 = 0x1F;
/// MySQL 8: clone plugin.
pub const COM_CLONE: u8 = 0x20;
/// MariaDB: array binding for one statement.
pub const COM_STMT_BULK_EXECUTE: u8 = 0xFA;

/// The `COM_*` name of a command code, for audit records.
pub fn command_name(code: u8) -> &'static str {
    match code {
        COM_SLEEP => "COM_SLEEP",
        COM_QUIT => "COM_QUIT",
        COM_INIT_DB => "COM_INIT_DB",
        COM_QUERY => "COM_QUERY",
        COM_FIELD_LIST => "COM_FIELD_LIST",
        COM_CREATE_DB => "COM_CREATE_DB",
        COM_DROP_DB => "COM_DROP_DB",
        COM_REFRESH => "COM_REFRESH",
        COM_SHUTDOWN => "COM_SHUTDOWN",
        COM_STATISTICS => "COM_STATISTICS",
        COM_PROCESS_INFO => "COM_PROCESS_INFO",
        COM_CONNECT => "COM_CONNECT",
        COM_PROCESS_KILL => "COM_PROCESS_KILL",
        COM_DEBUG => "COM_DEBUG",
        COM_PING => "COM_PING",
        COM_TIME => "COM_TIME",
        COM_DELAYED_INSERT => "COM_DELAYED_INSERT",
        COM_CHANGE_USER => "COM_CHANGE_USER",
        COM_BINLOG_DUMP => "COM_BINLOG_DUMP",
        COM_TABLE_DUMP => "COM_TABLE_DUMP",
        COM_CONNECT_OUT => "COM_CONNECT_OUT",
        COM_REGISTER_SLAVE => "COM_REGISTER_SLAVE",
        COM_STMT_PREPARE => "COM_STMT_PREPARE",
        COM_STMT_EXECUTE => "COM_STMT_EXECUTE",
        COM_STMT_SEND_LONG_DATA => "COM_STMT_SEND_LONG_DATA",
        COM_STMT_CLOSE => "COM_STMT_CLOSE",
        COM_STMT_RESET => "COM_STMT_RESET",
        COM_SET_OPTION => "COM_SET_OPTION",
        COM_STMT_FETCH => "COM_STMT_FETCH",
        COM_DAEMON => "COM_DAEMON",
        COM_BINLOG_DUMP_GTID => "COM_BINLOG_DUMP_GTID",
        COM_RESET_CONNECTION => "COM_RESET_CONNECTION",
        COM_CLONE => "COM_CLONE",
        COM_STMT_BULK_EXECUTE => "COM_STMT_BULK_EXECUTE",
        _ => "COM_UNKNOWN",
    }
}

/// COM_QUERY: a text-protocol statement (or several, with
/// `CLIENT_MULTI_STATEMENTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// With [`CLIENT_QUERY_ATTRIBUTES`]: the attribute block before the
    /// SQL, as sent (at least its two counts).
    pub attributes: Option<Bytes>,
    /// The SQL, in the connection's character set.
    pub sql: Bytes,
}

impl Query {
    fn decode(body: &Bytes, caps: u64) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "COM_QUERY");
        let attributes = if caps & CLIENT_QUERY_ATTRIBUTES != 0 {
            skip_query_attributes(&mut r)?;
            Some(body.slice(..r.pos()))
        } else {
            None
        };
        let sql = share(body, r.rest_range());
        Ok(Query { attributes, sql })
    }

    /// The SQL as text, if it is valid UTF-8.
    pub fn sql_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.sql).ok()
    }
}

/// Query attributes (MySQL 8.0.23+): parameter count, parameter set count,
/// then for a non-zero count a NULL bitmap, a "types follow" flag, a type
/// and name per attribute, and the non-NULL values in binary form.
fn skip_query_attributes(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    let count = r.lenenc()?;
    r.lenenc()?; // parameter set count, always 1
    if count == 0 {
        return Ok(());
    }
    let count = usize::try_from(count).map_err(|_| r.invalid("attribute count too large"))?;
    let null_bitmap = r.take(count.div_ceil(8))?;
    if r.u8()? != 1 {
        return Err(r.invalid("query attributes without their types"));
    }
    // Each type takes at least 3 bytes (type, flag, empty name).
    r.check_count(count, 3)?;
    let mut types = Vec::with_capacity(count);
    for _ in 0..count {
        types.push(r.u8()?);
        r.u8()?;
        r.lenenc_range()?;
    }
    for (i, t) in types.into_iter().enumerate() {
        if null_bitmap[i / 8] & (1 << (i % 8)) == 0 {
            binary_value_range(r, t)?;
        }
    }
    Ok(())
}

/// A command from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// COM_INIT_DB: `USE` a database (its name).
    InitDb(Bytes),
    Query(Query),
    /// COM_FIELD_LIST (deprecated): the columns of a table.
    FieldList {
        table: Bytes,
        wildcard: Bytes,
    },
    Statistics,
    /// COM_PROCESS_KILL (deprecated): kill a connection by thread id.
    ProcessKill(u32),
    Ping,
    /// COM_CHANGE_USER: log in again as another user; recognised, its body
    /// kept as sent (a gateway holding the credentials refuses it).
    ChangeUser(Bytes),
    /// COM_STMT_PREPARE: the statement's SQL.
    StmtPrepare(Bytes),
    StmtExecute(StmtExecute),
    StmtSendLongData {
        statement_id: u32,
        param_id: u16,
        data: Bytes,
    },
    StmtClose(u32),
    StmtReset(u32),
    /// COM_SET_OPTION: `MYSQL_OPTION_MULTI_STATEMENTS_ON`/`_OFF`.
    SetOption(u16),
    /// COM_STMT_FETCH: rows from an open cursor.
    StmtFetch {
        statement_id: u32,
        rows: u32,
    },
    ResetConnection,
    /// Any other command (replication, shutdown, debug, ...), its body
    /// kept as sent.
    Other {
        code: u8,
        body: Bytes,
    },
}

impl Command {
    /// Decodes a command payload; `capabilities` are the negotiated ones
    /// (query attributes change COM_QUERY). Commands without arguments
    /// ignore trailing bytes, as servers do.
    pub fn decode(payload: &Bytes, capabilities: u64) -> Result<Self, DecodeError> {
        let Some(&code) = payload.first() else {
            return Err(DecodeError::Invalid {
                what: "command",
                reason: "empty payload",
            });
        };
        let body = payload.slice(1..);
        let mut r = Reader::new(&body, command_name(code));
        let command = match code {
            COM_QUIT => Command::Quit,
            COM_PING => Command::Ping,
            COM_STATISTICS => Command::Statistics,
            COM_RESET_CONNECTION => Command::ResetConnection,
            COM_INIT_DB => return Ok(Command::InitDb(body)),
            COM_QUERY => return Query::decode(&body, capabilities).map(Command::Query),
            COM_STMT_PREPARE => return Ok(Command::StmtPrepare(body)),
            COM_CHANGE_USER => return Ok(Command::ChangeUser(body)),
            COM_STMT_EXECUTE => return StmtExecute::decode(payload).map(Command::StmtExecute),
            COM_FIELD_LIST => {
                let table = share(&body, r.cstr_range()?);
                let wildcard = share(&body, r.rest_range());
                Command::FieldList { table, wildcard }
            }
            COM_PROCESS_KILL => {
                let id = r.u32()?;
                r.finish()?;
                Command::ProcessKill(id)
            }
            COM_STMT_SEND_LONG_DATA => {
                let statement_id = r.u32()?;
                let param_id = r.u16()?;
                let data = share(&body, r.rest_range());
                Command::StmtSendLongData {
                    statement_id,
                    param_id,
                    data,
                }
            }
            COM_STMT_CLOSE | COM_STMT_RESET => {
                let id = r.u32()?;
                r.finish()?;
                if code == COM_STMT_CLOSE {
                    Command::StmtClose(id)
                } else {
                    Command::StmtReset(id)
                }
            }
            COM_SET_OPTION => {
                let option = r.u16()?;
                r.finish()?;
                Command::SetOption(option)
            }
            COM_STMT_FETCH => {
                let statement_id = r.u32()?;
                let rows = r.u32()?;
                r.finish()?;
                Command::StmtFetch { statement_id, rows }
            }
            _ => Command::Other { code, body },
        };
        Ok(command)
    }

    /// The command code.
    pub fn code(&self) -> u8 {
        match self {
            Command::Quit => COM_QUIT,
            Command::InitDb(_) => COM_INIT_DB,
            Command::Query(_) => COM_QUERY,
            Command::FieldList { .. } => COM_FIELD_LIST,
            Command::Statistics => COM_STATISTICS,
            Command::ProcessKill(_) => COM_PROCESS_KILL,
            Command::Ping => COM_PING,
            Command::ChangeUser(_) => COM_CHANGE_USER,
            Command::StmtPrepare(_) => COM_STMT_PREPARE,
            Command::StmtExecute(_) => COM_STMT_EXECUTE,
            Command::StmtSendLongData { .. } => COM_STMT_SEND_LONG_DATA,
            Command::StmtClose(_) => COM_STMT_CLOSE,
            Command::StmtReset(_) => COM_STMT_RESET,
            Command::SetOption(_) => COM_SET_OPTION,
            Command::StmtFetch { .. } => COM_STMT_FETCH,
            Command::ResetConnection => COM_RESET_CONNECTION,
            Command::Other { code, .. } => *code,
        }
    }

    /// The `COM_*` name, for audit records.
    pub fn name(&self) -> &'static str {
        command_name(self.code())
    }

    /// Encodes the payload; `capabilities` as for [`Command::decode`]. A
    /// query without an attribute block gets an empty one when the
    /// capabilities include [`CLIENT_QUERY_ATTRIBUTES`].
    pub fn encode(&self, capabilities: u64, out: &mut impl BufMut) -> Result<(), EncodeError> {
        if let Command::StmtExecute(execute) = self {
            execute.encode(out);
            return Ok(());
        }
        if let Command::FieldList { table, .. } = self {
            cstr_len(table, "table name")?;
        }
        let attributes = matches!(self, Command::Query(q) if q.attributes.is_some());
        if attributes && capabilities & CLIENT_QUERY_ATTRIBUTES == 0 {
            return Err(EncodeError::Invalid {
                field: "query attributes",
                reason: "given without CLIENT_QUERY_ATTRIBUTES",
            });
        }
        out.put_u8(self.code());
        match self {
            Command::Quit
            | Command::Statistics
            | Command::Ping
            | Command::ResetConnection
            | Command::StmtExecute(_) => {}
            Command::InitDb(b)
            | Command::ChangeUser(b)
            | Command::StmtPrepare(b)
            | Command::Other { body: b, .. } => out.put_slice(b),
            Command::Query(q) => {
                match &q.attributes {
                    Some(a) => out.put_slice(a),
                    None if capabilities & CLIENT_QUERY_ATTRIBUTES != 0 => out.put_slice(&[0, 1]),
                    None => {}
                }
                out.put_slice(&q.sql);
            }
            Command::FieldList { table, wildcard } => {
                put_cstr(out, table);
                out.put_slice(wildcard);
            }
            Command::ProcessKill(id) | Command::StmtClose(id) | Command::StmtReset(id) => {
                out.put_u32_le(*id)
            }
            Command::StmtSendLongData {
                statement_id,
                param_id,
                data,
            } => {
                out.put_u32_le(*statement_id);
                out.put_u16_le(*param_id);
                out.put_slice(data);
            }
            Command::SetOption(option) => out.put_u16_le(*option),
            Command::StmtFetch { statement_id, rows } => {
                out.put_u32_le(*statement_id);
                out.put_u32_le(*rows);
            }
        }
        Ok(())
    }
}

/// Encodes a COM_QUERY payload for `sql`, with an empty attribute block
/// when the capabilities include [`CLIENT_QUERY_ATTRIBUTES`].
pub fn encode_query(sql: &[u8], capabilities: u64, out: &mut impl BufMut) {
    out.put_u8(COM_QUERY);
    if capabilities & CLIENT_QUERY_ATTRIBUTES != 0 {
        out.put_slice(&[0, 1]);
    }
    out.put_slice(sql);
}
