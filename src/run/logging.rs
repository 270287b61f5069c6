//! Logs on stderr: text for people, or flat JSON for collectors, one object per line:
//! `{"ts": …, "level": "info", "msg": …, "target": …, <the event's fields>}`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// Installs the global subscriber: `RUST_LOG` (default `info`) filters, and the decision log
/// (target `turnstile::decision`) is off unless `decisions`.
pub fn init(format: LogFormat, decisions: bool) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if !decisions {
        filter = filter.add_directive("turnstile::decision=off".parse().expect("a valid directive"));
    }
    // Colour only on a terminal: codes in a file or a log collector are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.event_format(FlatJson).init(),
    }
}

/// One JSON object per event, its fields beside `ts`, `level`, `msg` and `target` rather than
/// nested: what Loki, Elasticsearch and `jq` select on directly.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Line::default();
        event.record(&mut line);
        let head: [(&str, serde_json::Value); 4] = [
            ("ts", jiff::Timestamp::now().to_string().into()),
            ("level", meta.level().as_str().to_ascii_lowercase().into()),
            ("msg", line.msg.into()),
            ("target", meta.target().into()),
        ];
        let mut out = String::with_capacity(256);
        let mut write = |name: &str, value: &serde_json::Value| {
            out.push(if out.is_empty() { '{' } else { ',' });
            out.push_str(&serde_json::Value::from(name).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        };
        for (name, value) in &head {
            write(name, value);
        }
        for (name, value) in &line.fields {
            // A field named like one of the four above is kept, renamed.
            match head.iter().any(|(h, _)| h == name) {
                true => write(&format!("field.{name}"), value),
                false => write(name, value),
            }
        }
        writeln!(writer, "{out}}}")
    }
}

/// An event's message and fields, in the order they were given.
#[derive(Default)]
struct Line {
    msg: String,
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl Line {
    fn push(&mut self, field: &Field, value: serde_json::Value) {
        match (field.name(), value) {
            ("message", serde_json::Value::String(msg)) => self.msg = msg,
            (name, value) => self.fields.push((name, value)),
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines written by events under the flat JSON format.
    fn logged(events: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || WriteTo(sink.clone()))
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct WriteTo(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for WriteTo {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One object per line: `ts`, `level`, `msg`, `target` first, then the fields in order and
    /// typed; a field named like one of the four keeps its value under `field.<name>`.
    #[test]
    fn events_are_flat_json_lines() {
        let text = logged(|| {
            tracing::warn!(target: "t", user = "bob", allowed = false, status = 403u64, ts = "mine", "a \"quoted\" message");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with(r#"{"ts":""#), "{text}");
        let tail = r#","level":"warn","msg":"a \"quoted\" message","target":"t","user":"bob","allowed":false,"status":403,"field.ts":"mine"}"#;
        assert!(text.trim_end().ends_with(tail), "{text}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(line["ts"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok());
    }
}
