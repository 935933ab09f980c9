//! Input validation against a function's JSON Schema, with JSON pointers into the request.

use serde_json::Value;

/// A compiled input schema.
pub struct InputSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchema").field("raw", &self.raw).finish_non_exhaustive()
    }
}

/// One way the input misses the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// A JSON pointer into the request body, such as `/input/width`.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl InputSchema {
    /// Compiles a schema.
    ///
    /// # Errors
    /// When the schema itself is invalid.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        Ok(Self { raw: schema.clone(), validator })
    }

    /// The schema as written.
    #[must_use]
    pub const fn raw(&self) -> &Value {
        &self.raw
    }

    /// Every violation of the schema, with pointers prefixed by `/input`.
    #[must_use]
    pub fn violations(&self, input: &Value) -> Vec<Violation> {
        self.validator
            .iter_errors(input)
            .take(50)
            .map(|e| Violation { pointer: format!("/input{}", e.instance_path()), message: e.to_string() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> InputSchema {
        InputSchema::compile(&json!({
            "type": "object",
            "properties": {"width": {"type": "integer", "minimum": 1}},
            "required": ["width"]
        }))
        .expect("valid schema")
    }

    #[test]
    fn accepts_matching_input() {
        assert!(schema().violations(&json!({"width": 3})).is_empty());
    }

    #[test]
    fn points_at_the_wrong_field() {
        let v = schema().violations(&json!({"width": "wide"}));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].pointer, "/input/width");
        assert!(v[0].message.contains("integer"), "{}", v[0].message);
    }

    #[test]
    fn reports_missing_and_boundary_values() {
        let v = schema().violations(&json!({}));
        assert_eq!(v[0].pointer, "/input");
        let v = schema().violations(&json!({"width": 0}));
        assert_eq!(v[0].pointer, "/input/width");
        assert!(InputSchema::compile(&json!({"type": 5})).is_err());
    }
}
