//! Kubernetes' CEL runtime as the API double (and the admission-policy parity test) run it: the
//! environment, and JSON to CEL and back. One place, so the double and the parity test evaluate
//! policies the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cel::common::types::{CelStruct, Type};
use cel::common::value::{CowVal, Val};
use cel::objects::Key;
use cel::{Env, ExecutionError, StructType, Value as Cel};
use serde_json::{Value, json};

/// `Object`, `Object.metadata`, ...: the apply-configuration types, taking any field.
struct ApplyConfigurationType(Type);

impl StructType for ApplyConfigurationType {
    fn get_type(&self) -> &Type {
        &self.0
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let mut value = CelStruct::new(self.0.name().to_owned());
        for (name, field) in fields {
            value.add_field_value(name, field);
        }
        Ok(Box::new(value))
    }
}

/// Every `Object.a.b` type name a source constructs (`Object.a.b{...}`), with its parents.
pub fn apply_configuration_types(sources: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in sources {
        let mut rest = *source;
        while let Some(at) = rest.find("Object") {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(tail.len());
            let name = tail[..len].trim_end_matches('.');
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                let mut prefix = String::new();
                for part in name.split('.') {
                    if !prefix.is_empty() {
                        prefix.push('.');
                    }
                    prefix.push_str(part);
                    names.insert(prefix.clone());
                }
            }
            rest = &tail[len.max(1)..];
        }
    }
    names
}

/// Kubernetes' CEL environment as far as admission policies need it: the standard library and
/// macros, the strings extension (`trim`, `split`, `join`, ...), and the apply-configuration
/// types that `sources` construct.
pub fn env(sources: &[&str]) -> Result<Arc<Env>, String> {
    env_with_types(apply_configuration_types(sources))
}

/// [`env`] with the apply-configuration type names given (`Object`, `Object.metadata`, ...).
pub fn env_with_types(names: impl IntoIterator<Item = String>) -> Result<Arc<Env>, String> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .map_err(|e| e.to_string())?;
    for name in names {
        env.add_type(ApplyConfigurationType(Type::new_struct(name)))
            .map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(env))
}

pub fn to_cel(value: &Value) -> Cel {
    cel::to_value(value).unwrap_or(Cel::Null)
}

/// A CEL result as JSON (apply configurations, messages).
pub fn from_cel(value: &Cel) -> Result<Value, String> {
    Ok(match value {
        Cel::Null => Value::Null,
        Cel::Bool(b) => json!(b),
        Cel::Int(i) => json!(i),
        Cel::UInt(u) => json!(u),
        Cel::Float(f) => json!(f),
        Cel::String(s) => json!(s.as_str()),
        Cel::List(items) => Value::Array(items.iter().map(from_cel).collect::<Result<_, _>>()?),
        Cel::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let Key::String(k) = k else {
                    return Err(format!("map key {k:?} is not a string"));
                };
                out.insert(k.to_string(), from_cel(v)?);
            }
            Value::Object(out)
        }
        Cel::Struct(s) => {
            let mut out = serde_json::Map::new();
            for (k, v) in s.field_values() {
                let v = Cel::try_from(v.as_ref()).map_err(|e| e.to_string())?;
                out.insert(k, from_cel(&v)?);
            }
            Value::Object(out)
        }
        other => return Err(format!("{other:?} has no JSON form")),
    })
}
