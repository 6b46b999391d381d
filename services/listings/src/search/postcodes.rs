//! Postcode → coordinates, from a CSV the operator loads (postcodes or outward
//! codes with their centroids). A small sample for the demo and tests ships with
//! the service.

use std::collections::HashMap;

use crate::domain::postcode;

/// The sample table used when no file is configured.
pub const SAMPLE_CSV: &str = include_str!("../../data/postcodes-sample.csv");

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
            match postcode::normalise(code) {
                Some(full) => table.full.insert(full, (lat, lon)),
                None => table
                    .outward
                    .insert(code.to_ascii_uppercase().replace(' ', ""), (lat, lon)),
            };
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.full.len() + self.outward.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The centroid of `input` (a full postcode, or an outward code), if known.
    pub fn lookup(&self, input: &str) -> Option<(f64, f64)> {
        if let Some(full) = postcode::normalise(input) {
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
