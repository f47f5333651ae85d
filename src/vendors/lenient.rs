//! Reading vendor answers where the documents leave room. The seeds show one sample per
//! write; ServiceStack and .NET hosts differ in JSON casing (PascalCase or camelCase), in how
//! they wrap lists (a bare array or a response object with one list member) and in how they
//! write dates (with or without an offset, WCF's `/Date(ms)/`). These helpers accept every such
//! form once, so each vendor client reads answers the same way; entries lacking their key
//! fields are the caller's to skip, never to match.

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::civil::DateTime;
use serde_json::Value;

/// The member `name` of a JSON object, matched case-insensitively (`IdentityId`,
/// `identityId`, `identityid`); an exact match wins over a folded one.
pub fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let map = object.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A string member (`null` and non-strings are absent).
pub fn string(object: &Value, name: &str) -> Option<String> {
    field(object, name)?.as_str().map(str::to_string)
}

/// An integer member, written as a number or as a string of digits.
pub fn integer(object: &Value, name: &str) -> Option<i64> {
    match field(object, name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean member, written as a boolean or as `"true"`/`"false"`.
pub fn boolean(object: &Value, name: &str) -> Option<bool> {
    match field(object, name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Names of the member that wraps a list in a response DTO, in the order they are tried.
const LIST_MEMBERS: [&str; 4] = ["Result", "Results", "Items", "Data"];

/// The entries of a list answer: a bare array, or an object holding the list in a
/// `Result`/`Results`/`Items`/`Data` member (any casing), or in its only array member. None
/// when the answer holds no list at all (then it is not a listing).
pub fn list(answer: &Value) -> Option<&[Value]> {
    if let Some(items) = answer.as_array() {
        return Some(items);
    }
    for name in LIST_MEMBERS {
        if let Some(items) = field(answer, name).and_then(Value::as_array) {
            return Some(items);
        }
    }
    let mut arrays = answer.as_object()?.values().filter_map(Value::as_array);
    match (arrays.next(), arrays.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// A point in time as vendors write it: RFC 3339 with an offset; without one (usual for
/// .NET), taken as UTC wall-clock time; WCF's `/Date(1680268837000)/` or
/// `/Date(1680268837000+0200)/`; a bare date `2023-03-31`. None for anything else.
pub fn instant(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        // The offset after the milliseconds only says how to display them.
        let millis = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map_or(inner, |(i, _)| &inner[..i]);
        return Timestamp::from_millisecond(millis.parse().ok()?).ok();
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    let civil = text.parse::<DateTime>().ok().or_else(|| {
        text.parse::<k8s_openapi::jiff::civil::Date>()
            .ok()
            .map(|d| d.to_datetime(k8s_openapi::jiff::civil::Time::midnight()))
    })?;
    civil
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Whether two vendor times name the same instant (see [`instant`]); two texts that are not
/// times are the same only when equal.
pub fn same_instant(a: &str, b: &str) -> bool {
    match (instant(a), instant(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_in_any_casing() {
        let v = json!({"identityId": 7, "IsRole": "true", "name": "x", "Name": "exact"});
        assert_eq!(integer(&v, "IdentityId"), Some(7));
        assert_eq!(boolean(&v, "isRole"), Some(true));
        assert_eq!(string(&v, "Name").as_deref(), Some("exact"));
        assert_eq!(string(&v, "Missing"), None);
        assert_eq!(integer(&json!({"Id": "12"}), "id"), Some(12));
        assert_eq!(integer(&json!({"Id": null}), "Id"), None);
    }

    #[test]
    fn lists_bare_or_wrapped() {
        let one = json!({"Name": "a"});
        for answer in [
            json!([one]),
            json!({"Result": [one], "ResponseStatus": null}),
            json!({"results": [one]}),
            json!({"Items": [one], "Total": 1}),
            json!({"identities": [one], "responseStatus": {}}),
        ] {
            assert_eq!(list(&answer).map(<[Value]>::len), Some(1), "{answer}");
        }
        assert_eq!(list(&json!({"ResponseStatus": {}})), None);
        assert_eq!(list(&json!({"A": [], "B": []})), None, "ambiguous");
        assert_eq!(list(&json!("text")), None);
    }

    #[test]
    fn times_in_every_form() {
        let utc = "2023-03-31T13:20:37Z";
        for same in [
            "2023-03-31T13:20:37",
            "2023-03-31T15:20:37+02:00",
            "/Date(1680268837000)/",
            "/Date(1680268837000+0200)/",
            "2023-03-31T13:20:37.000Z",
        ] {
            assert!(same_instant(utc, same), "{same}");
        }
        assert!(same_instant("1990-05-01", "1990-05-01T00:00:00"));
        assert!(same_instant("1990-05-01", "/Date(641520000000)/"));
        assert!(!same_instant(utc, "2023-03-31T13:20:38Z"));
        assert!(!same_instant("soon", "later"));
        assert!(same_instant("soon", "soon"));
        assert_eq!(instant("/Date(99999999999999999999)/"), None);
    }
}
