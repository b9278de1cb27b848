//! Cedar policies: the schema, entities and context built from a verified
//! identity and a role, loading and strict validation, `decide` and `explain`.
