//! The region's topic taxonomy: a tree of terms groups are tagged with.

use selfhelp_core::validation::Violations;

/// Namespace for topic ids: `uuid_v5(namespace, "<region>/<code>")`, so every
/// replica seeds the same ids and a code keeps its id for good.
const TOPIC_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b1f_5d5e_2f0c_4a8e_9a57_5e1f_c0de_7091);

pub const MAX_CODE: usize = 64;
pub const MAX_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 1_000;

pub fn stable_id(region: &str, code: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&TOPIC_NAMESPACE, format!("{region}/{code}").as_bytes())
}

/// The starting taxonomy of a new region: (code, name, parent code).
pub const DEFAULT_TAXONOMY: &[(&str, &str, Option<&str>)] = &[
    ("bereavement", "Bereavement and loss", None),
    ("carers", "Carers", None),
    ("long-term-conditions", "Long-term conditions", None),
    ("arthritis", "Arthritis", Some("long-term-conditions")),
    ("cancer", "Cancer", Some("long-term-conditions")),
    ("chronic-pain", "Chronic pain", Some("long-term-conditions")),
    ("diabetes", "Diabetes", Some("long-term-conditions")),
    (
        "heart-conditions",
        "Heart conditions",
        Some("long-term-conditions"),
    ),
    ("long-covid", "Long Covid", Some("long-term-conditions")),
    (
        "multiple-sclerosis",
        "Multiple sclerosis",
        Some("long-term-conditions"),
    ),
    ("stroke", "Stroke", Some("long-term-conditions")),
    ("mental-health", "Mental health", None),
    ("anxiety", "Anxiety", Some("mental-health")),
    ("depression", "Depression", Some("mental-health")),
    ("bipolar", "Bipolar", Some("mental-health")),
    (
        "eating-disorders",
        "Eating disorders",
        Some("mental-health"),
    ),
    ("hearing-voices", "Hearing voices", Some("mental-health")),
    ("addiction", "Addiction and recovery", None),
    ("alcohol", "Alcohol", Some("addiction")),
    ("drugs", "Drugs", Some("addiction")),
    ("gambling", "Gambling", Some("addiction")),
    ("neurodiversity", "Neurodiversity", None),
    ("autism", "Autism", Some("neurodiversity")),
    ("adhd", "ADHD", Some("neurodiversity")),
    ("parenting", "Parenting and families", None),
    ("disability", "Disability", None),
    ("lgbtq", "LGBTQ+", None),
    ("mens-groups", "Men's groups", None),
    ("womens-groups", "Women's groups", None),
    ("older-people", "Older people", None),
    ("young-people", "Young people", None),
];

/// What the rules need to know about a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNode {
    pub id: String,
    pub code: String,
    pub parent_id: Option<String>,
    pub retired: bool,
    pub replaced_by: Option<String>,
}

/// Checks a topic code; `field` names it in the violation.
pub fn check_code(v: &mut Violations, field: &str, code: &str) {
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        v.add(
            field,
            "must be a topic code: a-z, 0-9 and '-', at most 64 characters",
        );
    }
}

/// Codes a search for `code` covers: the topic, everything below it, and retired
/// topics whose replacement is among those (transitively).
pub fn search_codes(topics: &[TopicNode], code: &str) -> Vec<String> {
    let Some(root) = topics.iter().find(|t| t.code == code) else {
        return vec![code.to_string()];
    };
    let mut ids = vec![root.id.clone()];
    loop {
        let before = ids.len();
        for t in topics {
            let below = t.parent_id.as_ref().is_some_and(|p| ids.contains(p));
            let replaced_into =
                t.retired && t.replaced_by.as_ref().is_some_and(|r| ids.contains(r));
            if (below || replaced_into) && !ids.contains(&t.id) {
                ids.push(t.id.clone());
            }
        }
        if ids.len() == before {
            break;
        }
    }
    topics
        .iter()
        .filter(|t| ids.contains(&t.id))
        .map(|t| t.code.clone())
        .collect()
}

/// The broader topics of `codes`: each one's parent, its parent's parent, up
/// to the top, and for a retired topic its replacement's (so a subscription
/// to a broad topic, or to a topic that replaced an old one, covers it). The
/// codes themselves are not included; each broader code appears once.
pub fn broader_codes(topics: &[TopicNode], codes: &[String]) -> Vec<String> {
    let by_id = |id: &str| topics.iter().find(|t| t.id == id);
    let mut found: Vec<String> = Vec::new();
    let mut todo: Vec<&TopicNode> = topics.iter().filter(|t| codes.contains(&t.code)).collect();
    // Each topic is visited once, so a cycle in bad data cannot loop.
    let mut seen: Vec<&str> = todo.iter().map(|t| t.id.as_str()).collect();
    while let Some(t) = todo.pop() {
        for up in [t.parent_id.as_deref(), t.replaced_by.as_deref()]
            .into_iter()
            .flatten()
        {
            if let Some(next) = by_id(up)
                && !seen.contains(&next.id.as_str())
            {
                seen.push(&next.id);
                if !codes.contains(&next.code) && !found.contains(&next.code) {
                    found.push(next.code.clone());
                }
                todo.push(next);
            }
        }
    }
    found.sort();
    found
}

/// True when putting `id` under `new_parent` would make it its own ancestor.
pub fn would_cycle(topics: &[TopicNode], id: &str, new_parent: &str) -> bool {
    let mut current = Some(new_parent.to_string());
    let mut steps = 0;
    while let Some(at) = current {
        if at == id {
            return true;
        }
        steps += 1;
        if steps > topics.len() {
            return true; // already inconsistent; refuse rather than loop
        }
        current = topics
            .iter()
            .find(|t| t.id == at)
            .and_then(|t| t.parent_id.clone());
    }
    false
}

/// Orders topics so parents come before their children (then by code).
pub fn parents_first(mut topics: Vec<TopicNode>) -> Vec<TopicNode> {
    topics.sort_by(|a, b| a.code.cmp(&b.code));
    let mut out: Vec<TopicNode> = Vec::with_capacity(topics.len());
    while !topics.is_empty() {
        let placed: Vec<String> = out.iter().map(|t| t.id.clone()).collect();
        let (ready, rest): (Vec<_>, Vec<_>) = topics
            .into_iter()
            .partition(|t| t.parent_id.as_ref().is_none_or(|p| placed.contains(p)));
        if ready.is_empty() {
            // Orphans (should not exist): keep them rather than drop them.
            out.extend(rest);
            break;
        }
        out.extend(ready);
        topics = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(id: &str, code: &str, parent: Option<&str>) -> TopicNode {
        TopicNode {
            id: id.into(),
            code: code.into(),
            parent_id: parent.map(str::to_string),
            retired: false,
            replaced_by: None,
        }
    }

    #[test]
    fn broader_codes_climb_to_the_top_and_through_replacements() {
        let mut old = coded("4", "low-mood", Some("1"));
        old.retired = true;
        old.replaced_by = Some("3".into());
        let topics = vec![
            coded("1", "mental-health", None),
            coded("2", "anxiety", Some("1")),
            coded("3", "depression", Some("1")),
            old,
            coded("5", "carers", None),
        ];
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            broader_codes(&topics, &codes(&["anxiety"])),
            codes(&["mental-health"])
        );
        assert_eq!(
            broader_codes(&topics, &codes(&["low-mood"])),
            codes(&["depression", "mental-health"])
        );
        assert!(broader_codes(&topics, &codes(&["carers"])).is_empty());
        assert!(broader_codes(&topics, &codes(&["mental-health", "anxiety"])).is_empty());
        assert!(broader_codes(&topics, &codes(&["unknown"])).is_empty());
    }

    fn node(id: &str, parent: Option<&str>) -> TopicNode {
        TopicNode {
            id: id.into(),
            code: id.into(),
            parent_id: parent.map(Into::into),
            retired: false,
            replaced_by: None,
        }
    }

    #[test]
    fn ids_are_stable_and_per_region() {
        assert_eq!(
            stable_id("notts", "diabetes"),
            stable_id("notts", "diabetes")
        );
        assert_ne!(
            stable_id("notts", "diabetes"),
            stable_id("leeds", "diabetes")
        );
        assert_eq!(stable_id("notts", "diabetes").get_version_num(), 5);
    }

    #[test]
    fn default_taxonomy_is_consistent() {
        for (code, _, parent) in DEFAULT_TAXONOMY {
            let mut v = Violations::new();
            check_code(&mut v, "code", code);
            assert!(v.is_empty(), "{code}");
            if let Some(p) = parent {
                assert!(
                    DEFAULT_TAXONOMY.iter().any(|(c, _, _)| c == p),
                    "{code} has unknown parent {p}"
                );
            }
        }
    }

    #[test]
    fn search_covers_children_and_replaced_topics() {
        let mut topics = vec![
            node("ltc", None),
            node("diabetes", Some("ltc")),
            node("type-1", Some("diabetes")),
            node("other", None),
        ];
        topics.push(TopicNode {
            id: "old".into(),
            code: "old".into(),
            parent_id: None,
            retired: true,
            replaced_by: Some("diabetes".into()),
        });
        let mut codes = search_codes(&topics, "ltc");
        codes.sort();
        assert_eq!(codes, vec!["diabetes", "ltc", "old", "type-1"]);
        assert_eq!(search_codes(&topics, "other"), vec!["other"]);
    }

    #[test]
    fn cycles_are_detected() {
        let topics = vec![node("a", None), node("b", Some("a")), node("c", Some("b"))];
        assert!(would_cycle(&topics, "a", "c"));
        assert!(would_cycle(&topics, "b", "b"));
        assert!(!would_cycle(&topics, "c", "a"));
    }

    #[test]
    fn parents_come_first() {
        let ordered = parents_first(vec![
            node("z-child", Some("a")),
            node("a", None),
            node("b", Some("z-child")),
        ]);
        let ids: Vec<_> = ordered.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "z-child", "b"]);
    }
}
