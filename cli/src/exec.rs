//! `hoop exec NAME`: runs SQL through the agent (the same path as any
//! client: audit, guardrails, masking) and prints results as they arrive,
//! for scripts that have no psql.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::BytesMut;
use hoop_proto::pg::backend::{CommandComplete, DataRow, ErrorFields, RowDescription};
use hoop_proto::pg::frontend::{encode_copy_fail, encode_query, encode_terminate};
use hoop_proto::pg::{self, RawMessage, startup};
use quinn::RecvStream;

use crate::args::ExecOutput;
use crate::client::AgentClient;

/// Rows buffered to size the columns of the table format before printing
/// starts; later rows stream with those widths.
const TABLE_SAMPLE: usize = 500;

async fn next(recv: &mut RecvStream, buf: &mut BytesMut) -> anyhow::Result<Option<RawMessage>> {
    loop {
        if let Some(m) = pg::split_message(buf, pg::MAX_MESSAGE_LEN)
            .context("malformed answer from the database")?
        {
            return Ok(Some(m));
        }
        match recv.read_chunk(256 * 1024, true).await {
            Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
            Ok(None) => return Ok(None),
            Err(e) => bail!("the tunnel broke: {e}"),
        }
    }
}

/// The output writer for one result set.
pub(crate) struct Printer {
    format: ExecOutput,
    columns: Vec<String>,
    sample: Vec<Vec<Option<String>>>,
    widths: Vec<usize>,
    started: bool,
}

impl Printer {
    pub(crate) fn new(format: ExecOutput, columns: Vec<String>) -> Printer {
        let widths = columns.iter().map(|c| c.chars().count()).collect();
        Printer {
            format,
            columns,
            sample: Vec::new(),
            widths,
            started: false,
        }
    }

    pub(crate) fn row(
        &mut self,
        out: &mut impl Write,
        row: Vec<Option<String>>,
    ) -> std::io::Result<()> {
        match self.format {
            ExecOutput::Json => {
                let obj: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .cloned()
                    .zip(
                        row.into_iter()
                            .map(|v| v.map_or(serde_json::Value::Null, serde_json::Value::String)),
                    )
                    .collect();
                serde_json::to_writer(&mut *out, &obj)?;
                writeln!(out)
            }
            ExecOutput::Csv => {
                if !self.started {
                    self.started = true;
                    let header: Vec<String> =
                        self.columns.iter().map(|c| csv_field(Some(c))).collect();
                    writeln!(out, "{}", header.join(","))?;
                }
                let fields: Vec<String> = row.iter().map(|v| csv_field(v.as_deref())).collect();
                writeln!(out, "{}", fields.join(","))
            }
            ExecOutput::Table => {
                if self.started {
                    return self.print_row(out, &row);
                }
                for (w, v) in self.widths.iter_mut().zip(&row) {
                    *w = (*w).max(v.as_deref().map_or(0, |s| s.chars().count()));
                }
                self.sample.push(row);
                if self.sample.len() >= TABLE_SAMPLE {
                    self.flush_sample(out)?;
                }
                Ok(())
            }
        }
    }

    pub(crate) fn flush_sample(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.started || self.format != ExecOutput::Table {
            return Ok(());
        }
        self.started = true;
        let header: Vec<String> = self
            .columns
            .iter()
            .zip(&self.widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", header.join(" | ").trim_end())?;
        let rule: Vec<String> = self.widths.iter().map(|w| "-".repeat(*w)).collect();
        writeln!(out, "{}", rule.join("-+-"))?;
        for row in std::mem::take(&mut self.sample) {
            self.print_row(out, &row)?;
        }
        Ok(())
    }

    fn print_row(&self, out: &mut impl Write, row: &[Option<String>]) -> std::io::Result<()> {
        let cells: Vec<String> = row
            .iter()
            .zip(&self.widths)
            .map(|(v, w)| format!("{:<w$}", v.as_deref().unwrap_or("")))
            .collect();
        writeln!(out, "{}", cells.join(" | ").trim_end())
    }
}

fn csv_field(v: Option<&str>) -> String {
    match v {
        None => String::new(),
        Some(s) if s.contains([',', '"', '\n', '\r']) || s.is_empty() => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        Some(s) => s.to_string(),
    }
}

fn describe_error(f: &ErrorFields) -> String {
    let mut s = format!(
        "{}: {}",
        f.severity().unwrap_or("ERROR"),
        f.message().unwrap_or("(no message)")
    );
    if let Some(code) = f.code() {
        s.push_str(&format!(" (SQLSTATE {code})"));
    }
    if let Some(d) = f.detail() {
        s.push_str(&format!("\nDETAIL: {d}"));
    }
    if let Some(h) = f.hint() {
        s.push_str(&format!("\nHINT: {h}"));
    }
    s
}

/// Runs `sql` on the database connection `name`.
pub async fn run(
    client: Arc<AgentClient>,
    name: &str,
    database: Option<&str>,
    sql: &str,
    format: ExecOutput,
) -> anyhow::Result<()> {
    let list = client.list_connections().await?;
    match list.iter().find(|c| c.name == name) {
        Some(c) if c.kind == "postgres" => {}
        Some(c) if c.kind == "mysql" => {
            return crate::exec_mysql::run(client.clone(), name, database, sql, format).await;
        }
        Some(c) => bail!(
            "hoop exec runs SQL on database connections; {name:?} is of type {}",
            c.kind
        ),
        None => {
            // Let the agent say whether it is unknown or forbidden.
            client.open(name, None).await?;
            bail!("the agent did not list {name:?} as a connection you may use");
        }
    }
    let (mut send, mut recv, _) = client.open(name, None).await?;
    let mut params: Vec<(&str, &str)> = vec![("user", "hoop"), ("application_name", "hoop exec")];
    if let Some(db) = database {
        params.push(("database", db));
    }
    let mut out = Vec::with_capacity(256 + sql.len());
    startup::encode_startup(&params, &mut out)?;
    encode_query(sql, &mut out).context("the SQL cannot be sent (does it contain a NUL byte?)")?;
    send.write_all(&out).await.context("the tunnel broke")?;

    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut printer: Option<Printer> = None;
    let mut error: Option<String> = None;
    let mut logged_in = false;
    loop {
        let Some(msg) = next(&mut recv, &mut buf).await? else {
            w.flush()?;
            match error {
                Some(e) => bail!("{e}"),
                None => bail!("the connection closed before the statements finished"),
            }
        };
        match msg.tag {
            b'R' | b'S' | b'K' => {}
            b'Z' if !logged_in => logged_in = true,
            b'Z' => break,
            b'T' => {
                if let Some(mut p) = printer.take() {
                    p.flush_sample(&mut w)?;
                }
                let rd = RowDescription::decode(&msg)?;
                printer = Some(Printer::new(
                    format,
                    rd.fields.into_iter().map(|f| f.name).collect(),
                ));
            }
            b'D' => {
                let row = DataRow::decode(&msg)?;
                let values = row
                    .iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect();
                if let Some(p) = printer.as_mut() {
                    p.row(&mut w, values)?;
                }
            }
            b'C' => {
                let cc = CommandComplete::decode(&msg)?;
                if let Some(mut p) = printer.take() {
                    p.flush_sample(&mut w)?;
                    if format == ExecOutput::Table {
                        let n = cc.rows().unwrap_or(0);
                        writeln!(w, "({n} row{})\n", if n == 1 { "" } else { "s" })?;
                    }
                } else {
                    w.flush()?;
                    eprintln!("{}", cc.tag);
                }
            }
            b'E' => {
                let f = ErrorFields::decode(&msg)?;
                let text = describe_error(&f);
                if !logged_in {
                    bail!("{text}");
                }
                error = Some(text);
                printer = None;
            }
            b'N' => {
                if let Ok(f) = ErrorFields::decode(&msg) {
                    w.flush()?;
                    eprintln!("{}", describe_error(&f));
                }
            }
            b'G' => {
                let mut fail = Vec::new();
                encode_copy_fail(
                    "hoop exec cannot send COPY FROM STDIN data; use psql through hoop connect",
                    &mut fail,
                )?;
                send.write_all(&fail).await.context("the tunnel broke")?;
            }
            b'd' => {
                w.write_all(msg.body())?;
            }
            _ => {}
        }
    }
    w.flush()?;
    let mut bye = Vec::new();
    encode_terminate(&mut bye);
    let _ = send.write_all(&bye).await;
    let _ = send.finish();
    match error {
        Some(e) => bail!("{e}"),
        None => Ok(()),
    }
}
