//! The JSON report, written as `serde_json::to_writer_pretty` writes it
//! (two-space indentation) but faster: a report has millions of keys, and
//! serde_json's pretty formatter writes each one's line break and every
//! level of its indentation separately. Numbers carry the precision the
//! model has (`model_precision`), not float noise (38.61626799999999).

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// Writes `value` as pretty JSON, byte for byte what
/// `serde_json::to_writer_pretty` writes.
pub fn write_pretty<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(out, Pretty::default()))
}

/// A comma, a line break and the deepest indentation written at once: the
/// start of every array value and object key is a slice of it.
const BREAK: &[u8] = b",\n                                                                ";

/// serde_json's `PrettyFormatter` with a two-space indent, writing each
/// line break and its indentation in one piece.
#[derive(Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// A line break (after a comma unless `first`) and the current indentation.
    #[inline]
    fn line<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        let from = usize::from(first);
        match BREAK.get(from..2 + 2 * self.depth) {
            Some(piece) => w.write_all(piece),
            None => {
                w.write_all(BREAK.get(from..2).unwrap_or_default())?;
                for _ in 0..self.depth {
                    w.write_all(b"  ")?;
                }
                Ok(())
            }
        }
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.has_value {
            self.line(w, true)?;
        }
        w.write_all(bracket)
    }
}

/// Writes `value` as compact JSON on one line (JSON Lines), numbers at the
/// model's precision as in `write_pretty`.
pub fn write_compact<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(out, Compact))
}

/// serde_json's compact formatter, numbers at the model's precision.
struct Compact;

impl Formatter for Compact {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        serde_json::ser::CompactFormatter.write_f64(w, model_precision(value))
    }
}

/// `v` to the precision the model has: times, energies and byte shares to
/// the millionth of their unit (µs, µJ), ratios and other values below one
/// to six significant digits. Values past 2^53 millionths are left as they
/// are (rounding them would add error, not remove it).
pub fn model_precision(v: f64) -> f64 {
    const MICRO: f64 = 1e6;
    let a = v.abs();
    if a == 0.0 || !v.is_finite() {
        v
    } else if a >= 1.0 {
        if a * MICRO < 9_007_199_254_740_992.0 { round(v * MICRO) / MICRO } else { v }
    } else {
        // Six significant digits: scale to an integer of six digits (found
        // by comparison: a logarithm per number cost more than the rest).
        let mut scale = 1e6;
        let mut x = a;
        while x < 0.1 && scale < 1e300 {
            x *= 10.0;
            scale *= 10.0;
        }
        round(v * scale) / scale
    }
}

/// `x` rounded half away from zero, for |x| < 2^53: through an integer, as
/// `f64::round` is a library call on CPUs without SSE4.1 (every number of a
/// report passes here).
fn round(x: f64) -> f64 {
    let r = (x.abs() + 0.5) as i64 as f64;
    // x.abs() + 0.5 rounds up for the largest doubles below a half.
    let r = if r - x.abs() > 0.5 { r - 1.0 } else { r };
    r.copysign(x)
}

impl Formatter for Pretty {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        serde_json::ser::CompactFormatter.write_f64(w, model_precision(value))
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.line(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testkit::TestResult;

    /// Levels of indentation `BREAK` holds.
    const MAX_DEPTH: usize = (BREAK.len() - 2) / 2;

    fn both(v: &serde_json::Value) -> TestResult<(Vec<u8>, Vec<u8>)> {
        let mut ours = Vec::new();
        write_pretty(&mut ours, v)?;
        let mut theirs = Vec::new();
        serde_json::to_writer_pretty(&mut theirs, v)?;
        Ok((ours, theirs))
    }

    #[test]
    fn writes_what_serde_json_pretty_writes() -> TestResult {
        // Numbers of no more precision than the model's are written alike.
        let v = serde_json::json!({
            "a": 1, "b": [], "c": {}, "d": [1, [2, [3, {"e": "x\"y\n"}]], {}], "f": {"g": {"h": null, "i": 2.5}},
            "j": [[], [[]], {"k": []}], "l": true, "m": "é\u{1}"
        });
        let (ours, theirs) = both(&v)?;
        assert_eq!(String::from_utf8(ours)?, String::from_utf8(theirs)?);
        for scalar in [serde_json::json!(3), serde_json::json!("s"), serde_json::json!([]), serde_json::json!({})] {
            let (ours, theirs) = both(&scalar)?;
            assert_eq!(ours, theirs);
        }
        Ok(())
    }

    #[test]
    fn numbers_carry_the_model_precision_not_float_noise() -> TestResult {
        let mut out = Vec::new();
        let v = serde_json::json!([
            38.61626799999999,
            1700000000.1234567,
            0.12345678,
            0.000123456789,
            2.0,
            0.0,
            1e300,
            -3.5
        ]);
        write_pretty(&mut out, &v)?;
        let text = String::from_utf8(out)?;
        for want in ["38.616268", "1700000000.123457", "0.123457", "0.000123457", "2.0", "0.0", "1e+300", "-3.5"] {
            assert!(text.contains(want), "{want} not in {text}");
        }
        // Rounding twice changes nothing: a report read back is written the same.
        for x in [38.61626799999999, 0.12345678, 1700000000.1234567, 123.4565] {
            assert_eq!(model_precision(model_precision(x)).to_bits(), model_precision(x).to_bits());
        }
        Ok(())
    }

    #[test]
    fn nesting_deeper_than_the_ready_indentation_is_written_the_same() -> TestResult {
        let mut v = serde_json::json!({"leaf": [1, 2]});
        for i in 0..(MAX_DEPTH + 5) {
            v = if i % 2 == 0 { serde_json::json!({ "k": v, "n": i }) } else { serde_json::json!([v, i]) };
        }
        let (ours, theirs) = both(&v)?;
        assert_eq!(ours, theirs);
        Ok(())
    }
}
