//! The JSON Schema (draft 2020-12) of the policy file, generated from the field tables the
//! parser uses.

use serde_json::{json, Map, Value};

use crate::fields::{Field, Kind, TableSpec, ROOT};

const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";
const HEX_PATTERN: &str = "^0[xX][0-9a-fA-F]{1,8}$";
const KEY_PATTERN: &str = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";
const DURATION_PATTERN: &str = "^([0-9]+[smhd])+$";
const PORT_RANGE_PATTERN: &str = "^[0-9]{1,5}(-[0-9]{1,5})?$";
const ENDPOINT_PATTERN: &str =
    "^(any|(zone|host|cluster|ca):[A-Za-z0-9][A-Za-z0-9_.-]{0,62}|[0-9A-Fa-f.:]+(/[0-9]{1,3})?)$";
const ADDRESS_PATTERN: &str = "^[0-9A-Fa-f.:]+$";
const PREFIX_PATTERN: &str = "^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$";
const PATH_PATTERN: &str = "^/";
const IDENTITY_PATTERN: &str = "^(dns|email|ip|dn):.+$";

fn list(items: Value, min: usize) -> Value {
    json!({"type": "array", "items": items, "minItems": min})
}

fn kind_schema(kind: &Kind, required: bool) -> Value {
    match kind {
        Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Name => json!({"type": "string", "pattern": NAME_PATTERN}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::Duration { min, max } => json!({"anyOf": [
            {"type": "integer", "minimum": min, "maximum": max},
            {"type": "string", "pattern": DURATION_PATTERN}
        ]}),
        Kind::Range32 => json!({
            "type": "array",
            "items": {"anyOf": [
                {"type": "integer", "minimum": 0, "maximum": u32::MAX},
                {"type": "string", "pattern": HEX_PATTERN}
            ]},
            "minItems": 2,
            "maxItems": 2
        }),
        Kind::Key => json!({"type": "string", "pattern": KEY_PATTERN}),
        Kind::Addresses => list(json!({"type": "string", "pattern": ADDRESS_PATTERN}), 1),
        Kind::Prefixes => list(json!({"type": "string", "pattern": PREFIX_PATTERN}), 0),
        Kind::Names => list(
            json!({"type": "string", "pattern": NAME_PATTERN}),
            usize::from(required),
        ),
        Kind::Endpoints => list(json!({"type": "string", "pattern": ENDPOINT_PATTERN}), 1),
        Kind::Protocol => json!({"anyOf": [
            {"type": "string", "enum": crate::values::PROTOCOL_NAMES},
            {"type": "integer", "minimum": 1, "maximum": 255}
        ]}),
        Kind::Ports => list(
            json!({"anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": PORT_RANGE_PATTERN}
            ]}),
            1,
        ),
        Kind::Paths => list(
            json!({"type": "string", "pattern": PATH_PATTERN}),
            usize::from(required),
        ),
        Kind::Identities => list(json!({"type": "string", "pattern": IDENTITY_PATTERN}), 1),
        Kind::Table(spec) => table_schema(spec),
        Kind::TableArray(spec) => json!({"type": "array", "items": table_schema(spec)}),
        Kind::ZoneMap => json!({
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN, "not": {"const": "any"}},
            "additionalProperties": kind_schema(&Kind::Prefixes, false)
        }),
    }
}

fn field_schema(f: &Field) -> Value {
    let mut s = kind_schema(&f.kind, f.required);
    let obj = s.as_object_mut().expect("every kind is an object schema");
    obj.insert("description".into(), json!(f.doc));
    if let Some(d) = f.default {
        obj.insert("default".into(), d());
    }
    s
}

fn table_schema(spec: &TableSpec) -> Value {
    let props: Map<String, Value> = spec
        .fields
        .iter()
        .map(|f| (f.name.to_string(), field_schema(f)))
        .collect();
    let required: Vec<&str> = spec
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "type": "object",
        "description": spec.doc,
        "properties": props,
        "required": required,
        "additionalProperties": false
    })
}

pub(crate) fn json_schema() -> Value {
    let mut s = table_schema(&ROOT);
    let obj = s.as_object_mut().expect("object");
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert("title".into(), json!("xfrm-agent policy file"));
    s
}
