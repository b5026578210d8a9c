//! The JSON Schema export: it has the shape of a draft 2020-12 schema with closed objects,
//! and every valid fixture validates against it (checked by a small validator for exactly
//! the keywords the export uses; an unknown keyword fails the test instead of being ignored).

use std::fs;
use std::path::Path;

use regex::Regex;
use serde_json::{json, Map, Value};
use toml_edit::{Document, Item};

const KEYWORDS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "default",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "minimum",
    "maximum",
    "pattern",
    "anyOf",
    "not",
];

fn toml_to_json(item: &Item) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), toml_to_json(v)))
                .collect(),
        ),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| {
                    Value::Object(
                        t.iter()
                            .map(|(k, v)| (k.to_string(), toml_to_json(v)))
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn value_to_json(v: &toml_edit::Value) -> Value {
    use toml_edit::Value as V;
    match v {
        V::String(s) => json!(s.value()),
        V::Integer(i) => json!(i.value()),
        V::Float(f) => json!(f.value()),
        V::Boolean(b) => json!(b.value()),
        V::Datetime(d) => json!(d.value().to_string()),
        V::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        V::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        other => panic!("type {other} is not used by the export"),
    }
}

/// Errors of `v` against `s`, as "path: reason".
fn validate(s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let s = s.as_object().expect("schema is an object");
    let mut fail = |why: String| errs.push(format!("{path}: {why}"));
    for k in s.keys() {
        assert!(
            KEYWORDS.contains(&k.as_str()),
            "keyword {k} not understood by this validator"
        );
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        if !type_ok(t, v) {
            return fail(format!("{v} is not of type {t}"));
        }
    }
    scalar(s, v, path, errs);
    combinators(s, v, path, errs);
    if let Some(arr) = v.as_array() {
        array(s, arr, path, errs);
    }
    if let Some(obj) = v.as_object() {
        object(s, obj, path, errs);
    }
}

/// enum, const, minimum, maximum, pattern.
fn scalar(s: &Map<String, Value>, v: &Value, path: &str, errs: &mut Vec<String>) {
    let mut fail = |why: String| errs.push(format!("{path}: {why}"));
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            fail(format!("{v} not in enum"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            fail(format!("{v} != const {c}"));
        }
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            fail(format!("{v} below minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            fail(format!("{v} above maximum"));
        }
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
        if !Regex::new(p).expect("pattern compiles").is_match(text) {
            fail(format!("{v} does not match {p}"));
        }
    }
}

/// anyOf, not.
fn combinators(s: &Map<String, Value>, v: &Value, path: &str, errs: &mut Vec<String>) {
    let mut fail = |why: String| errs.push(format!("{path}: {why}"));
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|sub| {
            let mut e = Vec::new();
            validate(sub, v, path, &mut e);
            e.is_empty()
        });
        if !ok {
            fail(format!("{v} matches no alternative of anyOf"));
        }
    }
    if let Some(not) = s.get("not") {
        let mut e = Vec::new();
        validate(not, v, path, &mut e);
        if e.is_empty() {
            fail(format!("{v} matches a `not` schema"));
        }
    }
}

fn array(s: &Map<String, Value>, arr: &[Value], path: &str, errs: &mut Vec<String>) {
    let n = arr.len() as u64;
    if s.get("minItems")
        .and_then(Value::as_u64)
        .is_some_and(|m| n < m)
    {
        errs.push(format!("{path}: fewer than minItems"));
    }
    if s.get("maxItems")
        .and_then(Value::as_u64)
        .is_some_and(|m| n > m)
    {
        errs.push(format!("{path}: more than maxItems"));
    }
    if let Some(items) = s.get("items") {
        for (i, el) in arr.iter().enumerate() {
            validate(items, el, &format!("{path}[{i}]"), errs);
        }
    }
}

fn object(s: &Map<String, Value>, obj: &Map<String, Value>, path: &str, errs: &mut Vec<String>) {
    let props = s.get("properties").and_then(Value::as_object);
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !obj.contains_key(r.as_str().unwrap()) {
            errs.push(format!("{path}: missing required {r}"));
        }
    }
    for (k, v) in obj {
        let sub = format!("{path}.{k}");
        if let Some(names) = s.get("propertyNames") {
            validate(names, &json!(k), &sub, errs);
        }
        match props.and_then(|p| p.get(k)) {
            Some(ps) => validate(ps, v, &sub, errs),
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => errs.push(format!("{sub}: additional property")),
                Some(ap @ Value::Object(_)) => validate(ap, v, &sub, errs),
                _ => {}
            },
        }
    }
}

/// Every object schema is closed: additionalProperties false, or a schema for map values.
fn check_shape(s: &Value, path: &str, objects: &mut usize) {
    let o = s
        .as_object()
        .unwrap_or_else(|| panic!("{path}: schema is not an object"));
    for k in o.keys() {
        assert!(
            KEYWORDS.contains(&k.as_str()),
            "{path}: unknown keyword {k}"
        );
    }
    if o.get("type") == Some(&json!("object")) {
        *objects += 1;
        match o.get("additionalProperties") {
            Some(Value::Bool(false)) => assert!(o.contains_key("properties"), "{path}"),
            Some(Value::Object(_)) => assert!(
                o.contains_key("propertyNames"),
                "{path}: open map without propertyNames"
            ),
            other => panic!("{path}: object schema with additionalProperties {other:?}"),
        }
        assert!(
            o.get("description").is_some_and(Value::is_string),
            "{path}: no description"
        );
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            assert!(
                p.get("description").is_some_and(Value::is_string),
                "{path}.{k}: no description"
            );
            if let Some(d) = p.get("default") {
                let mut errs = Vec::new();
                validate(p, d, &format!("{path}.{k} default"), &mut errs);
                assert!(errs.is_empty(), "default does not validate: {errs:?}");
            }
            check_shape(p, &format!("{path}.{k}"), objects);
        }
    }
    for key in ["items", "additionalProperties", "propertyNames", "not"] {
        if let Some(sub @ Value::Object(_)) = o.get(key) {
            check_shape(sub, &format!("{path}/{key}"), objects);
        }
    }
    for (i, sub) in o
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_shape(sub, &format!("{path}/anyOf[{i}]"), objects);
    }
}

fn fixtures(dir: &str) -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut out: Vec<(String, Value)> = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = fs::read_to_string(&p).unwrap();
            if let Ok(doc) = Document::parse(text.as_str()) {
                out.push((
                    p.file_name().unwrap().to_string_lossy().into(),
                    toml_to_json(doc.as_item()),
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn schema_has_the_2020_12_shape() {
    let s = policy_schema::json_schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["type"], "object");
    assert_eq!(s["required"], json!(["version"]));
    let mut objects = 0;
    check_shape(&s, "#", &mut objects);
    // The root, defaults, ownership, zones and the five entry kinds.
    assert_eq!(objects, 9);
    assert_eq!(
        s["properties"]["rules"]["items"]["properties"]["action"]["enum"],
        json!(["require", "request", "permit", "block"])
    );
    assert_eq!(
        s["properties"]["defaults"]["properties"]["cipher"]["default"],
        "aes-gcm-128"
    );
    assert_eq!(
        s["properties"]["ownership"]["properties"]["reqid-range"]["default"],
        json!([0x7a00_0000u32, 0x7a00_00ffu32])
    );
    let authority = &s["properties"]["authorities"]["items"];
    assert_eq!(authority["required"], json!(["name", "ca-certificates"]));
    assert_eq!(
        authority["properties"]["revocation"]["enum"],
        json!(["strict", "relaxed"])
    );
    assert_eq!(authority["properties"]["scope"]["default"], "named");
    assert_eq!(
        s["properties"]["rules"]["items"]["properties"]["key-exchange"]["enum"],
        json!(["static", "ikev2"])
    );
    assert_eq!(
        s["properties"]["defaults"]["properties"]["key-exchange"]["default"],
        "static"
    );
}

#[test]
fn every_valid_fixture_validates() {
    let s = policy_schema::json_schema();
    let all = fixtures("valid");
    assert!(all.len() >= 3);
    for (name, v) in all {
        let mut errs = Vec::new();
        validate(&s, &v, "#", &mut errs);
        assert!(errs.is_empty(), "{name}: {errs:#?}");
    }
}

/// The validator is not vacuous: files with schema-level mistakes fail it.
#[test]
fn schema_level_mistakes_fail_validation() {
    let s = policy_schema::json_schema();
    let fixtures = fixtures("invalid");
    for name in [
        "unknown-keys.toml",
        "enum-typos.toml",
        "wrong-types.toml",
        "version-wrong.toml",
        "missing-required.toml",
        "empty-lists.toml",
        "zone-names.toml",
        "replay-window.toml",
        "bad-keys.toml",
        "protocol-values.toml",
        "ownership-values.toml",
        "port-zero.toml",
        "authorities.toml",
    ] {
        let (_, v) = fixtures.iter().find(|(n, _)| n == name).expect(name);
        let mut errs = Vec::new();
        validate(&s, v, "#", &mut errs);
        assert!(
            !errs.is_empty(),
            "{name} validated, but it has schema-level errors"
        );
    }
}
