//! The wall clock, read here and nowhere else, and how its times are shown: to people as a
//! UTC date with a relative hint, in JSON as Unix seconds (the numbers tools rely on).

use crate::plan::Timestamp;

/// The system clock now (a clock before 1970 reads as the epoch).
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `2026-12-07 18:00:00 UTC, in 23 min` (or `…, 5 s ago`): `t` for a person reading at `now`.
pub fn human(t: Timestamp, now: Timestamp) -> String {
    format!("{}, {}", utc_date(t), relative(t, now))
}

/// `2026-12-07 18:00:00 UTC` (whole seconds).
pub fn utc_date(t: Timestamp) -> String {
    let secs = i64::try_from(t.secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => format!("unix time {}", t.secs()),
    }
}

/// `in 23 min`, `5 s ago`, `now`: the distance from `now` to `t` in its largest unit
/// (seconds under two minutes, minutes under two hours, hours under two days, then days).
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let (ahead, d) = if t >= now {
        (true, (t.0 - now.0) / 1_000_000_000)
    } else {
        (false, (now.0 - t.0) / 1_000_000_000)
    };
    let amount = match d {
        0 => return "now".into(),
        d if d < 120 => format!("{d} s"),
        d if d < 2 * 3600 => format!("{} min", d / 60),
        d if d < 2 * 86_400 => format!("{} h", d / 3600),
        d => format!("{} d", d / 86_400),
    };
    if ahead {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Serde as Unix seconds with a fraction (microsecond precision: an f64 holds no more
/// at today's dates), the unit the daemon's JSON view has always used.
pub mod unix_secs_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::plan::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(std::time::Duration::from_nanos(t.nanos()).as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let secs = f64::deserialize(d)?;
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(serde::de::Error::custom(format!(
                "{secs} is not a Unix time"
            )));
        }
        // Rounded to microseconds so that what was written reads back the same.
        let micros = (secs * 1e6).round() as u64;
        Ok(Timestamp(micros.saturating_mul(1000)))
    }
}

/// Serde of an optional time as whole Unix seconds.
pub mod opt_unix_secs {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::plan::Timestamp;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Timestamp::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 17:37:00 UTC.
    const NOW: Timestamp = Timestamp(1_796_665_020 * 1_000_000_000);

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_secs(NOW.secs().checked_add_signed(offset).unwrap())
    }

    #[test]
    fn dates_are_utc_with_a_hint_in_the_largest_unit() {
        assert_eq!(
            human(at(23 * 60), NOW),
            "2026-12-07 18:00:00 UTC, in 23 min"
        );
        assert_eq!(human(at(-5), NOW), "2026-12-07 17:36:55 UTC, 5 s ago");
        assert_eq!(human(NOW, NOW), "2026-12-07 17:37:00 UTC, now");
        assert_eq!(relative(at(119), NOW), "in 119 s");
        assert_eq!(relative(at(3 * 3600), NOW), "in 3 h");
        assert_eq!(relative(at(-3 * 86_400), NOW), "3 d ago");
        assert_eq!(utc_date(Timestamp(0)), "1970-01-01 00:00:00 UTC");
        // Sub-second parts neither show nor round a second up.
        assert_eq!(
            utc_date(Timestamp(NOW.0 + 999_999_999)),
            "2026-12-07 17:37:00 UTC"
        );
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Times {
        #[serde(with = "unix_secs_f64")]
        at: Timestamp,
        #[serde(with = "opt_unix_secs")]
        next: Option<Timestamp>,
    }

    #[test]
    fn json_keeps_unix_seconds_and_reads_back() {
        let t = Times {
            at: Timestamp(NOW.0 + 250_000_000),
            next: Some(at(60)),
        };
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, r#"{"at":1796665020.25,"next":1796665080}"#);
        assert_eq!(serde_json::from_str::<Times>(&text).unwrap(), t);
        let none = r#"{"at":0.0,"next":null}"#;
        assert_eq!(serde_json::from_str::<Times>(none).unwrap().next, None);
        for bad in [r#"{"at":-1.0,"next":null}"#, r#"{"at":"x","next":null}"#] {
            assert!(serde_json::from_str::<Times>(bad).is_err(), "{bad}");
        }
    }
}
