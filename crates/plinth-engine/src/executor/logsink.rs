//! Reading a handler's stderr into the run's log, bounded in memory and in storage.

use plinth_core::timefmt::now_micros;
use plinth_store::{LogLine, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest line kept; the rest of a longer line is cut.
pub(crate) const MAX_LINE: usize = 8 * 1024;
const FLUSH_LINES: usize = 256;
/// The longest a line waits in memory before it is stored.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Where an attempt's log lines go.
pub(crate) struct LogSink {
    store: Arc<dyn Store>,
    run_id: String,
    attempt: u32,
    budget: u64,
    used: u64,
    /// The attempt's next line number, shared by all its calls (a step function's session
    /// makes several; each call's lines follow the last one's).
    seq: Arc<AtomicU32>,
    pending: Vec<LogLine>,
    dropped_lines: u64,
    dropped_bytes: u64,
    last_line: Option<String>,
}

impl LogSink {
    pub(crate) fn new(store: Arc<dyn Store>, run_id: &str, attempt: u32, budget: u64, seq: Arc<AtomicU32>) -> Self {
        Self {
            store,
            run_id: run_id.to_string(),
            attempt,
            budget,
            used: 0,
            seq,
            pending: Vec::new(),
            dropped_lines: 0,
            dropped_bytes: 0,
            last_line: None,
        }
    }

    /// Adds one line (without its newline).
    pub(crate) async fn push(&mut self, line: String) {
        let len = line.len() as u64;
        self.last_line = Some(line.clone());
        if self.used + len > self.budget {
            self.dropped_lines += 1;
            self.dropped_bytes += len;
            return;
        }
        self.used += len;
        self.pending.push(LogLine { seq: self.seq.fetch_add(1, Ordering::Relaxed), ts: now_micros(), line });
        if self.pending.len() >= FLUSH_LINES {
            self.flush().await;
        }
    }

    /// Whether lines wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes what is pending to the store.
    pub(crate) async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.pending);
        if let Err(e) = self.store.append_logs(&self.run_id, self.attempt, lines).await {
            tracing::warn!(error = %e, "could not store handler log lines");
        }
    }

    /// Flushes, noting how much was dropped.
    pub(crate) async fn close(mut self) -> Option<String> {
        if self.dropped_lines > 0 {
            let note = format!(
                "[plinth] {} more lines ({} bytes) dropped: the log limit of {} bytes per attempt was reached",
                self.dropped_lines, self.dropped_bytes, self.budget
            );
            self.pending.push(LogLine { seq: self.seq.fetch_add(1, Ordering::Relaxed), ts: now_micros(), line: note });
        }
        self.flush().await;
        self.last_line
    }
}

/// Reads `reader` to its end (or until `quit`), line by line, into `sink`; memory stays
/// bounded by [`MAX_LINE`] whatever the handler writes.
pub(crate) async fn pump(
    mut reader: impl AsyncRead + Unpin,
    mut sink: LogSink,
    quit: impl Future<Output = ()>,
) -> Option<String> {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    let mut last_flush = tokio::time::Instant::now();
    tokio::pin!(quit);
    loop {
        // Why: a line the handler wrote before going quiet reaches the store (and the
        // dashboard's live tail) within FLUSH_AFTER, not only when more output comes.
        let flush_at = last_flush + FLUSH_AFTER;
        let read = tokio::select! {
            r = reader.read(&mut chunk) => r,
            () = tokio::time::sleep_until(flush_at), if sink.has_pending() => {
                sink.flush().await;
                last_flush = tokio::time::Instant::now();
                continue;
            }
            () = &mut quit => break,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                sink.push(finish_line(&mut line, &mut cut)).await;
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else {
                cut = true;
            }
        }
        if last_flush.elapsed() >= FLUSH_AFTER {
            sink.flush().await;
            last_flush = tokio::time::Instant::now();
        }
    }
    if !line.is_empty() {
        sink.push(finish_line(&mut line, &mut cut)).await;
    }
    sink.close().await
}

fn finish_line(line: &mut Vec<u8>, cut: &mut bool) -> String {
    let mut text = String::from_utf8_lossy(line).trim_end_matches('\r').to_string();
    if *cut {
        text.push_str(" …[line cut at 8 KiB]");
    }
    line.clear();
    *cut = false;
    text
}
