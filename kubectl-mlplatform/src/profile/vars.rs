//! Values for a profile's `${name}` placeholders, and rendering templates with them.

use std::collections::BTreeMap;

/// Undefined `${name}` in a template: the profile refers to something nobody provides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "profile uses ${{{name}}} in {field:?} but no value is known for it; pass it with --param {name}=VALUE or fix the profile"
    )]
    Undefined { name: String, field: String },
    #[error("unterminated ${{...}} in {field:?}; fix the profile")]
    Unterminated { field: String },
}

/// Values for `${name}` placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Replaces every `${name}`; `field` names the template in errors. `$` alone is literal.
    pub(crate) fn render(&self, field: &str, template: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| TemplateError::Unterminated {
                field: field.to_owned(),
            })?;
            let name = &after[..end];
            let value = self.get(name).ok_or_else(|| TemplateError::Undefined {
                name: name.to_owned(),
                field: field.to_owned(),
            })?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Renders every string (not keys) inside a JSON document, e.g. an IAM policy.
    pub(crate) fn render_json(
        &self,
        field: &str,
        doc: &serde_json::Value,
    ) -> Result<serde_json::Value, TemplateError> {
        use serde_json::Value;
        Ok(match doc {
            Value::String(s) => Value::String(self.render(field, s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json(field, v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((self.render(field, k)?, self.render_json(field, v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
}
