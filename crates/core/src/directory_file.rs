//! Directory files: ORUK `service` documents as an ORUK `Page` or a JSON
//! array, or a CSV of groups (a header row, then a group a row) turned into
//! such documents, so that the CLI's import and the staff's import page read
//! the same files the same way and listings checks them all alike.

use serde_json::{Value, json};

/// The `service` documents of `text`: CSV when it does not begin like JSON
/// (`[` or `{`), JSON otherwise.
pub fn services_in_text(text: &str) -> Result<Vec<Value>, String> {
    let start = text.trim_start();
    if start.starts_with('[') || start.starts_with('{') {
        let doc: Value =
            serde_json::from_str(start).map_err(|e| format!("this is not JSON: {e}"))?;
        services_in(doc)
    } else {
        services_from_csv(text)
    }
}

/// The `service` documents of an ORUK file.
pub fn services_in(doc: Value) -> Result<Vec<Value>, String> {
    match doc {
        Value::Array(services) => Ok(services),
        Value::Object(mut page) => match page.remove("contents") {
            Some(Value::Array(services)) => Ok(services),
            _ => Err(
                "the file is a JSON object without `contents`: give an ORUK Page of services or an array of them"
                    .into(),
            ),
        },
        _ => Err("the file holds neither an ORUK Page nor an array of services".into()),
    }
}

/// The columns a CSV of groups may have; `id` and `name` are required.
const CSV_COLUMNS: [&str; 26] = [
    "id",
    "name",
    "summary",
    "description",
    "topics",
    "format",
    "venue_name",
    "address",
    "town",
    "postcode",
    "frequency",
    "interval",
    "weekday",
    "week_of_month",
    "day_of_month",
    "start_time",
    "end_time",
    "valid_from",
    "contact_name",
    "email",
    "phone",
    "website",
    "languages",
    "minimum_age",
    "maximum_age",
    "cost",
];

/// Extra columns read besides [`CSV_COLUMNS`].
const CSV_MORE_COLUMNS: [&str; 3] = ["cost_description", "area_served", "assured_date"];

/// A CSV of groups (a header row, then a group a row) as ORUK `service`
/// documents, so the same checks apply to both. Lists are `;`-separated.
pub fn services_from_csv(text: &str) -> Result<Vec<Value>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the CSV's header row: {e}"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let known = |h: &str| CSV_COLUMNS.contains(&h) || CSV_MORE_COLUMNS.contains(&h);
    let unknown: Vec<&str> = headers
        .iter()
        .map(String::as_str)
        .filter(|h| !known(h))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown CSV columns {unknown:?}; the columns are {} and {}",
            CSV_COLUMNS.join(", "),
            CSV_MORE_COLUMNS.join(", ")
        ));
    }
    for required in ["id", "name"] {
        if !headers.iter().any(|h| h == required) {
            return Err(format!("the CSV needs a column `{required}`"));
        }
    }
    let mut services = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("CSV row {}: {e}", n + 2))?;
        let cell = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .unwrap_or_default()
                .to_string()
        };
        services.push(service_from_row(&cell));
    }
    Ok(services)
}

/// One CSV row (`cell` reads a column; empty when absent) as a `service` document.
fn service_from_row(cell: &dyn Fn(&str) -> String) -> Value {
    let list = |name: &str| -> Vec<String> {
        cell(name)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut doc = json!({
        "id": cell("id"),
        "name": cell("name"),
        "description": cell("description"),
        "organization": {"name": cell("name"), "description": cell("summary")},
        "attributes": list("topics").iter()
            .map(|code| json!({"taxonomy_term": {"code": code}}))
            .collect::<Vec<_>>(),
        "email": cell("email"),
        "url": cell("website"),
        "languages": list("languages").iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
    });
    let obj = doc.as_object_mut().expect("an object");
    if cell("summary").is_empty() {
        // No summary: the organisation says what the description says.
        obj.insert(
            "organization".into(),
            json!({"name": cell("name"), "description": cell("description")}),
        );
    }
    if ["venue_name", "address", "town", "postcode"]
        .iter()
        .any(|c| !cell(c).is_empty())
    {
        obj.insert(
            "service_at_locations".into(),
            json!([{"location": {
                "name": cell("venue_name"),
                "addresses": [{
                    "address_1": cell("address"),
                    "city": cell("town"),
                    "postal_code": cell("postcode"),
                }],
            }}]),
        );
    }
    if !cell("frequency").is_empty() || !cell("weekday").is_empty() {
        let day = weekday_code(&cell("weekday"));
        // Passed on as written: the import refuses what it cannot read, by name.
        let freq = match cell("frequency").to_ascii_uppercase() {
            f if f.is_empty() => "WEEKLY".to_string(),
            f => f,
        };
        let monthly = freq == "MONTHLY";
        let mut schedule = json!({
            "freq": freq,
            "interval": cell("interval"),
            "opens_at": cell("start_time"),
            "closes_at": cell("end_time"),
            "valid_from": cell("valid_from"),
            "attending_type": cell("format"),
        });
        if monthly && !cell("day_of_month").is_empty() {
            schedule["bymonthday"] = cell("day_of_month").into();
        } else if monthly {
            schedule["byday"] = format!("{}{day}", cell("week_of_month")).into();
        } else {
            schedule["byday"] = day.into();
        }
        obj.insert("schedules".into(), json!([schedule]));
    }
    if !cell("contact_name").is_empty() || !cell("phone").is_empty() {
        obj.insert(
            "contacts".into(),
            json!([{"name": cell("contact_name"), "phones": [{"number": cell("phone")}]}]),
        );
    }
    for age in ["minimum_age", "maximum_age"] {
        obj.insert(age.into(), cell(age).into());
    }
    if !cell("cost").is_empty() {
        obj.insert(
            "cost_options".into(),
            json!([{"option": cell("cost"), "amount_description": cell("cost_description")}]),
        );
    }
    if !cell("area_served").is_empty() {
        obj.insert(
            "service_areas".into(),
            json!([{"name": cell("area_served")}]),
        );
    }
    if !cell("assured_date").is_empty() {
        obj.insert("assured_date".into(), cell("assured_date").into());
    }
    doc
}

/// `Wednesday`, `wed` or `WE` as the iCalendar code `WE` (anything else as given,
/// for the import to refuse by name).
fn weekday_code(day: &str) -> String {
    let d = day.trim().to_ascii_uppercase();
    ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
        .iter()
        .zip(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"])
        .find(|(code, name)| d == **code || d.starts_with(name))
        .map_or(d.clone(), |(code, _)| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_read_as_json_or_as_csv() {
        assert_eq!(services_in_text(" [{\"id\": \"a\"}]").unwrap().len(), 1);
        assert_eq!(services_in_text("id,name\na,A\nb,B\n").unwrap().len(), 2);
        assert!(
            services_in_text("{not json")
                .unwrap_err()
                .contains("not JSON")
        );
    }

    #[test]
    fn files_hold_a_page_or_an_array_of_services() {
        let page = json!({"total_items": 1, "contents": [{"id": "a"}]});
        assert_eq!(services_in(page).unwrap().len(), 1);
        assert_eq!(
            services_in(json!([{"id": "a"}, {"id": "b"}]))
                .unwrap()
                .len(),
            2
        );
        assert!(services_in(json!({"id": "a"})).is_err());
        assert!(services_in(json!("text")).is_err());
    }

    #[test]
    fn a_csv_row_becomes_a_service_document() {
        let csv = "id,name,summary,topics,venue_name,town,postcode,frequency,weekday,week_of_month,start_time,end_time,valid_from,format,phone,languages,cost\n\
                   g-1,Carers' café,Tea and talk,carers;bereavement,Library,Beeston,NG9 1GA,monthly,Wednesday,2,10:00,12:00,2026-12-01,In person,0115 000,en;pl,Free\n\
                   g-2,Online circle,,,,,,weekly,fri,,19:00,20:00,2026-12-04,Online,,,\n";
        let services = services_from_csv(csv).unwrap();
        assert_eq!(services.len(), 2);
        let first = &services[0];
        assert_eq!(first["id"], "g-1");
        assert_eq!(first["organization"]["description"], "Tea and talk");
        assert_eq!(
            first["attributes"][1]["taxonomy_term"]["code"],
            "bereavement"
        );
        assert_eq!(first["schedules"][0]["byday"], "2WE");
        assert_eq!(first["schedules"][0]["freq"], "MONTHLY");
        assert_eq!(
            first["service_at_locations"][0]["location"]["addresses"][0]["postal_code"],
            "NG9 1GA"
        );
        assert_eq!(first["contacts"][0]["phones"][0]["number"], "0115 000");
        assert_eq!(first["cost_options"][0]["option"], "Free");
        let second = &services[1];
        assert_eq!(second["schedules"][0]["byday"], "FR");
        assert!(second.get("service_at_locations").is_none());
        assert!(
            services_from_csv("id,name,colour\n1,x,red\n")
                .unwrap_err()
                .contains("colour")
        );
        assert!(services_from_csv("name\nx\n").is_err(), "an id is needed");
    }
}
