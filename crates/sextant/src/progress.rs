//! Progress of a long transfer on stderr: bytes done of the total, the
//! percentage and the rate. On a terminal one line is redrawn in place; in
//! a log (not a terminal) a line is printed at every tenth of the way, so
//! the output stays readable and short.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often, at most, the terminal line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    /// "Saving", "Restoring": what the line says is happening.
    verb: &'static str,
    /// The expected size, when known (a response without Content-Length).
    total: Option<u64>,
    done: u64,
    started: Instant,
    tty: bool,
    last_drawn: Option<Instant>,
    /// The next tenth (1..=10) at which a log line is due.
    next_tenth: u64,
}

/// `12.3 MiB` and the like.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Progress {
    pub fn new(verb: &'static str, total: Option<u64>) -> Self {
        Self {
            verb,
            total,
            done: 0,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_drawn: None,
            next_tenth: 1,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts `bytes` more as transferred.
    pub fn advance(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes);
        if self.tty {
            let due = self
                .last_drawn
                .is_none_or(|at| at.elapsed() >= REDRAW_EVERY);
            if due {
                self.draw("\r", "\x1b[K");
            }
            return;
        }
        let Some(total) = self.total.filter(|t| *t > 0) else {
            return;
        };
        let tenths = self.done.saturating_mul(10) / total;
        if tenths >= self.next_tenth {
            self.next_tenth = tenths + 1;
            self.draw("", "\n");
        }
    }

    /// Ends the line: the terminal's last redraw shows the final count.
    pub fn finish(&mut self) {
        if self.tty {
            self.draw("\r", "\x1b[K\n");
        }
    }

    fn draw(&mut self, start: &str, end: &str) {
        self.last_drawn = Some(Instant::now());
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = human_bytes((self.done as f64 / seconds) as u64);
        let line = match self.total {
            Some(total) if total > 0 => format!(
                "{} {} / {} ({}%), {rate}/s",
                self.verb,
                human_bytes(self.done),
                human_bytes(total),
                self.done.saturating_mul(100) / total
            ),
            _ => format!("{} {}, {rate}/s", self.verb, human_bytes(self.done)),
        };
        let mut stderr = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr must not fail the transfer.
        let _ = write!(stderr, "{start}{line}{end}");
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn a_log_gets_one_line_per_tenth() {
        let mut progress = Progress::new("Saving", Some(1000));
        progress.tty = false;
        for _ in 0..100 {
            progress.advance(10);
        }
        assert_eq!(progress.next_tenth, 11);
    }
}
