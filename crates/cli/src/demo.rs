//! Demo data: a few hundred realistic groups across Nottinghamshire, listed
//! through the public API exactly as organisers and operators would (create,
//! submit, approve, set a schedule), so every event flows as in real use.

use std::path::Path;
use std::time::Duration;

use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use tonic::transport::Channel;

/// (town, outward postcode, latitude, longitude)
const TOWNS: &[(&str, &str, f64, f64)] = &[
    ("Nottingham", "NG1", 52.9540, -1.1496),
    ("Sneinton", "NG2", 52.9510, -1.1330),
    ("Sherwood", "NG5", 52.9990, -1.1560),
    ("Bulwell", "NG6", 53.0000, -1.1970),
    ("Lenton", "NG7", 52.9480, -1.1830),
    ("Beeston", "NG9", 52.9270, -1.2230),
    ("Carlton", "NG4", 52.9710, -1.0870),
    ("West Bridgford", "NG2", 52.9290, -1.1270),
    ("Clifton", "NG11", 52.9010, -1.1800),
    ("Hucknall", "NG15", 53.0390, -1.2040),
    ("Eastwood", "NG16", 53.0180, -1.3050),
    ("Sutton-in-Ashfield", "NG17", 53.1250, -1.2620),
    ("Mansfield", "NG18", 53.1420, -1.1980),
    ("Mansfield Woodhouse", "NG19", 53.1700, -1.1950),
    ("Newark", "NG24", 53.0760, -0.8090),
    ("Southwell", "NG25", 53.0770, -0.9560),
    ("Bingham", "NG13", 52.9530, -0.9520),
    ("Worksop", "S80", 53.3020, -1.1240),
    ("Retford", "DN22", 53.3220, -0.9430),
    ("Ollerton", "NG22", 53.2010, -1.0110),
];

/// (topic code, how groups about it are often named)
const KINDS: &[(&str, &str)] = &[
    ("bereavement", "Bereavement support group"),
    ("carers", "Carers' coffee morning"),
    ("diabetes", "Diabetes peer support"),
    ("cancer", "Living with cancer group"),
    ("chronic-pain", "Chronic pain self-management group"),
    ("long-covid", "Long Covid support circle"),
    ("stroke", "Stroke survivors' club"),
    ("anxiety", "Anxiety peer support"),
    ("depression", "Depression support group"),
    ("hearing-voices", "Hearing voices group"),
    ("alcohol", "Alcohol recovery group"),
    ("gambling", "Gambling recovery group"),
    ("autism", "Autistic adults' social group"),
    ("adhd", "ADHD parents' group"),
    ("parenting", "New parents' circle"),
    ("lgbtq", "LGBTQ+ peer support"),
    ("mens-groups", "Men's walk and talk"),
    ("womens-groups", "Women's wellbeing circle"),
    ("older-people", "Friendship café for older people"),
    ("young-people", "Young people's peer group"),
];

const VENUES: &[&str] = &[
    "Community Centre",
    "Library",
    "Friends Meeting House",
    "Methodist Church Hall",
    "Leisure Centre",
];
const WEEKDAYS: &[pb::Weekday] = &[
    pb::Weekday::Monday,
    pb::Weekday::Tuesday,
    pb::Weekday::Wednesday,
    pb::Weekday::Thursday,
    pb::Weekday::Friday,
    pb::Weekday::Saturday,
];

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", value);
    }
    req
}

/// Lists `count` demo groups unless the directory already has published groups.
pub async fn seed(
    listings_url: &str,
    data_dir: &Path,
    region: &str,
    count: usize,
) -> anyhow::Result<usize> {
    let channel = Channel::from_shared(listings_url.to_string())?
        .connect()
        .await?;
    let mut client = ListingsServiceClient::new(channel);
    let existing = client
        .search_groups(pb::SearchGroupsRequest::default())
        .await?
        .into_inner();
    if existing.page.map(|p| p.total_size).unwrap_or(0) > 0 {
        println!("demo data: the directory already has groups; nothing added");
        return Ok(0);
    }
    let (_, secret) = crate::dev_secret(data_dir)?;
    let mint = |sub: &str, roles: &[String]| {
        selfhelp_platform::auth::mint_hs256(&secret, sub, region, roles, Duration::from_secs(3600))
    };
    let operator = mint("demo-operator", &["operator".to_string()])?;
    for i in 0..count {
        let (town, outward, lat, lon) = TOWNS[i % TOWNS.len()];
        let (topic, kind) = KINDS[(i / TOWNS.len() + i) % KINDS.len()];
        let organiser = mint(&format!("demo-organiser-{}", i % 97), &[])?;
        // Spread venues around the town centre (a few hundred metres to ~3 km).
        let spread = |n: usize, scale: f64| ((n * 7919 % 1000) as f64 / 1000.0 - 0.5) * scale;
        let online = i % 7 == 0;
        let venue = pb::Venue {
            name: format!("{town} {}", VENUES[i % VENUES.len()]),
            address: format!("{} High Street", 1 + i % 120),
            town: town.into(),
            postcode: format!(
                "{outward} {}{}{}",
                1 + i % 9,
                (b'A' + (i % 20) as u8) as char,
                (b'B' + (i % 23) as u8) as char
            ),
            latitude: Some(lat + spread(i, 0.05)),
            longitude: Some(lon + spread(i + 13, 0.08)),
            accessibility: if i % 3 == 0 {
                "Step-free access, hearing loop".into()
            } else {
                String::new()
            },
            travel_notes: String::new(),
        };
        let request = pb::CreateGroupRequest {
            name: format!("{town} {kind}"),
            summary: format!(
                "A friendly {} in {town}, run by people who have been there.",
                kind.to_lowercase()
            ),
            description: format!(
                "We meet to share what helps, listen and support each other. Newcomers are always welcome; \
                 come along, have a cup of tea and stay as long as you like. Group number {i}."
            ),
            topics: vec![topic.into()],
            format: if online {
                pb::MeetingFormat::Online
            } else {
                pb::MeetingFormat::InPerson
            }
            .into(),
            join_policy: if i % 5 == 0 {
                pb::JoinPolicy::Approval
            } else {
                pb::JoinPolicy::Open
            }
            .into(),
            venues: if online { Vec::new() } else { vec![venue] },
            contact: Some(pb::Contact {
                name: "Group coordinator".into(),
                ..Default::default()
            }),
            cost: Some(pb::Cost {
                kind: if i % 4 == 0 {
                    pb::CostKind::Donation
                } else {
                    pb::CostKind::Free
                }
                .into(),
                description: String::new(),
            }),
            languages: vec!["en".into()],
            area_served: town.into(),
            ..Default::default()
        };
        let group = client
            .create_group(with_token(request, &organiser))
            .await?
            .into_inner();
        client
            .submit_group(with_token(
                pb::SubmitGroupRequest {
                    group_id: group.id.clone(),
                },
                &organiser,
            ))
            .await?;
        let approve = pb::ReviewGroupRequest {
            group_id: group.id.clone(),
            decision: pb::ReviewDecision::Approve.into(),
            note: String::new(),
        };
        client.review_group(with_token(approve, &operator)).await?;
        let schedule = if i % 3 == 0 {
            pb::Schedule {
                frequency: pb::Frequency::Monthly.into(),
                weekday: WEEKDAYS[i % WEEKDAYS.len()].into(),
                week_of_month: [1, 2, 3, -1][i % 4],
                ..Default::default()
            }
        } else {
            pb::Schedule {
                frequency: pb::Frequency::Weekly.into(),
                interval: 1 + (i % 2) as i32,
                weekday: WEEKDAYS[i % WEEKDAYS.len()].into(),
                ..Default::default()
            }
        };
        let (start, end) = [("10:30", "12:00"), ("14:00", "16:00"), ("19:00", "21:00")][i % 3];
        let schedule = pb::Schedule {
            valid_from: chrono::Utc::now().date_naive().to_string(),
            start_time: start.into(),
            end_time: end.into(),
            ..schedule
        };
        client
            .set_schedule(with_token(
                pb::SetScheduleRequest {
                    group_id: group.id,
                    schedule: Some(schedule),
                },
                &organiser,
            ))
            .await?;
        if (i + 1) % 50 == 0 || i + 1 == count {
            println!("demo data: {} of {count} groups listed", i + 1);
        }
    }
    Ok(count)
}
