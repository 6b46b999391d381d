//! The official Open Referral UK schemas (vendored in `standards/oruk`) as
//! validators, for tests of the export and of the HTTP API.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `standards/oruk` of this repository (or wherever `ORUK_STANDARDS_DIR` points).
pub fn standards_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ORUK_STANDARDS_DIR") {
        return dir.into();
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../standards/oruk");
    assert!(
        dir.join("schema").is_dir(),
        "the official ORUK schemas are needed at {} (or set ORUK_STANDARDS_DIR)",
        dir.display()
    );
    dir
}

/// Serves `$ref`s such as `taxonomy_term.json` from the schema's own folder.
struct SchemaFolder(PathBuf);

impl jsonschema::Retrieve for SchemaFolder {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .path()
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(serde_json::from_str(&std::fs::read_to_string(
            self.0.join(name),
        )?)?)
    }
}

/// A validator for `schema`, resolving its `$ref`s beside `relative` (a path
/// under [`standards_dir`]); formats are checked too.
pub fn validator_for(schema: &Value, relative: &str) -> jsonschema::Validator {
    let folder = standards_dir().join(relative);
    jsonschema::options()
        .should_validate_formats(true)
        .with_base_uri(format!("https://oruk.invalid/{relative}"))
        .with_retriever(SchemaFolder(folder.parent().unwrap().to_path_buf()))
        .build(schema)
        .unwrap()
}

/// The validator of one schema file, e.g. `schema/compiled/service.json`.
pub fn validator(relative: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(standards_dir().join(relative)).unwrap();
    validator_for(&serde_json::from_str(&text).unwrap(), relative)
}

/// The `Page` envelope as the profile's OpenAPI file defines it, with every
/// property required.
pub fn page_validator() -> jsonschema::Validator {
    let openapi: Value = serde_json::from_str(
        &std::fs::read_to_string(standards_dir().join("schema/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut page = openapi["components"]["schemas"]["Page"].clone();
    let names: Vec<Value> = page["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| Value::String(k.clone()))
        .collect();
    page["required"] = Value::Array(names);
    validator_for(&page, "schema/openapi.json")
}

/// Fails with every error when `doc` does not validate.
pub fn assert_valid(validator: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is not valid ORUK: {errors:#?}\n{doc:#}"
    );
}
