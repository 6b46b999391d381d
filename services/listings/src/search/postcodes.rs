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
    /// Parses `postcode,latitude,longitude` lines (a header line is allowed);
    /// the first column may be a full postcode or an outward code such as `NG1`.
    pub fn parse(csv: &str) -> Result<Self, String> {
        let mut table = Self::default();
        for (n, line) in csv.lines().enumerate() {
            let line = line.trim();
            if line.is_empty()
                || line.starts_with('#')
                || (n == 0 && line.to_ascii_lowercase().starts_with("postcode"))
            {
                continue;
            }
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let [code, lat, lon] = cols[..] else {
                return Err(format!(
                    "line {}: expected postcode,latitude,longitude",
                    n + 1
                ));
            };
            let lat: f64 = lat
                .parse()
                .map_err(|_| format!("line {}: bad latitude", n + 1))?;
            let lon: f64 = lon
                .parse()
                .map_err(|_| format!("line {}: bad longitude", n + 1))?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(format!("line {}: coordinates out of range", n + 1));
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
        assert!(!PostcodeTable::parse(SAMPLE_CSV).unwrap().is_empty());
    }
}
