//! Time as stored: milliseconds since the Unix epoch (portable across SQLite and
//! PostgreSQL, and trivially comparable in SQL for leases and ordering).

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn to_timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_splits_milliseconds() {
        let ts = to_timestamp(1_700_000_000_123);
        assert_eq!(ts.seconds, 1_700_000_000);
        assert_eq!(ts.nanos, 123_000_000);
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
