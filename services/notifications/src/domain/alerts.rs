//! Saved alerts: "tell me when a group about X is listed within N km of Y"
//! (a postcode, or a point), or anywhere in the region, and, when asked,
//! groups meeting online or by phone, which anyone can join from anywhere.

use selfhelp_core::geo::haversine_km;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Topic codes; empty matches any topic. A broad topic covers the topics
    /// below it.
    pub topics: Vec<String>,
    /// Centre and radius (km); none for anywhere in the region.
    pub area: Option<((f64, f64), f64)>,
    pub include_online: bool,
}

/// What an alert is matched against: a newly listed group.
pub struct NewGroup<'a> {
    pub topics: &'a [String],
    /// The broader topics of `topics` (listings works them out).
    pub broader_topics: &'a [String],
    /// Where it meets in person (none for online-only groups).
    pub places: &'a [(f64, f64)],
    pub meets_online: bool,
}

impl AlertRule {
    pub fn matches(&self, group: &NewGroup<'_>) -> bool {
        let topic_ok = self.topics.is_empty()
            || self
                .topics
                .iter()
                .any(|t| group.topics.contains(t) || group.broader_topics.contains(t));
        let place_ok = match self.area {
            None => true,
            Some((centre, radius_km)) => group
                .places
                .iter()
                .any(|p| haversine_km(centre, *p) <= radius_km),
        };
        topic_ok && (place_ok || (self.include_online && group.meets_online))
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
            area: Some((NOTTINGHAM, radius_km)),
            include_online: false,
        }
    }

    fn group<'a>(topics: &'a [String], places: &'a [(f64, f64)]) -> NewGroup<'a> {
        NewGroup {
            topics,
            broader_topics: &[],
            places,
            meets_online: false,
        }
    }

    #[test]
    fn topic_and_distance_must_both_match() {
        let topics = vec!["bereavement".to_string()];
        // Derby is about 21 km from Nottingham.
        assert!(rule(&["bereavement"], 25.0).matches(&group(&topics, &[DERBY])));
        assert!(!rule(&["bereavement"], 15.0).matches(&group(&topics, &[DERBY])));
        assert!(!rule(&["anxiety"], 25.0).matches(&group(&topics, &[DERBY])));
        assert!(rule(&[], 25.0).matches(&group(&topics, &[DERBY])));
        assert!(!rule(&[], 25.0).matches(&group(&topics, &[])));
    }

    #[test]
    fn a_broad_topic_covers_the_topics_below_it() {
        let topics = vec!["anxiety".to_string()];
        let broader = vec!["mental-health".to_string()];
        let mut g = group(&topics, &[DERBY]);
        assert!(!rule(&["mental-health"], 25.0).matches(&g));
        g.broader_topics = &broader;
        assert!(rule(&["mental-health"], 25.0).matches(&g));
        assert!(!rule(&["carers"], 25.0).matches(&g));
    }

    #[test]
    fn online_groups_match_from_anywhere_only_when_asked() {
        let topics = vec!["bereavement".to_string()];
        let mut online = group(&topics, &[]);
        online.meets_online = true;
        let mut wants_online = rule(&["bereavement"], 5.0);
        assert!(!wants_online.matches(&online));
        wants_online.include_online = true;
        assert!(wants_online.matches(&online));
        // Far away, in person only: still no.
        assert!(!wants_online.matches(&group(&topics, &[DERBY])));
    }

    #[test]
    fn without_an_area_any_place_in_the_region_matches() {
        let topics = vec!["bereavement".to_string()];
        let anywhere = AlertRule {
            topics: vec!["bereavement".into()],
            area: None,
            include_online: false,
        };
        assert!(anywhere.matches(&group(&topics, &[DERBY])));
        assert!(anywhere.matches(&group(&topics, &[])));
    }
}
