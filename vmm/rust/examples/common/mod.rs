//! What the line-protocol drivers share: numbers as they are written, and the loop that answers
//! each command line with one reply line.

use std::io::{self, BufRead, Write};

/// A decimal or 0x-prefixed hex number; a negative decimal wraps, as C's strtoull would.
pub fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).expect("hex number"),
        None => s.parse::<i64>().expect("number") as u64,
    }
}

/// Reads command lines from stdin until it closes; `run` answers each (its words) with one line.
pub fn serve(mut run: impl FnMut(&[&str]) -> String) {
    let stdout = io::stdout();
    for line in io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let reply = run(&words);
        let mut out = stdout.lock();
        writeln!(out, "{reply}").expect("stdout");
        out.flush().expect("stdout");
    }
}
