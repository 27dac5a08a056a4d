//! Flag words and ids: capability flags (both directions of the
//! handshake), server status flags (OK and EOF packets), column definition
//! flags, and the character set / collation ids a connector meets.
//!
//! Capabilities are handled as a `u64`: the low 32 bits are the MySQL
//! flags, the high 32 bits MariaDB's extended capabilities, which MariaDB
//! sends in otherwise reserved handshake bytes when [`CLIENT_MYSQL`] is
//! clear.

// Capability flags (`CLIENT_*`).

/// MySQL: new, more secure passwords (always set). MariaDB calls this bit
/// `CLIENT_MYSQL` and clears it to announce its extended capabilities.
pub const CLIENT_LONG_PASSWORD: u64 = 1;
/// MariaDB's name for [`CLIENT_LONG_PASSWORD`]: clear on a MariaDB server
/// or client that sends extended capabilities.
pub const CLIENT_MYSQL: u64 = 1;
/// OK packets count found (matched) rows instead of changed rows.
pub const CLIENT_FOUND_ROWS: u64 = 1 << 1;
/// Column flags are sent in full.
pub const CLIENT_LONG_FLAG: u64 = 1 << 2;
/// The HandshakeResponse names a database.
pub const CLIENT_CONNECT_WITH_DB: u64 = 1 << 3;
pub const CLIENT_NO_SCHEMA: u64 = 1 << 4;
/// The compressed protocol (not supported by this codec).
pub const CLIENT_COMPRESS: u64 = 1 << 5;
pub const CLIENT_ODBC: u64 = 1 << 6;
/// `LOAD DATA LOCAL INFILE` may be used.
pub const CLIENT_LOCAL_FILES: u64 = 1 << 7;
pub const CLIENT_IGNORE_SPACE: u64 = 1 << 8;
/// Protocol 4.1: required by this codec.
pub const CLIENT_PROTOCOL_41: u64 = 1 << 9;
pub const CLIENT_INTERACTIVE: u64 = 1 << 10;
/// TLS: offered by the server, asked for by the client's SSLRequest.
pub const CLIENT_SSL: u64 = 1 << 11;
pub const CLIENT_IGNORE_SIGPIPE: u64 = 1 << 12;
/// Status flags in OK packets.
pub const CLIENT_TRANSACTIONS: u64 = 1 << 13;
pub const CLIENT_RESERVED: u64 = 1 << 14;
/// 4.1 authentication: the auth response carries a 1-byte length.
pub const CLIENT_SECURE_CONNECTION: u64 = 1 << 15;
/// Several statements in one COM_QUERY.
pub const CLIENT_MULTI_STATEMENTS: u64 = 1 << 16;
/// Several result sets for one command.
pub const CLIENT_MULTI_RESULTS: u64 = 1 << 17;
/// Several result sets for COM_STMT_EXECUTE.
pub const CLIENT_PS_MULTI_RESULTS: u64 = 1 << 18;
/// Authentication plugins: names in the handshake, auth switch requests.
pub const CLIENT_PLUGIN_AUTH: u64 = 1 << 19;
/// The HandshakeResponse carries connection attributes.
pub const CLIENT_CONNECT_ATTRS: u64 = 1 << 20;
/// The auth response is a length-encoded string.
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u64 = 1 << 21;
pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u64 = 1 << 22;
/// OK packets carry an info string and session state changes.
pub const CLIENT_SESSION_TRACK: u64 = 1 << 23;
/// Result sets end with an OK packet (0xFE header) instead of EOF, and no
/// EOF follows column definitions.
pub const CLIENT_DEPRECATE_EOF: u64 = 1 << 24;
/// MySQL 8: result sets may omit column definitions.
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u64 = 1 << 25;
/// MySQL 8: zstd compression (not supported by this codec).
pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u64 = 1 << 26;
/// MySQL 8: COM_QUERY and COM_STMT_EXECUTE carry query attributes.
pub const CLIENT_QUERY_ATTRIBUTES: u64 = 1 << 27;
pub const CLIENT_MULTI_FACTOR_AUTHENTICATION: u64 = 1 << 28;
pub const CLIENT_CAPABILITY_EXTENSION: u64 = 1 << 29;
pub const CLIENT_SSL_VERIFY_SERVER_CERT: u64 = 1 << 30;
pub const CLIENT_REMEMBER_OPTIONS: u64 = 1 << 31;

/// MariaDB: progress reports (ERR packets with code 0xFFFF).
pub const MARIADB_CLIENT_PROGRESS: u64 = 1 << 32;
/// MariaDB: COM_MULTI (withdrawn).
pub const MARIADB_CLIENT_COM_MULTI: u64 = 1 << 33;
/// MariaDB: COM_STMT_BULK_EXECUTE.
pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u64 = 1 << 34;
/// MariaDB: column definitions carry extended type information (a
/// length-encoded string after `org_name`).
pub const MARIADB_CLIENT_EXTENDED_TYPE_INFO: u64 = 1 << 35;
/// MariaDB: COM_STMT_EXECUTE results may omit column definitions.
pub const MARIADB_CLIENT_CACHE_METADATA: u64 = 1 << 36;
pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u64 = 1 << 37;

/// Whether `caps` include every bit of `flag`.
pub fn has(caps: u64, flag: u64) -> bool {
    caps & flag == flag
}

// Server status flags (`SERVER_*`), in OK and EOF packets.

pub const SERVER_STATUS_IN_TRANS: u16 = 1;
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 1 << 1;
/// Another result set follows (multi-statement queries, procedures).
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
pub const SERVER_QUERY_NO_GOOD_INDEX_USED: u16 = 1 << 4;
pub const SERVER_QUERY_NO_INDEX_USED: u16 = 1 << 5;
/// COM_STMT_EXECUTE opened a cursor: rows come with COM_STMT_FETCH.
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;
pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 1 << 7;
pub const SERVER_STATUS_DB_DROPPED: u16 = 1 << 8;
pub const SERVER_STATUS_NO_BACKSLASH_ESCAPES: u16 = 1 << 9;
pub const SERVER_STATUS_METADATA_CHANGED: u16 = 1 << 10;
pub const SERVER_QUERY_WAS_SLOW: u16 = 1 << 11;
/// The result set holds a procedure's OUT parameters.
pub const SERVER_PS_OUT_PARAMS: u16 = 1 << 12;
pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 1 << 13;
/// The OK packet carries session state changes.
pub const SERVER_SESSION_STATE_CHANGED: u16 = 1 << 14;

// Column definition flags (`*_FLAG`).

pub const NOT_NULL_FLAG: u16 = 1;
pub const PRI_KEY_FLAG: u16 = 1 << 1;
pub const UNIQUE_KEY_FLAG: u16 = 1 << 2;
pub const MULTIPLE_KEY_FLAG: u16 = 1 << 3;
pub const BLOB_FLAG: u16 = 1 << 4;
/// Integers: the value is unsigned.
pub const UNSIGNED_FLAG: u16 = 1 << 5;
pub const ZEROFILL_FLAG: u16 = 1 << 6;
/// Strings: binary collation.
pub const BINARY_FLAG: u16 = 1 << 7;
pub const ENUM_FLAG: u16 = 1 << 8;
pub const AUTO_INCREMENT_FLAG: u16 = 1 << 9;
pub const TIMESTAMP_FLAG: u16 = 1 << 10;
pub const SET_FLAG: u16 = 1 << 11;
pub const NO_DEFAULT_VALUE_FLAG: u16 = 1 << 12;
pub const ON_UPDATE_NOW_FLAG: u16 = 1 << 13;
pub const NUM_FLAG: u16 = 1 << 15;

// Character set / collation ids. The handshake carries one byte; column
// definitions carry two.

pub const LATIN1_SWEDISH_CI: u16 = 8;
pub const UTF8MB3_GENERAL_CI: u16 = 33;
pub const UTF8MB4_GENERAL_CI: u16 = 45;
pub const UTF8MB4_BIN: u16 = 46;
/// The `binary` pseudo character set: BLOB and BINARY columns, numbers and
/// dates in text rows.
pub const BINARY: u16 = 63;
pub const UTF8MB4_UNICODE_CI: u16 = 224;
/// MySQL 8's default collation.
pub const UTF8MB4_0900_AI_CI: u16 = 255;

/// The character set of a collation id, for the ids above and the other
/// UTF-8 collations; `None` for ids this table does not know.
pub fn charset_name(collation: u16) -> Option<&'static str> {
    Some(match collation {
        5 | 8 | 15 | 31 | 47..=49 | 94 => "latin1",
        33 | 83 | 192..=215 | 223 => "utf8mb3",
        45 | 46 | 224..=247 | 255..=323 => "utf8mb4",
        63 => "binary",
        11 | 65 => "ascii",
        _ => return None,
    })
}

// Command-specific values.

/// COM_SET_OPTION: turn multi-statement queries on.
pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
/// COM_SET_OPTION: turn multi-statement queries off.
pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

/// Session state change types (`SESSION_TRACK_*`) in OK packets.
pub const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
/// The current database changed; the data is a length-encoded name.
pub const SESSION_TRACK_SCHEMA: u8 = 1;
pub const SESSION_TRACK_STATE_CHANGE: u8 = 2;
pub const SESSION_TRACK_GTIDS: u8 = 3;
pub const SESSION_TRACK_TRANSACTION_CHARACTERISTICS: u8 = 4;
pub const SESSION_TRACK_TRANSACTION_STATE: u8 = 5;
