//! UK postcodes: the format check and normalisation ("ng15fs" → "NG1 5FS"),
//! and the table of postcode → coordinates a region loads from a CSV
//! (postcodes or outward codes with their centroids). Listings places
//! searches and venues with it; notifications places alerts.

use std::collections::HashMap;

/// Returns the normalised postcode, or `None` when `input` is not a UK postcode.
/// Checks the shape only (outward code A9, A99, AA9, AA99, A9A or AA9A, then an
/// inward code 9AA); whether it exists is a [`PostcodeTable`] lookup.
pub fn normalise(input: &str) -> Option<String> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = {
        let b = inward.as_bytes();
        b[0].is_ascii_digit() && b[1].is_ascii_alphabetic() && b[2].is_ascii_alphabetic()
    };
    let shape: String = outward
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                '9'
            } else if c.is_ascii_alphabetic() {
                'A'
            } else {
                '?'
            }
        })
        .collect();
    let outward_ok = matches!(
        shape.as_str(),
        "A9" | "A99" | "AA9" | "AA99" | "A9A" | "AA9A"
    );
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

/// The sample table used when no file is configured (a few Nottinghamshire
/// codes, for the demo and tests).
pub const SAMPLE_CSV: &str = include_str!("../data/postcodes-sample.csv");

#[derive(Debug, Default, Clone)]
pub struct PostcodeTable {
    full: HashMap<String, (f64, f64)>,
    outward: HashMap<String, (f64, f64)>,
}

impl PostcodeTable {
    /// Parses `postcode,latitude,longitude` records (CSV: quoting as the csv
    /// crate reads it; a header record and `#` comment lines are allowed); the
    /// first column may be a full postcode or an outward code such as `NG1`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut table = Self::default();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("record {}: {e}", n + 1))?;
            let line = record.position().map_or(n as u64 + 1, |p| p.line());
            let cols: Vec<&str> = record.iter().collect();
            if cols.iter().all(|c| c.is_empty())
                || (n == 0 && cols[0].eq_ignore_ascii_case("postcode"))
            {
                continue;
            }
            let [code, lat, lon] = cols[..] else {
                return Err(format!("line {line}: expected postcode,latitude,longitude"));
            };
            let lat: f64 = lat
                .parse()
                .map_err(|_| format!("line {line}: bad latitude"))?;
            let lon: f64 = lon
                .parse()
                .map_err(|_| format!("line {line}: bad longitude"))?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(format!("line {line}: coordinates out of range"));
            }
            match normalise(code) {
                Some(full) => table.full.insert(full, (lat, lon)),
                None => table
                    .outward
                    .insert(code.to_ascii_uppercase().replace(' ', ""), (lat, lon)),
            };
        }
        Ok(table)
    }

    /// The table in `file`, or the shipped sample when `file` is empty;
    /// errors name `setting`, the key that gave the file.
    pub fn load(file: &str, setting: &str) -> Result<Self, String> {
        let text = if file.is_empty() {
            SAMPLE_CSV.to_string()
        } else {
            std::fs::read_to_string(file).map_err(|e| format!("{setting} {file}: {e}"))?
        };
        Self::parse(&text).map_err(|e| format!("{setting}: {e}"))
    }

    pub fn len(&self) -> usize {
        self.full.len() + self.outward.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The centroid of `input` (a full postcode, or an outward code), if known.
    pub fn lookup(&self, input: &str) -> Option<(f64, f64)> {
        if let Some(full) = normalise(input) {
            if let Some(p) = self.full.get(&full) {
                return Some(*p);
            }
            let outward = full.split(' ').next().unwrap_or_default();
            return self.outward.get(outward).copied();
        }
        self.outward
            .get(&input.trim().to_ascii_uppercase().replace(' ', ""))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_real_shapes() {
        assert_eq!(normalise("ng1 5fs").as_deref(), Some("NG1 5FS"));
        assert_eq!(normalise("NG15FS").as_deref(), Some("NG1 5FS"));
        assert_eq!(normalise("SW1A 1AA").as_deref(), Some("SW1A 1AA"));
        assert_eq!(normalise("M1 1AE").as_deref(), Some("M1 1AE"));
        assert_eq!(normalise("DN55 1PT").as_deref(), Some("DN55 1PT"));
    }

    #[test]
    fn rejects_non_postcodes() {
        for bad in [
            "",
            "12345",
            "NG1",
            "NOT A CODE",
            "NG1 5F5",
            "1G1 5FS",
            "NG1-5FS",
            "ŃG1 5FS",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
    }

    #[test]
    fn full_codes_then_outward_codes() {
        let t = PostcodeTable::parse(
            "postcode,latitude,longitude\nNG1,52.95,-1.15\nNG1 5FS,52.9536,-1.1505\n",
        )
        .unwrap();
        assert_eq!(t.lookup("ng1 5fs"), Some((52.9536, -1.1505)));
        assert_eq!(
            t.lookup("NG1 6AA"),
            Some((52.95, -1.15)),
            "falls back to the outward code"
        );
        assert_eq!(t.lookup("ng1"), Some((52.95, -1.15)));
        assert_eq!(t.lookup("LS1 4AP"), None);
        assert!(PostcodeTable::parse("NG1,north,-1").is_err());
        let wrong = PostcodeTable::parse("# comment\nNG1,52.95,-1.15\nNG2,52.9\n").unwrap_err();
        assert!(wrong.contains("line 3"), "{wrong}");
        // Quoted fields, as spreadsheets write them.
        let quoted = PostcodeTable::parse("\"NG7 2RD\",\"52.94\",\"-1.19\"\r\n").unwrap();
        assert_eq!(quoted.lookup("NG7 2RD"), Some((52.94, -1.19)));
        assert!(!PostcodeTable::parse(SAMPLE_CSV).unwrap().is_empty());
    }
}
