//! Saved alerts: "tell me when a group about X is listed within N km of Y".

use selfhelp_core::geo::haversine_km;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Topic codes; empty matches any topic.
    pub topics: Vec<String>,
    pub centre: (f64, f64),
    pub radius_km: f64,
}

impl AlertRule {
    /// Whether a newly listed group with `topics` meeting at `places` matches.
    /// Groups without a known place (online ones) match no area.
    pub fn matches(&self, topics: &[String], places: &[(f64, f64)]) -> bool {
        let topic_ok = self.topics.is_empty() || self.topics.iter().any(|t| topics.contains(t));
        topic_ok
            && places
                .iter()
                .any(|p| haversine_km(self.centre, *p) <= self.radius_km)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTTINGHAM: (f64, f64) = (52.9548, -1.1581);
    const DERBY: (f64, f64) = (52.9225, -1.4746);

    fn rule(topics: &[&str], radius_km: f64) -> AlertRule {
        AlertRule {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            centre: NOTTINGHAM,
            radius_km,
        }
    }

    #[test]
    fn topic_and_distance_must_both_match() {
        let topics = vec!["bereavement".to_string()];
        // Derby is about 21 km from Nottingham.
        assert!(rule(&["bereavement"], 25.0).matches(&topics, &[DERBY]));
        assert!(!rule(&["bereavement"], 15.0).matches(&topics, &[DERBY]));
        assert!(!rule(&["anxiety"], 25.0).matches(&topics, &[DERBY]));
        assert!(rule(&[], 25.0).matches(&topics, &[DERBY]));
        assert!(!rule(&[], 25.0).matches(&topics, &[]));
    }
}
